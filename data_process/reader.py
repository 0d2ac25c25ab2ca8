"""Streaming reader for the Amazon review releases, with accounting of every record it cannot use.

Accepted input (plain or gzip; gzip is recognised by its magic bytes, whatever the file is called):

* 2014 release (McAuley et al.), e.g. `reviews_Electronics_5.json.gz`: one object a line with `reviewText`,
  `summary`, `overall` (5.0), `helpful`, ... Some copies have Python-literal lines (`{'reviewText': ...}`);
  they are parsed with `ast.literal_eval` when a line is not strict JSON.
* 2018 release (Ni et al.), e.g. `Electronics_5.json.gz`: the same fields plus `verified`, `vote`, ...;
  `reviewText` is missing from some records.
* 2023 release (Hou et al.), e.g. `Electronics.jsonl.gz`: `text`, `title`, `rating`.

The release is detected per record from its field names (`RELEASES`); 2014 and 2018 records are told apart by
`helpful` (2014) and `verified`/`vote`/`style`/`image` (2018), and reported as "2014/2018" when they have none.

A usable record has a non-empty review text (whitespace normalised, HTML character references such as `&#34;`
unescaped, HTML line breaks of the 2023 release turned into spaces) and a whole-star rating 1..5. Every other line is
skipped and counted under one of `SKIP_REASONS`, with its first line numbers (1-based). A line longer than
`MAX_LINE_BYTES` (1 MiB; a real review is a few KB) is skipped as `too_long` without being read into memory whole. A
truncated or corrupt gzip file is an error naming the file, the byte offset reached and what was counted up to there
(`stats()` keeps those counts). A fractional rating such as 3.5 is skipped (`non_integer_rating`): Amazon ratings are
whole stars, so it signals a damaged record, and rounding it would invent a label.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import math
import os
import re
import sys
import warnings
import zlib
from collections import Counter
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

from tqdm import tqdm

from fastformer.cli import UserError
from fastformer.fileio import decompressed, is_gzip, open_binary
from fastformer.labels import RATINGS

__all__ = [
    "RATINGS",
    "TEXT_FIELDS",
    "SKIP_REASONS",
    "MAX_LINE_BYTES",
    "LongLine",
    "capped_lines",
    "Review",
    "ReviewReader",
    "open_binary",
    "is_gzip",
    "normalize_text",
    "check_text_fields",
    "group_key",
    "check_input_file",
]

# Logical text field -> its name in the 2014/2018 releases and in the 2023 release.
TEXT_FIELDS: Dict[str, Dict[str, str]] = {
    "text": {"2014/2018": "reviewText", "2023": "text"},
    "title": {"2014/2018": "summary", "2023": "title"},
}
RATING_FIELD = {"2014/2018": "overall", "2023": "rating"}
RELEASES = ("2014", "2018", "2014/2018", "2023")
_ONLY_2014 = ("helpful",)
_ONLY_2018 = ("verified", "vote", "style", "image")

SKIP_REASONS = {
    "blank_line": "empty line",
    "too_long": "line longer than the reader's limit (MAX_LINE_BYTES, 1 MiB by default)",
    "invalid_utf8": "not valid UTF-8 (or text with unpaired surrogate escapes)",
    "unparseable": "neither a JSON object nor a Python-literal dict",
    "unknown_format": "an object without the text/rating fields of any release",
    "missing_text": "review text missing, null, not a string or empty",
    "missing_rating": "rating missing or null",
    "non_numeric_rating": "rating not a finite number",
    "non_integer_rating": "rating not a whole number of stars (e.g. 3.5)",
    "rating_out_of_range": "rating outside 1..5",
}
FIRST_LINES_KEPT = 5
MAX_LINE_BYTES = 1 << 20  # longest line read, newline not counted; a longer one is skipped as too_long

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_decode_json = json.JSONDecoder().decode


class LongLine(NamedTuple):
    """A line over the limit that `capped_lines` dropped: its size in bytes (newline not counted) as far as it was
    read, and whether its end was reached (False: the input stopped there)."""

    size: int
    ended: bool


def capped_lines(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES,
                 max_skip_bytes: Optional[int] = None) -> Iterator[Union[bytes, LongLine]]:
    """The lines of a binary stream (with their newline) in bounded memory: a line over `max_line_bytes` (newline
    not counted) is read and dropped in chunks of at most max(max_line_bytes, 64 KiB) and given as a `LongLine`.
    With `max_skip_bytes`, a line still without an end after that many bytes (/dev/zero) ends the iteration."""
    readline, cap = stream.readline, max_line_bytes
    chunk = max(cap, 1 << 16)
    while True:
        line = readline(cap + 1)
        if not line:
            return
        if len(line) > cap and not line.endswith(b"\n"):
            size = len(line)
            while line and not line.endswith(b"\n"):
                if max_skip_bytes is not None and size >= max_skip_bytes:
                    yield LongLine(size, False)
                    return
                line = readline(chunk)
                size += len(line)
            yield LongLine(size - line.endswith(b"\n"), True)
        else:
            yield line


class Review(NamedTuple):
    """One usable record: 1-based line number, normalised text, star rating and group (see `group_key`)."""

    line: int
    text: str
    rating: int
    group: Optional[str] = None


class _Skip(Exception):
    """Internal: the current record is skipped for `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_input_file(path: str) -> None:
    """A one-line error when `path` is not a readable file: missing (FileNotFoundError) or a folder (UserError)."""
    if os.path.isdir(path):
        raise UserError(f"input file {path!r} is a folder, not a review file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input file {path!r} does not exist")


def normalize_text(text: str) -> str:
    """Unescape HTML character references (the 2014 release writes quotes as `&#34;`), turn HTML line breaks into
    spaces, collapse all whitespace to single spaces, strip the ends."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _BR.sub(" ", text)
    return " ".join(text.split())


