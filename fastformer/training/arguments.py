"""train.py's arguments: the dataclasses, `[config.json] [--flag value ...]` parsing, range checks, and the run record."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from paddlenlp.trainer import PdArgumentParser, TrainingArguments
from paddlenlp.trainer.trainer_utils import IntervalStrategy

from ..cli import UserError
from ..configuration import ATTENTION_TYPES
from ..fileio import atomic_write
from ..splits import SPLIT_BY, check_sample_args

__all__ = [
    "SAMPLING_MODES",
    "LOGIT_ADJUSTMENTS",
    "DataArguments",
    "ModelArguments",
    "FastformerTrainingArguments",
    "build_parser",
    "read_config",
    "config_to_argv",
    "parse_args",
    "check_args",
    "resolved_args",
    "RESOLVED_ARGS",
    "RESOLVED_ARGS_HISTORY",
    "write_json_record",
    "append_history",
]

SAMPLING_MODES = ("balanced", "none", "weighted_loss")
LOGIT_ADJUSTMENTS = ("none", "dev")
RESOLVED_ARGS = "resolved_args.json"
OUTPUT_DIR_FIELD = "{output_dir}"  # in input_file / data_dir: replaced by --output_dir
RESOLVED_ARGS_HISTORY = "resolved_args_history.jsonl"


@dataclass
class DataArguments:
    """Where the reviews come from and how they become token ids."""

    input_file: str = field(
        default="data/reviews_Electronics_5.json.gz",
        metadata={
            "help": "Raw Amazon review file (2014/2018 .json(.gz) or 2023 .jsonl(.gz)); it is sampled and split into "
            "data_dir. An empty string uses data_dir as an already prepared dataset (train/dev/test.jsonl). "
            "'{output_dir}' in it (or in data_dir) stands for output_dir."
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
    train_file: str = field(
        default="",
        metadata={"help": "Your own labelled texts (CSV/TSV with a header row, or JSON lines) instead of input_file; "
                  "docs/own_data.md."},
    )
    dev_file: str = field(default="", metadata={"help": "Labelled dev file; empty: dev_share of train_file."})
    test_file: str = field(default="", metadata={"help": "Labelled test file; empty: no test metrics."})
    text_column: List[str] = field(
        default_factory=lambda: ["text"],
        metadata={"help": "Column(s) of the labelled files holding the text; several are joined as 'first. second'."},
    )
    label_column: str = field(default="label", metadata={"help": "Column of the labelled files holding the label."})
    label_file: str = field(
        default="", metadata={"help": "Label names, one a line, in class order; empty: the labels found, sorted."}
    )
    dev_share: float = field(default=0.1, metadata={"help": "Share of train_file kept for dev when no dev_file."})
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
            "help": "A model folder whose vocabulary and encoder weights start the training (the classifier starts "
            "fresh); empty: none."
        },
    )
    word_vectors: str = field(
        default="",
        metadata={
            "help": "Initial word embeddings: a vector file (`word v1 v2 ...` a line, plain or gzip: GloVe), 'train' "
            "(PPMI-SVD vectors of the training split, kept in the data folder) or empty (docs/training.md)."
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
            "help": "balanced (every class equally often per epoch), none (a seeded shuffle) or weighted_loss (the "
            "shuffle with a class-weighted loss); docs/training.md."
        },
    )
    logit_adjustment: str = field(
        default="none",
        metadata={
            "help": "none, or dev: after training, subtract tau * log(train class prior) from the logits, tau fitted "
            "on dev for macro-F1 and folded into the classifier bias (docs/training.md)."
        },
    )
    average_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the mean of the weights of every checkpoint this run saved instead of the best one "
            "(docs/training.md)."
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
            "help": "Batches of similar lengths (within windows of 50 batches, batch order shuffled): less padding, "
            "faster on CPU."
        },
    )

    def to_sanitized_dict(self) -> dict:
        # PaddleNLP's VisualDL callback writes this dict with `add_hparams`; VisualDL 2.5.3 on today's protobuf
        # rejects booleans there ("Expected an int, got a boolean"), so they go as strings.
        return {k: str(v) if isinstance(v, bool) else v for k, v in super().to_sanitized_dict().items()}


def build_parser(prog: Optional[str] = None) -> PdArgumentParser:
    return PdArgumentParser(
        (DataArguments, ModelArguments, FastformerTrainingArguments),
        prog=prog,
        usage="%(prog)s [config.json] [--flag value ...]",  # not the 200 flags again (they follow)
        description="Train a Fastformer review-rating classifier. A flag overrides the config file's value.",
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
    for name in ("input_file", "data_dir"):  # e.g. configs/tiny.json: "{output_dir}/raw/reviews.json.gz"
        value = getattr(data_args, name)
        if value and OUTPUT_DIR_FIELD in value:
            setattr(data_args, name, value.replace(OUTPUT_DIR_FIELD, training_args.output_dir))
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
    ("data", "dev_share", lambda v: 0 < v < 1, "in (0, 1)"),
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
    own = [f"--{name}" for name in ("dev_file", "test_file", "label_file") if getattr(data_args, name)]
    if own and not data_args.train_file:
        raise UserError(f"{', '.join(own)} go(es) with --train_file (your own labelled training file)")
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


def write_json_record(path: str, obj) -> None:
    """Atomically; NaN is kept as written by json (a diverged run still gets its results file)."""
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_history(path: str, all_args: dict, argv: Optional[Sequence[str]], checkpoint: Optional[str]) -> None:
    """Append this run's arguments as one JSON line: resolved_args.json only holds the latest run's."""
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "resumed_from": checkpoint,
        "args": all_args,
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
