"""The train/dev/test splits: their names, the sample arguments, and reading a prepared split file.

A prepared split (written by `fastformer_data.prepare` or `fastformer_data.labelled_files`) is JSON lines
`{"text": str, "label": int}`: the class id, named by the folder's label.txt (stars - 1 for Amazon reviews).
"""

from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence, Tuple

from .cli import UserError
from .labels import LABEL_NAMES

__all__ = ["SPLITS", "SPLIT_BY", "LABEL_FILE", "check_sample_args", "read_label_names", "read_split"]

SPLITS = ("train", "dev", "test")
SPLIT_BY = ("random", "group")
LABEL_FILE = "label.txt"  # a prepared folder's label names, one a line in class-id order


def check_sample_args(num_samples: int, split_sizes: Optional[Sequence[int]], seed: int) -> Optional[List[int]]:
    """The split sizes as a list (None: the default split), or a `UserError` naming the argument that is wrong."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise UserError(f"num_samples must be a positive integer, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed!r}")
    if split_sizes is None:
        return None
    sizes = list(split_sizes)
    if len(sizes) != len(SPLITS) or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in sizes) or sizes[0] < 1:
        raise UserError(f"split_sizes must be 3 non-negative integers (train, dev, test) with train >= 1, got {split_sizes!r}")
    if sum(sizes) != num_samples:
        raise UserError(f"split_sizes {tuple(sizes)} must add up to num_samples ({num_samples})")
    return sizes


def read_label_names(data_dir: str) -> List[str]:
    """The label names of a prepared dataset folder, in class-id order: its label.txt (one name a line), else the
    star ratings (folders written before label.txt)."""
    path = os.path.join(data_dir, LABEL_FILE)
    if not os.path.isfile(path):
        return list(LABEL_NAMES)
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"{path}: expected at least two distinct label names, one a line; got {names}")
    return names


def read_split(path: str, num_labels: Optional[int] = None) -> Tuple[List[str], List[int]]:
    """(texts, labels) of a split file written by `prepare_dataset`; ValueError naming file and line on a bad line.

    Every line must be a JSON object with 'text' and 'label' (a class id below `num_labels`; default: the number of
    names in the label.txt beside the file): a blank, non-UTF-8 or malformed line means a damaged file and is an
    error, never skipped.
    """
    if num_labels is None:
        num_labels = len(read_label_names(os.path.dirname(os.path.abspath(path))))
    texts: List[str] = []
    labels: List[int] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            where = f"{path}, line {line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{where}: not valid UTF-8") from None
            if not line.strip():  # prepare_dataset never writes one: the file is damaged (truncated, edited)
                raise UserError(f"{where}: blank line (a split file holds one JSON object a line)")
            try:
                row = json.loads(line)
            except ValueError as err:
                raise UserError(f"{where}: not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected a JSON object with 'text' and 'label'")
            text, label = row.get("text"), row.get("label")
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"{where}: 'text' must be a non-empty string, got {text!r}")
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_labels:
                raise UserError(f"{where}: 'label' must be an integer 0..{num_labels - 1}, got {label!r}")
            texts.append(text)
            labels.append(label)
    return texts, labels