def detect_release(record: dict) -> Optional[str]:
    """The release a record comes from ("2014", "2018", "2014/2018", "2023"), None when unknown."""
    if "overall" in record or "reviewText" in record:
        if any(k in record for k in _ONLY_2014):
            return "2014"
        if any(k in record for k in _ONLY_2018):
            return "2018"
        return "2014/2018"
    if "rating" in record or "text" in record:
        return "2023"
    return None


GROUP_FIELDS = ("parent_asin", "asin", "source")  # product (2023: the parent product of all variants), else source


def group_key(record: dict) -> Optional[str]:
    """What a record's review is about, for grouped splits: its product (`parent_asin` in the 2023 release, `asin` in
    2014/2018), else the file it was collected from (`source`, as in merged collections), else None."""
    for name in GROUP_FIELDS:
        value = record.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return f"{name}:{str(value).strip()}"
    return None


def parse_rating(value: object) -> int:
    """A star rating 1..5 from a JSON value (number or numeric string); raises _Skip otherwise."""
    if value is None:
        raise _Skip("missing_rating")
    if isinstance(value, bool):
        raise _Skip("non_numeric_rating")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Skip("non_numeric_rating") from None
    if not math.isfinite(number):
        raise _Skip("non_numeric_rating")
    if number != int(number):
        raise _Skip("non_integer_rating")
    if int(number) not in RATINGS:
        raise _Skip("rating_out_of_range")
    return int(number)


def check_text_fields(text_fields: Sequence[str]) -> tuple:
    """Validate `text_fields` (a non-empty sequence of "title" / "text", no repeats) and return it as a tuple."""
    fields = tuple(text_fields)
    unknown = [f for f in fields if f not in TEXT_FIELDS]
    if not fields or unknown or len(set(fields)) != len(fields):
        raise UserError(f"text_fields must be a non-empty sequence of distinct names from {sorted(TEXT_FIELDS)}, got {fields}")
    return fields


def _join(parts: List[str]) -> str:
    """'title. text': a period is added after a part unless it already ends with punctuation."""
    out = parts[0]
    for part in parts[1:]:
        out = f"{out} {part}" if out[-1] in ".!?;:" else f"{out}. {part}"
    return out


