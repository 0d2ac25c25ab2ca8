"""Your own labelled texts (CSV, TSV or JSON lines) -> a prepared dataset folder like `prepare`'s.

    prepare_labelled_files("train.csv", "output/mine/data", dev_file=None, test_file="test.csv",
                           text_columns=["title", "body"], label_column="label")

Labels are whatever the files hold (strings, or numbers written as their names); their order (class ids) comes
from a label file (one name a line, as PaddleNLP's `label.txt`) or is sorted (numerically when every name is a
number). Records without a text or a label, and unreadable rows, are skipped and counted by reason with their first
line numbers, as `prepare` does; a missing column, a label outside the label file, or a dev/test label the training
file never has, is an error naming the file, line and column. Without a dev file, a seeded share of the training
file becomes dev. The folder holds train/dev/test.jsonl ({"text", "label": class id}), label.txt and stats.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections import Counter
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from fastformer.cli import UserError, printable
from fastformer.fileio import atomic_open, file_sha256

from .tables import ROW_PROBLEMS, TableReader, join_text, table_format

__all__ = ["SKIP_REASONS", "Example", "LabelledFileReader", "label_name", "read_label_file", "sort_labels",
           "order_labels", "read_labelled_file", "prepare_labelled_files", "DEFAULT_DEV_SHARE"]

logger = logging.getLogger(__name__)

SKIP_REASONS = {
    **ROW_PROBLEMS,
    "empty_text": "the text column(s) empty or null",
    "bad_text": "a text value that is a list or an object",
    "missing_label": "the label empty or null",
    "bad_label": "a label that is a list or an object, or spans several lines",
}
FIRST_LINES_KEPT = 5
DEFAULT_DEV_SHARE = 0.1
FORMAT_VERSION = 1
OUTPUT_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl", "label.txt", "stats.json")


class Example(NamedTuple):
    """One usable record: the line it starts on, its text (columns joined) and its label name."""

    line: int
    text: str
    label: str


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def label_name(value: object) -> str:
    """The name of a label value: a string stripped, an integer (or a whole float: 4.0) as digits; `_Skip` for an
    empty or null value, a list or an object."""
    if value is None:
        raise _Skip("missing_label")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise _Skip("bad_label")
    name = value.strip()
    if not name:
        raise _Skip("missing_label")
    if "\n" in name or "\r" in name:  # label.txt holds one name a line
        raise _Skip("bad_label")
    return name


class LabelledFileReader:
    """The usable `Example`s of one labelled file, counting what is skipped (`SKIP_REASONS`).

    `text_columns`: one or several columns, joined as "first. second" (a period added unless the first ends with
    punctuation; empty ones left out). A column missing from the header (CSV/TSV) or from a record (JSON lines) is a
    `UserError` naming file, line and column. After a full pass, `stats()` and `skipped_summary()` tell what was
    skipped.
    """

    def __init__(self, path: str, text_columns: Sequence[str], label_column: Optional[str],
                 file_format: Optional[str] = None):
        self.text_columns = _check_columns(text_columns, label_column)
        self.label_column = label_column
        self.table = TableReader(path, file_format)
        self.path = path
        if self.table.columns is not None:
            for column in [*self.text_columns, *([label_column] if label_column else [])]:
                if column not in self.table.columns:
                    raise UserError(f"{printable(path)}, line 1: no column {printable(column)!r} (the header has "
                                    f"{', '.join(printable(c) for c in self.table.columns)})")
        self._reset()

    def _reset(self) -> None:
        self.records = 0
        self.usable = 0
        self.skipped: Counter = Counter()
        self.first_lines: Dict[str, List[int]] = {}

    def _example(self, line: int, fields: Dict[str, object]) -> Example:
        wanted = [*self.text_columns, *([self.label_column] if self.label_column else [])]
        missing = [c for c in wanted if c not in fields]
        if missing:  # JSON lines: each record names its own fields
            raise UserError(f"{printable(self.path)}, line {line}: no column {printable(missing[0])!r} (the record "
                            f"has {', '.join(printable(k) for k in fields) or 'no fields'})")
        text = join_text(fields, self.text_columns)
        if text is None:
            raise _Skip("bad_text")
        if not text:
            raise _Skip("empty_text")
        label = label_name(fields[self.label_column]) if self.label_column else ""
        return Example(line, text, label)

    def __iter__(self) -> Iterator[Example]:
        self._reset()
        for row in self.table:
            self.records += 1
            try:
                if row.problem:
                    raise _Skip(row.problem)
                example = self._example(row.line, row.fields)
            except _Skip as skip:
                self.skipped[skip.reason] += 1
                lines = self.first_lines.setdefault(skip.reason, [])
                if len(lines) < FIRST_LINES_KEPT:
                    lines.append(row.line)
                continue
            self.usable += 1
            yield example

    def stats(self) -> dict:
        return {
            "format": self.table.format,
            "records": self.records,
            "usable": self.usable,
            "skipped_total": sum(self.skipped.values()),
            "skipped": {reason: {"count": self.skipped[reason], "first_lines": self.first_lines[reason]}
                        for reason in SKIP_REASONS if self.skipped[reason]},
        }

    def skipped_summary(self) -> str:
        """One line naming the file: "f.csv: skipped 2 of 40 records: empty_text 2 (lines 4, 9)"."""
        parts = [f"{reason} {self.skipped[reason]} (line{'s' if len(self.first_lines[reason]) > 1 else ''} "
                 f"{', '.join(map(str, self.first_lines[reason]))}{', ...' if self.skipped[reason] > FIRST_LINES_KEPT else ''})"
                 for reason in SKIP_REASONS if self.skipped[reason]]
        return (f"{printable(self.path)}: skipped {sum(self.skipped.values())} of {self.records} records: "
                + "; ".join(parts))


def _check_columns(text_columns: Sequence[str], label_column: Optional[str]) -> Tuple[str, ...]:
    columns = tuple(text_columns) if not isinstance(text_columns, str) else (text_columns,)
    if not columns or any(not isinstance(c, str) or not c.strip() for c in columns):
        raise UserError(f"--text_column: give one or more column names, got {list(columns)}")
    if len(set(columns)) != len(columns):
        raise UserError(f"--text_column names a column twice: {list(columns)}")
    if label_column is not None and label_column in columns:
        raise UserError(f"--label_column {label_column!r} is also a --text_column")
    return columns


def read_label_file(path: str) -> List[str]:
    """The label names of a label file, one a line in class-id order (blank lines ignored); a repeated name or an
    empty file is a `UserError` naming the file (and line)."""
    if not os.path.isfile(path):
        raise UserError(f"--label_file {printable(path)!r} does not exist")
    names: List[str] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                name = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise UserError(f"{printable(path)}, line {number}: not valid UTF-8") from None
            if not name:
                continue
            if name in names:
                raise UserError(f"{printable(path)}, line {number}: label {printable(name)!r} is listed twice")
            names.append(name)
    if len(names) < 2:
        raise UserError(f"{printable(path)}: a label file lists at least two labels, one a line; it has {len(names)}")
    return names


def sort_labels(names) -> List[str]:
    """Label names in their default order: numerically when every name is a number ("-1" < "2" < "10"), else as
    strings."""
    names = sorted(set(names))
    try:
        return sorted(names, key=lambda name: (float(name), name))
    except ValueError:
        return names


def order_labels(found: Sequence[str], label_file: Optional[str]) -> List[str]:
    """The label names in class-id order: the label file's, else `found` sorted (`sort_labels`)."""
    if label_file:
        return read_label_file(label_file)
    names = sort_labels(found)
    if len(names) < 2:
        raise UserError(f"the training data holds {len(names)} label(s) ({', '.join(map(repr, names))}): a classifier "
                        "needs at least two")
    return names


