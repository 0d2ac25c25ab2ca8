"""What `train.py` and `evaluate.py` share: arguments, config parsing, datasets, samplers, metrics and the Trainer.

* `DataArguments`, `ModelArguments`, `FastformerTrainingArguments` (PaddleNLP `TrainingArguments` plus `sampling`
  and `group_by_length`) and `parse_args(argv)`: `[config.json] [--flag value ...]`, the JSON first and the
  command line on top of it; every bounded number checked in its range (`check_args`, one line naming the flag).
* `resume_conflicts`: the data, model and batching settings (`RESUME_FIXED_TRAINING`) a resumed run changes, which
  train.py refuses; `weights_problem`: a checkpoint's tensors that do not fit the model (never skipped on resume).
* `EncodedDataset`: token ids and labels for the Trainer (batched by `fastformer.task.DataCollator`).
* `EpochBatchSampler`: the seeded training batch sampler, class-balanced by default. Its order depends only on the
  seed and the epoch number, so a run resumed from a checkpoint sees exactly the batches it would have seen. With
  several processes (data parallel) each takes its slice of every global batch.
* `classification_metrics` / `compute_metrics`: accuracy and macro-F1 (`sklearn.metrics.f1_score(average="macro")`).
* `FastformerTrainer`: the PaddleNLP `Trainer` with that sampler, the optional class-weighted loss, RNG restore on
  resume at an epoch boundary, training-throughput counters (real and padded tokens per second), and checkpoints
  written atomically with the SHA-256 of their files (`checkpoint_problem` checks one before a resume); with several
  processes, whole-split evaluation on each, one dropout stream per process, and one process writing checkpoints.
* `from_first_process`: run a step (data preparation) on rank 0 only and send its result to the other processes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from paddlenlp.trainer import PdArgumentParser, Trainer, TrainingArguments
from paddlenlp.trainer.trainer import OPTIMIZER_NAME, TRAINER_STATE_NAME
from paddlenlp.trainer.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy
from sklearn.metrics import accuracy_score, f1_score

from .splits import SPLIT_BY, check_sample_args

from .cli import UserError
from .configuration import ATTENTION_TYPES
from .fileio import ChecksumError, check_checksums, publish_dir, read_checksums, temp_dir, write_checksums
from .labels import label_maps
from .metrics import AdjustedMetrics, class_weights, classification_metrics, compute_metrics, fit_logit_adjustment, log_prior  # noqa: F401
from .model_folder import PICKLE_WEIGHTS_FILE
from .weight_files import tensors_problem

__all__ = [
    "SAMPLING_MODES",
    "DataArguments",
    "ModelArguments",
    "FastformerTrainingArguments",
    "build_parser",
    "read_config",
    "config_to_argv",
    "parse_args",
    "resolved_args",
    "EncodedDataset",
    "EpochBatchSampler",
    "class_weights",
    "classification_metrics",
    "compute_metrics",
    "log_prior",
    "fit_logit_adjustment",
    "AdjustedMetrics",
    "average_weights",
    "drop_words",
    "FastformerTrainer",
    "checkpoint_problem",
    "RESUME_FIXED_TRAINING",
    "resume_conflicts",
    "weights_problem",
    "existing_checkpoints",
    "close_processes",
    "from_first_process",
    "wait_for_every_process",
]

logger = logging.getLogger(__name__)

SAMPLING_MODES = ("balanced", "none", "weighted_loss")
LOGIT_ADJUSTMENTS = ("none", "dev")


# --------------------------------------------------------------------------------------------------- arguments
@dataclass
class DataArguments:
    """Where the reviews come from and how they become token ids."""

    input_file: str = field(
        default="data/reviews_Electronics_5.json.gz",
        metadata={
            "help": "Raw Amazon review file (2014/2018 .json(.gz) or 2023 .jsonl(.gz)); it is sampled and split into "
            "data_dir. An empty string uses data_dir as an already prepared dataset (train/dev/test.jsonl)."
        },
    )
    data_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Prepared dataset folder (train/dev/test.jsonl, label.txt, stats.json). Default: <output_dir>/data. "
            "A folder prepared with the same arguments is reused as is."
        },
    )
    demo_data: bool = field(
        default=False,
        metadata={"help": "Generate SYNTHETIC demo reviews into input_file when that file does not exist."},
    )
    demo_num_reviews: int = field(default=20000, metadata={"help": "Number of synthetic reviews for demo_data."})
    demo_seed: int = field(default=1, metadata={"help": "Seed of the synthetic review generator."})
    num_samples: int = field(default=50000, metadata={"help": "Reviews drawn from input_file (distinct texts)."})
    split_sizes: List[int] = field(
        default_factory=list,
        metadata={
            "help": "train dev test sizes adding up to num_samples, e.g. 40000 5000 5000; empty: 80/10/10."
        },
    )
    data_seed: int = field(default=42, metadata={"help": "Seed of the sample and of the train/dev/test split."})
    balanced_sample: bool = field(
        default=False,
        metadata={
            "help": "Draw num_samples/5 reviews per star rating instead of the natural distribution (the paper uses "
            "the natural one). Not the same as --sampling balanced, which only reweights training batches."
        },
    )
    split_by: str = field(
        default="random",
        metadata={
            "help": "random: a seeded random train/dev/test split; group: every product (asin, parent_asin in the 2023 "
            "release; else the record's source field) lies in one split only, so test products are unseen in training."
        },
    )
    text_fields: List[str] = field(
        default_factory=lambda: ["text"],
        metadata={"help": "Review fields joined into the text: text (the review), or title text ('title. text')."},
    )
    max_length: int = field(default=512, metadata={"help": "Tokens kept per review (longer ones are truncated)."})
    vocab_min_freq: int = field(
        default=2, metadata={"help": "Words seen fewer times in the training split map to [UNK]."}
    )
    vocab_max_size: int = field(
        default=0, metadata={"help": "Largest vocabulary, [PAD] and [UNK] included (0: no limit)."}
    )
    init_from: str = field(
        default="",
        metadata={
            "help": "A model folder whose vocabulary and encoder weights (embeddings, layers, pooler) start the "
            "training, e.g. one made by masked-LM self-pretraining on the training split; the classifier starts "
            "fresh. Empty: a vocabulary built from the training split and random weights."
        },
    )
    word_vectors: str = field(
        default="",
        metadata={
            "help": "Initial word embeddings from a vector file (`word v1 v2 ...` a line, plain or gzip: GloVe, or "
            "vectors learnt from the training split with `python -m data_process.word_vectors`); each vector must "
            "have hidden_size values. Vocabulary words without a vector keep the random initialisation. 'train': "
            "PPMI-SVD vectors learnt from the training split alone (data_process.word_vectors), made once and kept "
            "in the data folder as word_vectors_<hidden_size>.txt. Empty: none."
        },
    )


@dataclass
class ModelArguments:
    """`FastformerConfig` fields (vocab_size and the labels come from the tokenizer and the task)."""

    hidden_size: int = field(default=256, metadata={"help": "Width of the embeddings and of every layer."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Number of Fastformer layers."})
    num_attention_heads: int = field(default=16, metadata={"help": "Additive-attention heads (divide hidden_size)."})
    intermediate_size: int = field(default=256, metadata={"help": "Width of the feed-forward layer."})
    hidden_dropout_prob: float = field(default=0.2, metadata={"help": "Dropout on embeddings and sub-layer outputs."})
    max_position_embeddings: int = field(
        default=0,
        metadata={
            "help": "Positions the learned position embedding covers (>= max_length); 0: max_length, so that export "
            "and prediction default to the training length."
        },
    )
    pooler_type: str = field(
        default="attention",
        metadata={"help": "Sequence vector: attention (the paper's attention pooling), mean or first."},
    )
    use_value_projection: bool = field(
        default=False, metadata={"help": "A separate value projection (the paper shares value = query)."}
    )
    share_attention_layers: bool = field(
        default=False, metadata={"help": "One additive-attention module shared by all layers (layer-wise sharing)."}
    )
    attention_type: str = field(
        default="additive",
        metadata={
            "help": "additive: Fastformer; softmax: standard multi-head self-attention in the same blocks (the "
            "paper's Transformer baseline, quadratic in the length)."
        },
    )

    def config_kwargs(self, max_length: int) -> dict:
        """`FastformerConfig` keyword arguments; max_position_embeddings 0 becomes `max_length`."""
        kwargs = dataclasses.asdict(self)
        kwargs["max_position_embeddings"] = self.max_position_embeddings or max_length
        return kwargs


@dataclass
class FastformerTrainingArguments(TrainingArguments):
    """PaddleNLP `TrainingArguments` plus how training batches are drawn."""

    sampling: str = field(
        default="balanced",
        metadata={
            "help": "balanced: every class drawn equally often in each epoch (epoch size = training-set size, seeded "
            "by seed and epoch); none: a seeded shuffle of the natural distribution; weighted_loss: the shuffle with "
            "class-weighted cross-entropy (weights n / (C * n_c)). Dev and test keep their natural distribution."
        },
    )
    logit_adjustment: str = field(
        default="none",
        metadata={
            "help": "none, or dev: after training, add -tau * log(class prior of the training split) to the logits, "
            "with tau fitted on the dev split for the best macro-F1 (Menon et al. 2021), folded into the classifier "
            "bias of the saved model (export and prediction use it as is). Evaluations then also report "
            "adjusted_macro_f1, which metric_for_best_model may name. The dev figures after fitting are optimistic; "
            "test is not used."
        },
    )
    average_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "After training, keep the mean of the weights of every checkpoint this run saved (with "
            "save_strategy epoch: one per epoch) instead of the best one: an average along the training trajectory, "
            "as in stochastic weight averaging (Izmailov et al. 2018); measured on real reviews in the README. The "
            "dev split is evaluated again for the average (and the logit adjustment fitted on it)."
        },
    )
    word_dropout: float = field(
        default=0.0,
        metadata={"help": "Training only: each real token of a batch is replaced by [UNK] with this probability "
                  "(word dropout, a regulariser for embeddings learnt from little data). 0: off."},
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "Form training batches of similar lengths (within windows of 50 batches, batch order shuffled): "
            "much less padding with dynamic padding, hence faster on CPU."
        },
    )

    def to_sanitized_dict(self) -> dict:
        # PaddleNLP's VisualDL callback writes this dict with `add_hparams`; VisualDL 2.5.3 on today's protobuf
        # rejects booleans there ("Expected an int, got a boolean"), so they go as strings.
        return {k: str(v) if isinstance(v, bool) else v for k, v in super().to_sanitized_dict().items()}


def build_parser() -> PdArgumentParser:
    return PdArgumentParser(
        (DataArguments, ModelArguments, FastformerTrainingArguments),
        description="Train a Fastformer review-rating classifier: train.py [config.json] [--flag value ...]",
        allow_abbrev=False,  # `--learning_rat` is an error, not `--learning_rate`
    )


def _option_names(parser) -> List[str]:
    return [opt[2:] for action in parser._actions for opt in action.option_strings if opt.startswith("--")]


def _unknown(names: Sequence[str], known: Sequence[str], what: str) -> str:
    """'unknown key 'x' (did you mean 'y'?)' for each of `names` not in `known`."""
    import difflib

    parts = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown {what}{'s' if len(parts) > 1 else ''} {', '.join(parts)}"


def read_config(path: str) -> dict:
    """The JSON object of a config file; a one-line `UserError` naming the file when it is missing, not JSON, or
    not an object."""
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} {'is a folder' if os.path.isdir(path) else 'does not exist'}")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"config file {path!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                        f"{exc.colno}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: a config must be a JSON object of argument names and values, got "
                        f"{type(config).__name__}")
    return config


def config_to_argv(config: dict) -> List[str]:
    """Command-line form of a JSON config: `--key value`, lists as several values, booleans as true/false.

    Keys starting with "_" are comments and skipped; a null value means "keep the default" and is skipped too.
    """
    argv: List[str] = []
    for key, value in config.items():
        if key.startswith("_") or value is None:
            continue
        if isinstance(value, bool):
            argv += [f"--{key}", "true" if value else "false"]
        elif isinstance(value, list):
            if not value:
                raise UserError(f"config key {key!r}: an empty list cannot be passed, leave the key out instead")
            argv += [f"--{key}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in value)]
        elif isinstance(value, (int, float, str)):
            argv += [f"--{key}", str(value)]
        else:
            raise UserError(f"config key {key!r}: unsupported value {value!r} (use numbers, strings, booleans, lists)")
    return argv


def parse_args(argv: Optional[Sequence[str]] = None):
    """(DataArguments, ModelArguments, FastformerTrainingArguments) from `[config.json] [--flag value ...]`.

    The JSON config is applied first and the command-line flags after it, so a flag overrides the config (argparse
    keeps the last value given). Unknown keys, in the config or on the command line, are an error.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = _option_names(parser)
    if argv and argv[0].endswith(".json"):
        config = read_config(argv[0])
        unknown = [key for key in config if not key.startswith("_") and key not in known]
        if unknown:
            raise UserError(f"{argv[0]}: {_unknown(unknown, known, 'key')}")
        argv = config_to_argv(config) + argv[1:]
    try:
        data_args, model_args, training_args, remaining = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False
        )
    except ValueError as exc:  # TrainingArguments.__post_init__ on inconsistent values
        raise UserError(" ".join(str(exc).split())) from None
    if remaining:
        flags = [arg[2:] for arg in remaining if arg.startswith("--")]
        raise UserError(_unknown(flags, known, "argument") if flags else
                        f"unrecognized arguments: {' '.join(remaining)}")
    check_args(data_args, model_args, training_args)
    return data_args, model_args, training_args