class ReviewReader:
    """Iterate over the usable reviews of one file and count what is skipped.

    `text_fields` lists the logical fields joined into the text, e.g. ("title", "text") gives "title. text".
    The review text ("text") is required whenever it is listed; the other fields are added when present.
    After a full iteration, `stats()` returns the counts of that pass.
    """

    def __init__(self, path: str, text_fields: Sequence[str] = ("text",), show_progress: bool = True,
                 max_line_bytes: int = MAX_LINE_BYTES):
        check_input_file(path)
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
        self.max_line_bytes = int(max_line_bytes)
        self.path = path
        self.text_fields = check_text_fields(text_fields)
        self.required = "text" if "text" in self.text_fields else self.text_fields[0]
        self.show_progress = show_progress
        self._reset()

    def _reset(self) -> None:
        self.lines_read = 0
        self.usable = 0
        self.releases: Counter = Counter()
        self.python_literal_lines = 0
        self.skipped: Counter = Counter()
        self.first_lines: Dict[str, List[int]] = {}

    def _parse(self, raw: bytes) -> dict:
        """Bytes of one line -> dict, or _Skip."""
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Skip("invalid_utf8") from None
        try:
            record = _decode_json(line)
        except (ValueError, RecursionError):
            record = self._parse_not_json(line)
        if not isinstance(record, dict):
            raise _Skip("unparseable")
        return record

    def _parse_not_json(self, line: str) -> object:
        """A line that is not strict JSON: blank, starting with a byte order mark, or a Python literal."""
        line = line.strip().lstrip("\ufeff")
        if not line:
            raise _Skip("blank_line")
        try:
            return _decode_json(line)
        except (ValueError, RecursionError):
            pass
        try:
            with warnings.catch_warnings():  # e.g. "invalid decimal literal" on a damaged line: it is counted instead
                warnings.simplefilter("ignore", SyntaxWarning)
                record = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise _Skip("unparseable") from None
        if isinstance(record, dict):
            self.python_literal_lines += 1
        return record

    def _review(self, record: dict, line_no: int) -> Review:
        """A usable Review from a parsed record, or _Skip."""
        release = detect_release(record)
        if release is None:
            raise _Skip("unknown_format")
        family = "2023" if release == "2023" else "2014/2018"
        parts = []
        for field in self.text_fields:
            value = record.get(TEXT_FIELDS[field][family])
            value = normalize_text(value) if isinstance(value, str) else ""
            if value:
                parts.append(value)
            elif field == self.required:
                raise _Skip("missing_text")
        rating = parse_rating(record.get(RATING_FIELD[family]))
        text = _join(parts)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Skip("invalid_utf8") from None
        self.releases[release] += 1
        return Review(line_no, text, rating, group_key(record))

    def _skip(self, reason: str, line_no: int) -> None:
        self.skipped[reason] += 1
        lines = self.first_lines.setdefault(reason, [])
        if len(lines) < FIRST_LINES_KEPT:
            lines.append(line_no)

    def __iter__(self) -> Iterator[Review]:
        self._reset()
        size = os.path.getsize(self.path)
        progress = tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"reading {os.path.basename(self.path)}",
            disable=not self.show_progress,
            mininterval=0.5 if sys.stderr.isatty() else 5.0,
        )
        with open(self.path, "rb") as raw, decompressed(raw) as stream, progress:
            done = 0
            try:
                for line_no, line in enumerate(self._lines(stream), start=1):
                    self.lines_read = line_no
                    if not line_no & 0x3FFF:  # progress in bytes of the (compressed) file
                        progress.update(raw.tell() - done)
                        done = raw.tell()
                    try:
                        if line is None:
                            raise _Skip("too_long")
                        review = self._review(self._parse(line), line_no)
                    except _Skip as skip:
                        self._skip(skip.reason, line_no)
                        continue
                    self.usable += 1
                    yield review
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise UserError(
                    f"{self.path}: truncated or corrupt gzip data near byte {raw.tell()} of {size} after line "
                    f"{self.lines_read} ({type(exc).__name__}: {exc}); counted up to there: {self.usable} usable, "
                    f"{sum(self.skipped.values())} skipped"
                ) from None
            progress.update(size - done)

    def _lines(self, stream: BinaryIO) -> Iterator[Optional[bytes]]:
        """The lines of `stream` (with their newline), None for a line over `max_line_bytes` (`capped_lines`)."""
        for line in capped_lines(stream, self.max_line_bytes):
            yield None if isinstance(line, LongLine) else line

    def detected_release(self) -> Optional[str]:
        """The most common release among the usable records (None if there were none)."""
        return self.releases.most_common(1)[0][0] if self.releases else None

    def stats(self) -> dict:
        """Counts of the pass: lines, usable records, releases, skipped records by reason with first lines."""
        return {
            "lines_read": self.lines_read,
            "usable": self.usable,
            "detected_format": self.detected_release(),
            "formats": {r: self.releases[r] for r in RELEASES if self.releases[r]},
            "python_literal_lines": self.python_literal_lines,
            "skipped_total": sum(self.skipped.values()),
            "skipped": {
                reason: {"count": self.skipped[reason], "first_lines": self.first_lines[reason]}
                for reason in SKIP_REASONS
                if self.skipped[reason]
            },
        }

    def skipped_summary(self) -> str:
        """One line naming the file, e.g. "data/x.json.gz: skipped 3 of 100 lines: unparseable 2 (lines 4, 9), ..."."""
        parts = [
            f"{reason} {self.skipped[reason]} (line{'s' if len(self.first_lines[reason]) > 1 else ''} "
            f"{', '.join(map(str, self.first_lines[reason]))}{', ...' if self.skipped[reason] > FIRST_LINES_KEPT else ''})"
            for reason in SKIP_REASONS
            if self.skipped[reason]
        ]
        total = sum(self.skipped.values())
        if not self.lines_read:
            return f"{self.path}: the file is empty (no lines)"
        return f"{self.path}: skipped {total} of {self.lines_read} lines: " + "; ".join(parts)