def read_labelled_file(path: str, text_columns: Sequence[str], label_column: str, label_names: Sequence[str],
                       file_format: Optional[str] = None, what: str = "the model's labels"
                       ) -> Tuple[List[str], List[int], LabelledFileReader]:
    """(texts, class ids, reader) of a labelled file whose labels must be among `label_names` (a `UserError` naming
    file, line, column and value otherwise); skipped records are counted by the reader."""
    reader = LabelledFileReader(path, text_columns, label_column, file_format)
    ids = {name: i for i, name in enumerate(label_names)}
    texts: List[str] = []
    labels: List[int] = []
    for example in reader:
        if example.label not in ids:
            raise UserError(f"{printable(path)}, line {example.line}, column {printable(label_column)!r}: label "
                            f"{printable(example.label)!r} is not one of {what} ({', '.join(map(printable, label_names))})")
        texts.append(example.text)
        labels.append(ids[example.label])
    if reader.skipped:
        logger.warning("%s", reader.skipped_summary())
    if not texts:
        raise UserError(f"{printable(path)}: no usable record" + (f" ({reader.skipped_summary()})" if reader.records
                                                                  else " (no records)"))
    return texts, labels, reader


def _file_args(path: Optional[str]) -> Optional[dict]:
    if not path:
        return None
    return {"name": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def _split_stats(rows: List[Tuple[str, int]], names: Sequence[str]) -> dict:
    counts = Counter(label for _, label in rows)
    words = np.asarray([len(text.split()) for text, _ in rows]) if rows else np.zeros(0)
    return {
        "size": len(rows),
        "labels": {name: counts[i] for i, name in enumerate(names)},
        "words": {"mean": round(float(words.mean()), 1), "median": float(np.median(words)),
                  "max": int(words.max())} if rows else {},
    }


def _dev_from_train(rows: List[Tuple[str, int]], share: float, seed: int) -> Tuple[list, list]:
    """A seeded `share` of the training rows as dev (at least one), the rest as train, both in file order."""
    n_dev = max(1, int(round(len(rows) * share)))
    if n_dev >= len(rows):
        raise UserError(f"--dev_share {share}: the training file has {len(rows)} usable record(s), too few to keep "
                        "some for dev; give a --dev_file")
    dev = set(np.random.default_rng(seed).permutation(len(rows))[:n_dev].tolist())
    return [r for i, r in enumerate(rows) if i not in dev], [r for i, r in enumerate(rows) if i in dev]


def _reusable(output_dir: str, args: dict, overwrite: bool) -> Optional[dict]:
    """The stats of a folder already prepared with `args`; None when it may be written; FileExistsError for a
    non-empty folder holding something else (unless `overwrite`)."""
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return None
    stats = None
    with contextlib.suppress(OSError, ValueError):
        if all(os.path.isfile(os.path.join(output_dir, name)) for name in OUTPUT_FILES):
            with open(os.path.join(output_dir, "stats.json"), encoding="utf-8") as f:
                stats = json.load(f)
    if isinstance(stats, dict) and stats.get("args") == args and stats.get("format_version") == FORMAT_VERSION:
        return stats
    if overwrite:
        return None
    raise FileExistsError(f"data folder {output_dir!r} is not empty and holds no dataset prepared from these files "
                          f"with these settings; choose another folder (or --output_dir)")


def prepare_labelled_files(
    train_file: str,
    output_dir: str,
    dev_file: Optional[str] = None,
    test_file: Optional[str] = None,
    text_columns: Sequence[str] = ("text",),
    label_column: str = "label",
    label_file: Optional[str] = None,
    dev_share: float = DEFAULT_DEV_SHARE,
    seed: int = 42,
    overwrite: bool = False,
) -> dict:
    """Read the labelled files and write the dataset folder; returns its stats (also in stats.json).

    A folder already prepared from the same files (SHA-256) and settings is reused; another non-empty one is an error
    unless `overwrite`. No test file: test.jsonl is empty (train.py then reports no test metrics).
    """
    columns = list(_check_columns(text_columns, label_column))
    if not isinstance(label_column, str) or not label_column.strip():
        raise UserError("--label_column: give the name of the column holding the labels")
    if not dev_file and not 0 < dev_share < 1:
        raise UserError(f"--dev_share must be between 0 and 1 (exclusive), got {dev_share}")
    paths = {"train": train_file, "dev": dev_file, "test": test_file}
    for name, path in paths.items():
        if path:
            table_format(path)  # a name the format cannot be told from: one line, before anything is read
            if not os.path.isfile(path):
                raise UserError(f"--{name}_file {printable(path)!r} does not exist")
    args = {
        "files": {name: _file_args(path) for name, path in paths.items()},
        "text_columns": columns,
        "label_column": label_column,
        "label_file": _file_args(label_file),
        "dev_share": None if dev_file else dev_share,
        "seed": seed,
    }
    previous = _reusable(output_dir, args, overwrite)
    if previous is not None:
        logger.info("reusing the dataset prepared from the same files in %s", output_dir)
        return previous

    given = read_label_file(label_file) if label_file else None
    train_examples, train_reader = _read_all(train_file, columns, label_column)
    names = given or order_labels([e.label for e in train_examples], None)
    what = f"the labels of --label_file {printable(label_file)}" if given else "the labels of the training file"
    ids = {name: i for i, name in enumerate(names)}
    if given:
        _check_known(train_file, train_examples, ids, label_column, what)
    train = [(e.text, ids[e.label]) for e in train_examples]
    readers = {"train": train_reader}
    splits: Dict[str, List[Tuple[str, int]]] = {}
    for name in ("dev", "test"):
        if paths[name]:
            texts, labels, readers[name] = read_labelled_file(paths[name], columns, label_column, names, what=what)
            splits[name] = list(zip(texts, labels))
    if "dev" not in splits:
        train, splits["dev"] = _dev_from_train(train, dev_share, seed)
    splits["train"] = train
    splits.setdefault("test", [])
    unseen = [n for i, n in enumerate(names) if not any(label == i for _, label in train)]
    if unseen:
        logger.warning("labels never seen in the training data: %s", ", ".join(map(printable, unseen)))
    stats = {
        "format_version": FORMAT_VERSION,
        "args": args,
        "source": "labelled_files",
        "files": {name: {"path": os.path.abspath(paths[name]), **readers[name].stats()} for name in readers},
        "label_names": names,
        "label_order": "label_file" if given else "sorted",
        "splits": {name: _split_stats(splits[name], names) for name in ("train", "dev", "test")},
        "warnings": [f"labels never seen in the training data: {unseen}"] if unseen else [],
    }
    _write(output_dir, splits, names, stats)
    return stats


def _read_all(path: str, columns: Sequence[str], label_column: str) -> Tuple[List[Example], LabelledFileReader]:
    reader = LabelledFileReader(path, columns, label_column)
    examples = list(reader)
    if reader.skipped:
        logger.warning("%s", reader.skipped_summary())
    if not examples:
        raise UserError(f"{printable(path)}: no usable record" + (f" ({reader.skipped_summary()})" if reader.records
                                                                  else " (no records)"))
    return examples, reader


def _check_known(path: str, examples: Sequence[Example], ids: Dict[str, int], column: str, what: str) -> None:
    for example in examples:
        if example.label not in ids:
            raise UserError(f"{printable(path)}, line {example.line}, column {printable(column)!r}: label "
                            f"{printable(example.label)!r} is not one of {what} ({', '.join(map(printable, ids))})")


def _write(output_dir: str, splits: Dict[str, List[Tuple[str, int]]], names: Sequence[str], stats: dict) -> None:
    """Every file through a temporary name, replaced together at the end (stats.json last)."""
    os.makedirs(output_dir, exist_ok=True)
    encode = json.JSONEncoder(ensure_ascii=False).encode
    contents = {f"{name}.jsonl": "".join(encode({"text": t, "label": l}) + "\n" for t, l in rows)
                for name, rows in splits.items()}
    contents["label.txt"] = "".join(name + "\n" for name in names)
    contents["stats.json"] = json.dumps(stats, indent=2, ensure_ascii=False) + "\n"
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(atomic_open(os.path.join(output_dir, name)))
                 for name in reversed(OUTPUT_FILES)}
        for name in OUTPUT_FILES:
            files[name].write(contents[name])
