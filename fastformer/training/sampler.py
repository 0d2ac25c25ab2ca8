"""The seeded, class-balanced training batch sampler (docs/training.md, "Batches")."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import paddle

__all__ = ["EpochBatchSampler"]


class EpochBatchSampler(paddle.io.DistributedBatchSampler):
    """Seeded training batches whose order is a function of (seed, epoch) only (docs/training.md, "Batches").

    `balanced`: every class equally often per epoch, else a seeded permutation; `lengths`: length-grouped windows of
    `group_size` batches; `num_replicas` > 1: rank `rank` takes its slice of every global batch.
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