# Bounded numeric arguments: (arguments, flag, test, allowed values as the error says). NaN and infinity fail every
# test; an optional argument left unset (None) is not tested.
_BOUNDS = (
    ("data", "num_samples", lambda v: v >= 1, "a positive integer"),
    ("data", "demo_num_reviews", lambda v: v >= 1, "a positive integer"),
    ("data", "max_length", lambda v: v >= 1, "a positive integer"),
    ("data", "vocab_min_freq", lambda v: v >= 1, "a positive integer"),
    ("data", "vocab_max_size", lambda v: v == 0 or v >= 2, "0 (no limit) or >= 2"),
    ("model", "hidden_size", lambda v: v >= 1, "a positive integer"),
    ("model", "num_hidden_layers", lambda v: v >= 1, "a positive integer"),
    ("model", "num_attention_heads", lambda v: v >= 1, "a positive integer"),
    ("model", "intermediate_size", lambda v: v >= 1, "a positive integer"),
    ("model", "hidden_dropout_prob", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model", "max_position_embeddings", lambda v: v >= 0, ">= 0 (0: max_length)"),
    ("training", "per_device_train_batch_size", lambda v: v >= 1, "a positive integer"),
    ("training", "per_device_eval_batch_size", lambda v: v >= 1, "a positive integer"),
    ("training", "gradient_accumulation_steps", lambda v: v >= 1, "a positive integer"),
    ("training", "learning_rate", lambda v: v > 0, "> 0"),
    ("training", "weight_decay", lambda v: v >= 0, ">= 0"),
    ("training", "adam_beta1", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training", "adam_beta2", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training", "adam_epsilon", lambda v: v >= 0, ">= 0"),
    ("training", "max_grad_norm", lambda v: v >= 0, ">= 0 (0: no clipping)"),
    ("training", "warmup_ratio", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("training", "warmup_steps", lambda v: v >= 0, ">= 0"),
    ("training", "lr_end", lambda v: v >= 0, ">= 0"),
    ("training", "word_dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training", "logging_steps", lambda v: v >= 1, "a positive integer"),
    ("training", "save_steps", lambda v: v >= 1, "a positive integer"),
    ("training", "eval_steps", lambda v: v >= 1, "a positive integer"),
    ("training", "save_total_limit", lambda v: v >= 1, "a positive integer"),
    ("training", "dataloader_num_workers", lambda v: v >= 0, ">= 0"),
)


def check_args(data_args: DataArguments, model_args: ModelArguments, training_args: FastformerTrainingArguments) -> None:
    """A `UserError` (a ValueError) naming the argument for values that would fail later, before any data is read:
    every bounded number in its range (`_BOUNDS`), names among the known ones, and the combinations that must fit."""
    sections = {"data": data_args, "model": model_args, "training": training_args}
    for section, flag, test, allowed in _BOUNDS:
        value = getattr(sections[section], flag)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and test(value)):
            raise UserError(f"--{flag} must be {allowed}, got {value}")
    if training_args.max_steps <= 0 and not (math.isfinite(training_args.num_train_epochs)
                                             and training_args.num_train_epochs > 0):
        raise UserError(f"--num_train_epochs must be > 0 (or --max_steps given), got {training_args.num_train_epochs}")
    if training_args.logit_adjustment not in LOGIT_ADJUSTMENTS:
        raise UserError(f"--logit_adjustment must be one of {LOGIT_ADJUSTMENTS}, got {training_args.logit_adjustment!r}")
    if training_args.metric_for_best_model and "adjusted" in training_args.metric_for_best_model and (
        training_args.logit_adjustment != "dev"
    ):
        raise UserError(f"--metric_for_best_model {training_args.metric_for_best_model} needs --logit_adjustment dev")
    if training_args.average_checkpoints and IntervalStrategy(training_args.save_strategy) == IntervalStrategy.NO:
        raise UserError("--average_checkpoints averages the checkpoints a run saves: it needs a --save_strategy "
                        "other than no")
    if model_args.attention_type not in ATTENTION_TYPES:
        raise UserError(f"--attention_type must be one of {ATTENTION_TYPES}, got {model_args.attention_type!r}")
    if data_args.split_by not in SPLIT_BY:
        raise UserError(f"--split_by must be one of {SPLIT_BY}, got {data_args.split_by!r}")
    if training_args.sampling not in SAMPLING_MODES:
        raise UserError(f"--sampling must be one of {SAMPLING_MODES}, got {training_args.sampling!r}")
    if model_args.max_position_embeddings and data_args.max_length > model_args.max_position_embeddings:
        raise UserError(
            f"--max_length ({data_args.max_length}) must be at most --max_position_embeddings "
            f"({model_args.max_position_embeddings}, 0 meaning max_length)"
        )
    if data_args.split_sizes and len(data_args.split_sizes) != 3:
        raise UserError(f"--split_sizes takes 3 numbers (train dev test), got {data_args.split_sizes}")
    if data_args.input_file:  # the sample drawn from it (a prepared --data_dir is used as it is)
        check_sample_args(data_args.num_samples, list(data_args.split_sizes) or None, data_args.data_seed)
    if model_args.hidden_size % model_args.num_attention_heads:
        raise UserError(f"--hidden_size ({model_args.hidden_size}) must be a multiple of --num_attention_heads "
                        f"({model_args.num_attention_heads})")


def resolved_args(data_args, model_args, training_args) -> dict:
    """All arguments as one JSON-serialisable dict: {"data": ..., "model": ..., "training": ...}."""

    def plain(value):
        return value if isinstance(value, (bool, int, float, str, type(None))) else (
            [plain(v) for v in value] if isinstance(value, (list, tuple)) else str(value)
        )

    return {
        "data": dataclasses.asdict(data_args),
        "model": dataclasses.asdict(model_args),
        "training": {k: plain(v) for k, v in training_args.to_dict().items()},
    }


# Training settings a resumed run keeps from the run that wrote its checkpoint (with every data and model setting):
# they fix which batches the steps already done stand for, the optimizer state's meaning and which checkpoint is best.
# The rest may change on resume (recorded per run in resolved_args_history.jsonl): the number of epochs or steps, the
# optimizer's hyper-parameters (learning rate and schedule, warmup, weight decay, Adam betas and epsilon, gradient
# clipping, word dropout), evaluation, logging, saving and what is done after training.
RESUME_FIXED_TRAINING = ("seed", "per_device_train_batch_size", "gradient_accumulation_steps", "dataloader_drop_last",
                         "sampling", "group_by_length", "optim", "metric_for_best_model", "greater_is_better", "fp16",
                         "bf16")


def _effective_model(args: dict) -> dict:
    """The "model" section of resolved args with max_position_embeddings 0 read as the data's max_length."""
    model = dict(args.get("model", {}))
    if not model.get("max_position_embeddings"):
        model["max_position_embeddings"] = args.get("data", {}).get("max_length")
    return model


def resume_conflicts(old: dict, new: dict) -> List[str]:
    """"name old -> new" for each setting that a resumed run must keep and that differs between the resolved args
    `old` (of the run that wrote the checkpoint) and `new`: every data and model setting and `RESUME_FIXED_TRAINING`.
    Settings absent from either (an older record) are not compared."""
    pairs = [(old.get("data", {}), new.get("data", {}), None), (_effective_model(old), _effective_model(new), None),
             (old.get("training", {}), new.get("training", {}), RESUME_FIXED_TRAINING)]
    conflicts = []
    for before, after, names in pairs:
        for name in (names or before):
            if name in before and name in after and before[name] != after[name]:
                conflicts.append(f"{name} {json.dumps(before[name])} -> {json.dumps(after[name])}")
    return conflicts


def weights_problem(state_dict: Dict[str, Any], model) -> Optional[str]:
    """Why the weights `state_dict` ({name: array or tensor}) cannot be loaded into `model` as they are (names
    missing or extra, shapes that differ), or None."""
    return tensors_problem({name: value.shape for name, value in state_dict.items()},
                           {name: value.shape for name, value in model.state_dict().items()})


# ------------------------------------------------------------------------------------------------------ data
class EncodedDataset(paddle.io.Dataset):
    """Token-id lists (and labels) as Trainer features: {"input_ids": [...], "labels": int}."""

    def __init__(self, input_ids: Sequence[Sequence[int]], labels: Optional[Sequence[int]] = None):
        if labels is not None and len(labels) != len(input_ids):
            raise ValueError(f"{len(input_ids)} texts but {len(labels)} labels")
        self.input_ids = list(input_ids)
        self.labels = None if labels is None else [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        item = {"input_ids": self.input_ids[index]}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def sorted_by_length(self) -> "EncodedDataset":
        """The same examples, shortest first: far less padding for evaluation, where order does not matter."""
        order = np.argsort(self.lengths(), kind="stable")
        labels = None if self.labels is None else [self.labels[i] for i in order]
        return EncodedDataset([self.input_ids[i] for i in order], labels)


class EpochBatchSampler(paddle.io.DistributedBatchSampler):
    """Seeded training batches whose order is a function of (seed, epoch) only.

    * `balanced=True`: every class present in `labels` is drawn equally often in each epoch and the epoch has
      `len(labels)` samples (the remainder goes to classes in rotation). Each class is read from its own endless
      stream of seeded permutations, so over the epochs a large class is covered without repeats and a small class
      is repeated as evenly as possible.
    * `balanced=False`: a seeded permutation of all examples per epoch.
    * `lengths` given (group_by_length): the epoch's samples are cut into windows of `group_size` batches, sorted
      by length inside each window and batched, then the batch order is shuffled.

    Data parallel (`num_replicas` processes, this one `rank`): `batch_size` is per process. The epoch is cut into
    global batches of `batch_size * num_replicas` exactly as one process with that batch size would cut it (same
    sample, same length groups, same order), and rank r takes the r-th `batch_size` slice of each: the ranks' slices
    do not overlap and together they are the one-process epoch, step by step. The short remainder batch (not dropped
    unless `drop_last`) is split into `num_replicas` contiguous parts whose sizes differ by at most one; a remainder
    smaller than `num_replicas` cannot give every rank a sample and is dropped (at most num_replicas - 1 samples).

    It subclasses `paddle.io.DistributedBatchSampler` because PaddleNLP's Trainer calls `set_epoch` on such samplers
    at the start of every epoch, the resumed one included.
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        seed: int = 42,
        balanced: bool = True,
        drop_last: bool = False,
        lengths: Optional[Sequence[int]] = None,
        group_size: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("EpochBatchSampler needs a non-empty 1-d sequence of labels")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} replicas")
        super().__init__(np.arange(len(labels)), batch_size, num_replicas=num_replicas, rank=rank, shuffle=True,
                         drop_last=drop_last)
        self.global_batch_size = batch_size * num_replicas
        self.labels = labels
        self.seed = int(seed)
        self.balanced = bool(balanced)
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        if self.lengths is not None and len(self.lengths) != len(labels):
            raise ValueError("lengths and labels differ in size")
        self.group_size = int(group_size)
        self.classes = np.unique(labels)
        self.class_indices = [np.flatnonzero(labels == c) for c in self.classes]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Steps per epoch: global batches (of batch_size * num_replicas), the same on every rank."""
        full, remainder = divmod(len(self.labels), self.global_batch_size)
        return full + int(not self.drop_last and remainder >= self.nranks)

    def _quota(self, epoch: int) -> np.ndarray:
        """Samples per class in `epoch`: n // C each, the n % C extra ones to classes in rotation."""
        n, c = len(self.labels), len(self.classes)
        quota = np.full(c, n // c, dtype=np.int64)
        extra = (np.arange(c) - epoch) % c < n % c
        return quota + extra

    def _class_stream(self, k: int, start: int, count: int) -> np.ndarray:
        """Positions [start, start + count) of class k's endless stream of seeded permutations."""
        members = self.class_indices[k]
        size = len(members)
        out = []
        position = start
        while position < start + count:
            cycle, offset = divmod(position, size)
            perm = np.random.default_rng([self.seed, 1, int(self.classes[k]), cycle]).permutation(size)
            take = min(size - offset, start + count - position)
            out.append(members[perm[offset : offset + take]])
            position += take
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The example indices of `epoch`, in training order (before batching)."""
        rng = np.random.default_rng([self.seed, 0, epoch])
        if not self.balanced:
            return rng.permutation(len(self.labels))
        parts = []
        for k in range(len(self.classes)):
            start = int(sum(self._quota(e)[k] for e in range(epoch)))
            parts.append(self._class_stream(k, start, int(self._quota(epoch)[k])))
        return rng.permutation(np.concatenate(parts))

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """The global batches of `epoch` (all ranks together): what one process with batch_size * num_replicas sees."""
        indices = self.epoch_indices(epoch)
        bs = self.global_batch_size
        if self.lengths is None:
            batches = [indices[i : i + bs] for i in range(0, len(indices), bs)]
        else:
            window = bs * max(1, self.group_size)
            batches = []
            for w in range(0, len(indices), window):
                chunk = indices[w : w + window]
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                batches += [chunk[i : i + bs] for i in range(0, len(chunk), bs)]
            # The short remainder batch is kept (unless drop_last) wherever the shuffle puts it.
            order = np.random.default_rng([self.seed, 2, epoch]).permutation(len(batches))
            batches = [batches[i] for i in order]
        if self.drop_last:
            batches = [b for b in batches if len(b) == bs]
        return [b.tolist() for b in batches]

    def rank_batches(self, epoch: int, rank: Optional[int] = None) -> List[List[int]]:
        """This rank's (or `rank`'s) batches of `epoch`: the rank-th slice of every global batch."""
        rank = self.local_rank if rank is None else rank
        return [np.array_split(b, self.nranks)[rank].tolist() for b in self.epoch_batches(epoch)
                if len(b) >= self.nranks]

    def __iter__(self):
        yield from self.rank_batches(self.epoch)


def class_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """n / (C * n_c) for the classes present (sklearn's "balanced"); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


# --------------------------------------------------------------------------------------------------- metrics
def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> Dict[str, float]:
    """Accuracy and macro-F1 (`sklearn.metrics.f1_score(average="macro")`, over the classes seen in either)."""
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def _logits_and_labels(eval_pred) -> Tuple[np.ndarray, np.ndarray]:
    logits = eval_pred.predictions
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    labels = eval_pred.label_ids
    if isinstance(labels, (tuple, list)):
        labels = labels[0]
    return np.asarray(logits), np.asarray(labels)


def compute_metrics(eval_pred) -> Dict[str, float]:
    """`compute_metrics` of the Trainer: logits -> argmax -> `classification_metrics`."""
    logits, labels = _logits_and_labels(eval_pred)
    return classification_metrics(labels, logits.argmax(axis=-1))


# ------------------------------------------------------------------------------------------- logit adjustment
ADJUSTMENT_TAUS = np.round(np.arange(-1.0, 2.0 + 1e-9, 0.05), 2)  # the values of tau tried on dev


def log_prior(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """log of the class frequencies of `labels` (a class never seen counts as half an example)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 0.5
    return np.log(counts / counts.sum())


def fit_logit_adjustment(logits: np.ndarray, labels: Sequence[int], prior: np.ndarray) -> Tuple[float, Dict[str, float]]:
    """The tau whose adjusted logits `logits - tau * prior` (prior: `log_prior` of the training labels) give the best
    macro-F1 on (logits, labels), and those metrics. Ties go to the smallest |tau| (0: no change).

    Logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment") with the one strength fitted on
    held-out data: tau 1 turns a model of the natural distribution into one for balanced classes, tau < 0 moves a
    model trained on balanced batches back towards the natural distribution (higher accuracy)."""
    logits = np.asarray(logits, dtype=np.float64)
    best = None
    for tau in sorted(ADJUSTMENT_TAUS, key=abs):
        metrics = classification_metrics(labels, (logits - tau * prior).argmax(axis=-1))
        if best is None or metrics["macro_f1"] > best[1]["macro_f1"]:
            best = (float(tau), metrics)
    return best


class AdjustedMetrics:
    """`compute_metrics` that also reports, for `logit_adjustment dev`, the metrics after the adjustment fitted on
    these very predictions (`adjusted_macro_f1`, `adjusted_accuracy`, `adjustment_tau`): use it for dev only, where
    it lets the best epoch be chosen by what the adjusted model will score; never for test."""

    def __init__(self, prior: np.ndarray):
        self.prior = prior

    def __call__(self, eval_pred) -> Dict[str, float]:
        logits, labels = _logits_and_labels(eval_pred)
        metrics = classification_metrics(labels, logits.argmax(axis=-1))
        tau, adjusted = fit_logit_adjustment(logits, labels, self.prior)
        metrics.update({f"adjusted_{k}": v for k, v in adjusted.items()}, adjustment_tau=tau)
        return metrics


# -------------------------------------------------------------------------------------------- weight averaging
def average_weights(paths: Sequence[str]) -> Dict[str, np.ndarray]:
    """Element-wise mean of the model weights (`model_state.pdparams`) of the checkpoint folders `paths`, summed in
    float64 and returned in each weight's own dtype. Checkpoints are a run's own files (see `checkpoint_problem`)."""
    if not paths:
        raise ValueError("no checkpoint to average")
    total, dtypes = {}, {}
    for path in paths:
        state = paddle.load(os.path.join(path, PICKLE_WEIGHTS_FILE), return_numpy=True)
        if total and set(state) != set(total):
            raise ValueError(f"{path}: its weights are not those of {paths[0]} (different parameter names)")
        for name, value in state.items():
            dtypes.setdefault(name, value.dtype)
            total[name] = total.get(name, 0.0) + np.asarray(value, dtype=np.float64)
    return {name: (value / len(paths)).astype(dtypes[name]) for name, value in total.items()}


def drop_words(input_ids, attention_mask, p: float, unk_id: int) -> paddle.Tensor:
    """Word dropout: each real token (mask 1) becomes `unk_id` with probability `p` (Paddle's global RNG)."""
    ids = paddle.to_tensor(input_ids)
    drop = (paddle.rand(ids.shape) < p) & (paddle.to_tensor(attention_mask) == 1)
    return paddle.where(drop, paddle.full_like(ids, unk_id), ids)


# --------------------------------------------------------------------------------------------------- trainer
class FastformerTrainer(Trainer):
    """PaddleNLP `Trainer` with seeded (class-balanced) batches, optional class-weighted loss and token counters.

    `train_labels` are the labels of `train_dataset`; `args` must be a `FastformerTrainingArguments`.
    """

    def __init__(self, *args, num_labels: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.world_size > 1:
            # PaddleNLP seeds every data-parallel process alike, so each would draw the same dropout masks as the
            # others. One stream per process (rank 0 keeps the one-process stream); the weights stay the same on
            # every process (built after the same seed, and DataParallel starts all from rank 0's).
            paddle.seed(self.args.seed + self.args.process_index)
        num_labels = num_labels or len(label_maps()[0])  # default: the task's star-rating labels
        self.num_labels = num_labels
        self.loss_weights = None
        if self.args.sampling == "weighted_loss" and self.train_dataset is not None:
            self.loss_weights = paddle.to_tensor(class_weights(self.train_dataset.labels, num_labels))
            logger.info("class weights of the loss: %s", self.loss_weights.numpy().round(4).tolist())
        self.real_tokens = 0
        self.padded_tokens = 0
        self.train_samples = 0
        self.eval_seconds = 0.0
        self.save_seconds = 0.0

    # ---- batches
    def _get_train_sampler(self):
        dataset = self.train_dataset
        return EpochBatchSampler(
            dataset.labels,
            batch_size=self.args.per_device_train_batch_size,
            seed=self.args.seed,
            balanced=self.args.sampling == "balanced",
            drop_last=self.args.dataloader_drop_last,
            lengths=dataset.lengths() if self.args.group_by_length else None,
            num_replicas=self.args.dataset_world_size,
            rank=self.args.dataset_rank,
        )

    # ---- loss and counters
    def compute_loss(self, model, inputs, return_outputs=False):
        if self.loss_weights is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = F.cross_entropy(outputs.logits, labels.reshape([-1]).astype("int64"), weight=self.loss_weights)
        outputs.loss = loss
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs):
        mask = inputs["attention_mask"]
        self.real_tokens += int(mask.sum())
        self.padded_tokens += int(np.prod(mask.shape))
        self.train_samples += int(mask.shape[0])
        if self.args.word_dropout > 0:
            inputs["input_ids"] = drop_words(inputs["input_ids"], mask, self.args.word_dropout,
                                             self.tokenizer.unk_token_id)
        return super().training_step(model, inputs)

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.eval_seconds += time.perf_counter() - start

    # ---- evaluation with several processes: each one evaluates the whole split, in the batches one process uses.
    # PaddleNLP's default splits it with paddle.io.DistributedBatchSampler, which pads the split with repeated samples
    # to a multiple of the process count (their predictions are cut off, but they enter the last batch's mean loss).
    # Evaluation is a small part of training time; this way every process gets exactly one process's metrics.
    _local_evaluation = False

    def _get_eval_sampler(self, eval_dataset):
        return paddle.io.BatchSampler(eval_dataset, batch_size=self.args.per_device_eval_batch_size, shuffle=False)

    def evaluation_loop(self, *args, **kwargs):
        self._local_evaluation = True
        try:
            return super().evaluation_loop(*args, **kwargs)
        finally:
            self._local_evaluation = False

    def _nested_gather(self, tensors):
        return tensors if self._local_evaluation else super()._nested_gather(tensors)

    def _save_checkpoint(self, model, metrics=None):
        """PaddleNLP's checkpoint, written to a hidden folder in output_dir and renamed to checkpoint-<step> once
        complete, with checksums.json (SHA-256 of every file): a kill while saving leaves no checkpoint-<step> that
        a resume would trust. An existing checkpoint-<step> (a run resumed from an earlier one) is kept, renamed.

        With several processes only the writer (`args.should_save`) does this; the others write nothing but still
        run PaddleNLP's steps, collective ones included (the RNG states of every process are gathered), and record
        the same best_model_checkpoint (the final path). The renaming is done before the writer returns, so the
        barrier before PaddleNLP loads the best model at the end finds the checkpoint in place."""
        start = time.perf_counter()
        try:
            if self.args.world_size > 1 and not self.args.should_save:  # writes nothing of its own
                return super()._save_checkpoint(model, metrics=metrics)
            run_dir = self.args.output_dir
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            final = os.path.join(run_dir, name)
            with temp_dir(final) as staging_root:  # .checkpoint-<step>.<host>-<pid>.<random>.tmp, removed if it fails
                staging = os.path.join(staging_root, name)
                self.args.output_dir = staging_root  # super() writes to <args.output_dir>/checkpoint-<step>
                try:
                    super()._save_checkpoint(model, metrics=metrics)
                finally:
                    self.args.output_dir = run_dir
                if self.state.best_model_checkpoint == staging:
                    self.state.best_model_checkpoint = final
                self.state.save_to_json(os.path.join(staging, TRAINER_STATE_NAME))  # with the final path
                write_checksums(staging, sorted(os.listdir(staging)))
                old = publish_dir(staging, final, keep_old=True)
            if old:
                logger.warning("%s already existed (an earlier run past the checkpoint it resumed from): kept as %s",
                               final, old)
            self._rotate_checkpoints(use_mtime=True, output_dir=run_dir)  # only with save_total_limit, as before
        finally:
            self.save_seconds += time.perf_counter() - start

    # ---- resume
    def _set_state_dict_in_model(self, state_dict):
        # PaddleNLP's set_state_dict skips a tensor of another shape with a warning and keeps the fresh one: a
        # checkpoint of another model would "resume" from random weights. Refused instead.
        problem = weights_problem(state_dict, self.model)
        if problem:
            raise UserError(f"the checkpoint's weights do not fit the model built: {problem}")
        super()._set_state_dict_in_model(state_dict)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        scheduler = getattr(self, "lr_scheduler", None)
        if checkpoint is not None and scheduler is not None and hasattr(scheduler, "get_lr"):
            # The restored scheduler keeps the rate of its last step; recomputed from its step count, a learning rate
            # or schedule changed on resume applies from the first step after the checkpoint (unchanged: the same).
            scheduler.last_lr = scheduler.get_lr()
        # PaddleNLP restores the RNG state only after skipping batches inside an epoch, i.e. never when the
        # checkpoint is at an epoch boundary (save_strategy "epoch"). Restore it here too, so that dropout after a
        # resume is what it would have been without the interruption. With several processes the states are in
        # rng_state_<world size>.pth and loading them is collective (every process calls it).
        if checkpoint is not None and (
            self.args.world_size > 1 or os.path.isfile(os.path.join(checkpoint, "rng_state.pth"))
        ):
            self._load_rng_state(checkpoint)

    def throughput(self, train_seconds: float) -> Dict[str, Optional[float]]:
        """Training counters of this run (not counting batches done before a resume) over `train_seconds`.

        With several processes the counters are summed over all of them (collective: every process calls this)."""
        seconds = max(train_seconds, 0.0)
        samples, real, padded = self.train_samples, self.real_tokens, self.padded_tokens
        if self.args.world_size > 1:
            counts = paddle.to_tensor([samples, real, padded], dtype="int64")
            paddle.distributed.all_reduce(counts)
            samples, real, padded = (int(n) for n in counts.numpy())
        rate = (lambda n: round(n / seconds, 1)) if seconds > 0 and samples else (lambda n: None)
        return {
            "train_seconds": round(seconds, 2),
            "train_samples_seen": samples,
            "train_real_tokens": real,
            "train_padded_tokens": padded,
            "train_real_tokens_per_second": rate(real),
            "train_padded_tokens_per_second": rate(padded),
            "train_samples_per_second": rate(samples),
            "padding_fraction": round(1 - real / padded, 4) if padded else None,
        }


# ------------------------------------------------------------------------------------------------ checkpoints
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def existing_checkpoints(output_dir: str, up_to_step: Optional[int] = None) -> List[str]:
    """The checkpoint-<step> folders in `output_dir`, by step (only those of steps <= `up_to_step` when given)."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir)
             if (m := _CHECKPOINT_RE.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    return [name for step, name in sorted(found) if up_to_step is None or step <= up_to_step]


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint folder `path` cannot be resumed from, or None when it can.

    It must hold the model weights, the optimizer state and trainer_state.json. A checkpoint written by
    `FastformerTrainer` is then checked against its checksums.json (every file present with its SHA-256); an older
    one without it must have a readable trainer_state.json, and its weights and optimizer state must load.
    Checkpoints are the user's own files (the optimizer state is a pickle): they are trusted, only checked for damage.
    """
    required = (PICKLE_WEIGHTS_FILE, OPTIMIZER_NAME, TRAINER_STATE_NAME)
    missing = [name for name in required if not os.path.isfile(os.path.join(path, name))]
    if missing:
        return f"incomplete, no {', '.join(missing)}"
    try:
        digests = read_checksums(path)
        if digests is not None:
            check_checksums(path, digests)
            return None
    except ChecksumError as exc:
        return str(exc)
    try:
        with open(os.path.join(path, TRAINER_STATE_NAME), encoding="utf-8") as f:
            json.load(f)
        for name in (PICKLE_WEIGHTS_FILE, OPTIMIZER_NAME):
            paddle.load(os.path.join(path, name))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises, the checkpoint is unusable
        return f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return None


# ----------------------------------------------------------------------------------------------- data parallel
_sync_points = itertools.count()


def wait_for_every_process(training_args: TrainingArguments) -> None:
    """Return once every process has called this (as many times). A barrier on the job's TCP store, polled: no
    process waits inside a collective, so one may arrive minutes after the others (a gloo collective, the CPU
    backend's, gives up after 30 s)."""
    if training_args.world_size <= 1:
        return
    from paddle.base import core

    store = core.create_or_get_global_tcp_store()  # the store of paddle.distributed.init_parallel_env
    key = f"fastformer/sync/{next(_sync_points)}"
    store.add(key, 1)
    while store.add(key, 0) < training_args.world_size:
        time.sleep(0.2)


def close_processes(training_args: TrainingArguments) -> None:
    """At the end of a run with several processes: wait for every process, then take the process groups down. Left
    to the interpreter's exit, Paddle's teardown of the CPU (gloo) groups took about a minute here, and once ended in
    SIGABRT after a complete run."""
    if training_args.world_size <= 1:
        return
    wait_for_every_process(training_args)
    paddle.distributed.destroy_process_group()


def from_first_process(training_args: TrainingArguments, fn: Callable[[], Any]) -> Any:
    """`fn()` run by the first process (rank 0) only, its result sent to every process (pickled, over the collective
    backend); with one process just `fn()`.

    The others wait for it however long it takes (`wait_for_every_process`). If `fn` fails, the first process raises
    its error and the others raise a RuntimeError quoting it, instead of waiting for a result that never comes.
    """
    if training_args.world_size <= 1:
        return fn()
    payload, error = [None], None
    if training_args.process_index == 0:
        try:
            payload = [(True, fn())]
        except Exception as exc:
            payload, error = [(False, f"{type(exc).__name__}: {exc}")], exc
    wait_for_every_process(training_args)
    paddle.distributed.broadcast_object_list(payload, src=0)
    if error is not None:
        raise error
    ok, value = payload[0]
    if not ok:
        raise RuntimeError(f"the first process (rank 0) failed: {value}")
    return value
