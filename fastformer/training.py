"""What `train.py` and `evaluate.py` share: arguments, config parsing, datasets, samplers, metrics and the Trainer.

* `DataArguments`, `ModelArguments`, `FastformerTrainingArguments` (PaddleNLP `TrainingArguments` plus `sampling`
  and `group_by_length`) and `parse_args(argv)`: `[config.json] [--flag value ...]`, the JSON first and the
  command line on top of it.
* `EncodedDataset`: token ids and labels for the Trainer (batched by `fastformer.task.DataCollator`).
* `EpochBatchSampler`: the seeded training batch sampler, class-balanced by default. Its order depends only on the
  seed and the epoch number, so a run resumed from a checkpoint sees exactly the batches it would have seen. With
  several processes (data parallel) each takes its slice of every global batch.
* `classification_metrics` / `compute_metrics`: accuracy and macro-F1 (`sklearn.metrics.f1_score(average="macro")`).
* `FastformerTrainer`: the PaddleNLP `Trainer` with that sampler, the optional class-weighted loss, RNG restore on
  resume at an epoch boundary, and training-throughput counters (real and padded tokens per second); with several
  processes, whole-split evaluation on each and one dropout stream per process.
* `from_first_process`: run a step (data preparation) on rank 0 only and send its result to the other processes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F
from paddlenlp.trainer import PdArgumentParser, Trainer, TrainingArguments
from sklearn.metrics import accuracy_score, f1_score

from .task import label_maps

__all__ = [
    "SAMPLING_MODES",
    "DataArguments",
    "ModelArguments",
    "FastformerTrainingArguments",
    "build_parser",
    "config_to_argv",
    "parse_args",
    "resolved_args",
    "EncodedDataset",
    "EpochBatchSampler",
    "class_weights",
    "classification_metrics",
    "compute_metrics",
    "FastformerTrainer",
    "close_processes",
    "from_first_process",
    "wait_for_every_process",
]

logger = logging.getLogger(__name__)

SAMPLING_MODES = ("balanced", "none", "weighted_loss")


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
    )


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
                raise ValueError(f"config key {key!r}: an empty list cannot be passed, leave the key out instead")
            argv += [f"--{key}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in value)]
        elif isinstance(value, (int, float, str)):
            argv += [f"--{key}", str(value)]
        else:
            raise ValueError(f"config key {key!r}: unsupported value {value!r} (use numbers, strings, booleans, lists)")
    return argv


def parse_args(argv: Optional[Sequence[str]] = None):
    """(DataArguments, ModelArguments, FastformerTrainingArguments) from `[config.json] [--flag value ...]`.

    The JSON config is applied first and the command-line flags after it, so a flag overrides the config (argparse
    keeps the last value given). Unknown keys, in the config or on the command line, are an error.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        with open(argv[0], encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError(f"{argv[0]}: a config must be a JSON object of argument names and values")
        argv = config_to_argv(config) + argv[1:]
    parser = build_parser()
    data_args, model_args, training_args, remaining = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True, look_for_args_file=False
    )
    if remaining:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    check_args(data_args, model_args, training_args)
    return data_args, model_args, training_args


def check_args(data_args: DataArguments, model_args: ModelArguments, training_args: FastformerTrainingArguments) -> None:
    if training_args.sampling not in SAMPLING_MODES:
        raise ValueError(f"--sampling must be one of {SAMPLING_MODES}, got {training_args.sampling!r}")
    if data_args.max_length < 1 or model_args.max_position_embeddings < 0 or (
        model_args.max_position_embeddings and data_args.max_length > model_args.max_position_embeddings
    ):
        raise ValueError(
            f"--max_length ({data_args.max_length}) must be >= 1 and at most --max_position_embeddings "
            f"({model_args.max_position_embeddings}, 0 meaning max_length)"
        )
    if data_args.vocab_min_freq < 1 or data_args.vocab_max_size < 0 or data_args.vocab_max_size == 1:
        raise ValueError("--vocab_min_freq must be >= 1 and --vocab_max_size 0 (no limit) or >= 2")
    if data_args.split_sizes and len(data_args.split_sizes) != 3:
        raise ValueError(f"--split_sizes takes 3 numbers (train dev test), got {data_args.split_sizes}")


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


def compute_metrics(eval_pred) -> Dict[str, float]:
    """`compute_metrics` of the Trainer: logits -> argmax -> `classification_metrics`."""
    logits = eval_pred.predictions
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    labels = eval_pred.label_ids
    if isinstance(labels, (tuple, list)):
        labels = labels[0]
    return classification_metrics(labels, np.asarray(logits).argmax(axis=-1))


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
        start = time.perf_counter()
        try:
            return super()._save_checkpoint(model, metrics=metrics)
        finally:
            self.save_seconds += time.perf_counter() - start

    # ---- resume
    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
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
