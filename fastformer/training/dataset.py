"""Encoded examples for the Trainer, and word dropout."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import paddle

__all__ = ["EncodedDataset", "drop_words"]


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


def drop_words(input_ids, attention_mask, p: float, unk_id: int) -> paddle.Tensor:
    """Word dropout: each real token (mask 1) becomes `unk_id` with probability `p` (Paddle's global RNG)."""
    ids = paddle.to_tensor(input_ids)
    drop = (paddle.rand(ids.shape) < p) & (paddle.to_tensor(attention_mask) == 1)
    return paddle.where(drop, paddle.full_like(ids, unk_id), ids)
