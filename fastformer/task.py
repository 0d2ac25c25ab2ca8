"""The rating-classification task in one place: labels, model building, model folders and batching.

Every script (train, evaluate, export, predict, serve) goes through these functions, so a model folder
written by one is read the same way by all the others. A model folder holds `config.json` (with
`id2label`), `model_state.pdparams` and the tokenizer files.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_process import LABEL_NAMES

from .configuration import FastformerConfig
from .modeling import FastformerForSequenceClassification
from .tokenizer import FastformerTokenizer

__all__ = [
    "LABEL_NAMES",
    "label_maps",
    "build_model",
    "save_model_dir",
    "load_model_dir",
    "check_model_dir",
    "pad_batch",
    "DataCollator",
    "encode_texts",
    "count_truncated",
]

MODEL_FILES = ("config.json", "model_state.pdparams")


def label_maps(names: Sequence[str] = LABEL_NAMES) -> Tuple[Dict[int, str], Dict[str, int]]:
    """id2label / label2id for the star ratings (label id = stars - 1)."""
    id2label = {i: name for i, name in enumerate(names)}
    return id2label, {name: i for i, name in id2label.items()}


def build_model(tokenizer: FastformerTokenizer, **config_kwargs) -> FastformerForSequenceClassification:
    """A freshly initialised classifier sized to `tokenizer`, with the star-rating labels."""
    id2label, label2id = label_maps()
    config = FastformerConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        id2label=id2label,
        label2id=label2id,
        **config_kwargs,
    )
    return FastformerForSequenceClassification(config)


def save_model_dir(model: FastformerForSequenceClassification, tokenizer: FastformerTokenizer, path: str) -> None:
    """Write everything needed to use the model: weights, config (with labels) and tokenizer."""
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def check_model_dir(path: str, required: Sequence[str] = MODEL_FILES) -> None:
    """Raise a clear error naming what is missing from a model folder."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder {path!r} does not exist")
    missing = [name for name in required if not os.path.isfile(os.path.join(path, name))]
    missing += [name for name in FastformerTokenizer.resource_files_names.values() if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(f"model folder {path!r} is incomplete: missing {', '.join(missing)}")


def load_model_dir(path: str) -> Tuple[FastformerForSequenceClassification, FastformerTokenizer]:
    """Load a model folder written by `save_model_dir` (or `train.py`), in eval mode."""
    check_model_dir(path)
    model = FastformerForSequenceClassification.from_pretrained(path)
    model.eval()
    tokenizer = FastformerTokenizer.from_pretrained(path)
    return model, tokenizer


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


def encode_texts(tokenizer: FastformerTokenizer, texts: Sequence[str], max_length: int) -> List[List[int]]:
    """Token ids of each text, truncated to `max_length` (the fast path of the tokenizer)."""
    return tokenizer.encode_batch(list(texts), max_length=max_length)["input_ids"]


def count_truncated(tokenizer: FastformerTokenizer, text: str, max_length: int) -> Optional[int]:
    """Number of tokens dropped from `text` by truncation to `max_length` (None when nothing is dropped)."""
    n = len(tokenizer.tokenize(text))
    return n - max_length if n > max_length else None
