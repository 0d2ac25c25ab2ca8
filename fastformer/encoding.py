"""Texts to model inputs: truncation length, token ids and padded batches."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["UNSET_MAX_LENGTH", "check_max_length", "truncation_length", "set_model_max_length", "pad_batch",
           "DataCollator", "encode_texts", "count_truncated"]

UNSET_MAX_LENGTH = int(1e20)  # PaddleNLP's model_max_length when none was given (VERY_LARGE_INTEGER, 1e30)


def check_max_length(max_length: int, config) -> int:
    """`max_length` as an int, or a ValueError when it is outside [1, config.max_position_embeddings]."""
    max_length = int(max_length)
    if not 1 <= max_length <= config.max_position_embeddings:
        raise ValueError(f"max_length must be in [1, {config.max_position_embeddings}] (the model's "
                         f"max_position_embeddings), got {max_length}")
    return max_length


def truncation_length(config, tokenizer) -> int:
    """Tokens kept per text: the tokenizer's `model_max_length` when it was set (the training max_length of a
    folder written by `save_model_dir`), else the model's `max_position_embeddings`."""
    length = tokenizer.model_max_length
    if length is None or length >= UNSET_MAX_LENGTH:
        return config.max_position_embeddings
    return check_max_length(length, config)


def set_model_max_length(tokenizer, max_length: int) -> None:
    """`tokenizer.model_max_length`, also in the init kwargs that `save_pretrained` writes to tokenizer_config.json."""
    tokenizer.model_max_length = int(max_length)
    tokenizer.init_kwargs["model_max_length"] = int(max_length)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0, multiple_of: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Pad id lists to the longest (rounded up to `multiple_of`): (input_ids, attention_mask), int64 [B, L]."""
    length = max(1, max((len(s) for s in sequences), default=1))
    length = -(-length // multiple_of) * multiple_of
    input_ids = np.full((len(sequences), length), pad_id, dtype="int64")
    attention_mask = np.zeros((len(sequences), length), dtype="int64")
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = seq
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


class DataCollator:
    """Dynamic padding for the Trainer: features with `input_ids` (and `labels`) -> padded numpy batch."""

    def __init__(self, pad_id: int = 0, multiple_of: int = 8):
        self.pad_id = pad_id
        self.multiple_of = multiple_of

    def __call__(self, features: List[dict]) -> Dict[str, np.ndarray]:
        input_ids, attention_mask = pad_batch([f["input_ids"] for f in features], self.pad_id, self.multiple_of)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "labels" in features[0]:
            batch["labels"] = np.asarray([f["labels"] for f in features], dtype="int64")
        return batch


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> List[List[int]]:
    """Token ids of each text, truncated to `max_length` (the fast path of the tokenizer)."""
    return tokenizer.encode_batch(list(texts), max_length=max_length)["input_ids"]


def count_truncated(tokenizer, text: str, max_length: int) -> Optional[int]:
    """Number of tokens dropped from `text` by truncation to `max_length` (None when nothing is dropped)."""
    n = len(tokenizer.tokenize(text))
    return n - max_length if n > max_length else None
