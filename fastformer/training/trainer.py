"""`FastformerTrainer`: the PaddleNLP `Trainer` with seeded (class-balanced) batches, an optional class-weighted loss,
word dropout, token counters, atomic checksummed checkpoints and exact resumes (docs/training.md)."""

from __future__ import annotations

import logging
import os
import time
from typing import Dict, Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddlenlp.trainer import Trainer
from paddlenlp.trainer.trainer import TRAINER_STATE_NAME
from paddlenlp.trainer.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..cli import UserError
from ..fileio import publish_dir, temp_dir, write_checksums
from ..labels import label_maps
from ..metrics import class_weights
from .dataset import drop_words
from .resume import weights_problem
from .sampler import EpochBatchSampler

__all__ = ["FastformerTrainer"]

logger = logging.getLogger(__name__)


class _PrivateOverrides(Trainer):
    """The overrides of private PaddleNLP 2.8.1 `Trainer` methods, each where no public hook exists."""

    _local_evaluation = False  # set by FastformerTrainer.evaluation_loop

    def _get_train_sampler(self):
        # The Trainer builds its train DataLoader around this; no argument takes a batch sampler.
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

    def _get_eval_sampler(self, eval_dataset):
        # Several processes: each evaluates the whole split (the default pads it with repeats to a multiple of them).
        return paddle.io.BatchSampler(eval_dataset, batch_size=self.args.per_device_eval_batch_size, shuffle=False)

    def _nested_gather(self, tensors):
        # ... and so gathers nothing across processes while evaluating.
        return tensors if self._local_evaluation else super()._nested_gather(tensors)

    def _save_checkpoint(self, model, metrics=None):
        # Atomic: written to a hidden folder, checksummed, then renamed to checkpoint-<step> (docs/training.md).
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

    def _set_state_dict_in_model(self, state_dict):
        # PaddleNLP skips a tensor of another shape with a warning (a resume from random weights): refused instead.
        problem = weights_problem(state_dict, self.model)
        if problem:
            raise UserError(f"the checkpoint's weights do not fit the model built: {problem}")
        super()._set_state_dict_in_model(state_dict)

    def _load_optimizer_and_scheduler(self, checkpoint):
        # A changed learning rate applies from the first resumed step, and the RNG is restored at epoch boundaries too.
        super()._load_optimizer_and_scheduler(checkpoint)
        scheduler = getattr(self, "lr_scheduler", None)
        if checkpoint is not None and scheduler is not None and hasattr(scheduler, "get_lr"):
            scheduler.last_lr = scheduler.get_lr()  # recomputed from its step count, not the rate of its last step
        # With several processes the states are in rng_state_<world size>.pth and loading them is collective.
        if checkpoint is not None and (
            self.args.world_size > 1 or os.path.isfile(os.path.join(checkpoint, "rng_state.pth"))
        ):
            self._load_rng_state(checkpoint)


class FastformerTrainer(_PrivateOverrides):
    """PaddleNLP `Trainer` for `FastformerTrainingArguments`; `train_dataset` is an `EncodedDataset`."""

    def __init__(self, *args, num_labels: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.world_size > 1:
            # PaddleNLP seeds every process alike: one dropout stream per process (rank 0 keeps the one-process one).
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

    def evaluation_loop(self, *args, **kwargs):
        self._local_evaluation = True
        try:
            return super().evaluation_loop(*args, **kwargs)
        finally:
            self._local_evaluation = False

    def throughput(self, train_seconds: float) -> Dict[str, Optional[float]]:
        """Training counters of this run (not those before a resume) over `train_seconds`, summed over processes
        (collective: every process calls this)."""
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
