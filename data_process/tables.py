"""Tables of texts: CSV and TSV files with a header row, and JSON lines; plain or gzip, UTF-8.

`TableReader` gives each record with the line it starts on (1-based; a CSV/TSV header is line 1) and either its
fields or the reason it cannot be read (`ROW_PROBLEMS`), so callers count bad records and name their lines. The
format comes from the file name (`table_format`: .csv, .tsv/.tab, .jsonl/.ndjson/.json, each optionally .gz).
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

from fastformer.cli import UserError, printable

from .reader import MAX_LINE_BYTES, LongLine, _join, capped_lines, check_input_file, open_binary

__all__ = ["TABLE_FORMATS", "EXTENSIONS", "ROW_PROBLEMS", "Row", "TableReader", "table_format", "join_text"]

TABLE_FORMATS = ("csv", "tsv", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
ROW_PROBLEMS = {
    "blank_line": "empty line",
    "too_long": "record longer than the reader's limit (1 MiB)",
    "invalid_utf8": "not valid UTF-8",
    "unparseable": "not a JSON object (JSON lines) or not valid CSV/TSV",
    "wrong_field_count": "a CSV/TSV row with more or fewer fields than the header",
}
_DIALECTS = {"csv": csv.excel, "tsv": csv.excel_tab}


class Row(NamedTuple):
    """One record: the line it starts on, its fields ({column: value}) or None, and a `ROW_PROBLEMS` key or None."""

    line: int
    fields: Optional[Dict[str, object]]
    problem: Optional[str] = None


def table_format(path: str, given: Optional[str] = None) -> str:
    """`given` when set, else the format of `path` from its extension (a final .gz is looked through)."""
    if given:
        if given not in TABLE_FORMATS:
            raise UserError(f"table format must be one of {', '.join(TABLE_FORMATS)}, got {given!r}")
        return given
    name = path[:-3] if path.lower().endswith(".gz") else path
    ext = os.path.splitext(name)[1].lower()
    if ext not in EXTENSIONS:
        raise UserError(f"{printable(path)}: cannot tell the format from the name; name it .csv, .tsv or .jsonl "
                        "(optionally .gz)")
    return EXTENSIONS[ext]


class TableReader:
    """Iterate over the records of one CSV, TSV or JSON-lines file as `Row`s.

    `columns`: the header of a CSV/TSV file (read when the reader is made: an empty file, an empty or repeated
    column name is a `UserError` naming the file); None for JSON lines, whose records carry their own keys.
    """

    def __init__(self, path: str, file_format: Optional[str] = None, max_record_bytes: int = MAX_LINE_BYTES):
        check_input_file(path)
        self.path = path
        self.format = table_format(path, file_format)
        self.max_record_bytes = int(max_record_bytes)
        self.columns: Optional[List[str]] = None
        if self.format != "jsonl":
            self.columns = self._header()

    def _text_stream(self, stream) -> io.TextIOWrapper:
        # undecodable bytes are kept as surrogates and the record holding them is reported, not the whole file
        return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _header(self) -> List[str]:
        with open_binary(self.path) as stream:
            rows = csv.reader(self._text_stream(stream), _DIALECTS[self.format])
            try:
                header = next(rows, None)
            except csv.Error as exc:
                raise UserError(f"{printable(self.path)}, line 1: the header row is not valid {self.format.upper()} "
                                f"({exc})") from None
        if not header:
            raise UserError(f"{printable(self.path)}: empty file or empty first line; a {self.format.upper()} file "
                            "starts with a header row naming its columns")
        names = [name.strip() for name in header]
        if any(_has_surrogate(name) for name in names):
            raise UserError(f"{printable(self.path)}, line 1: the header row is not valid UTF-8")
        empty = [i + 1 for i, name in enumerate(names) if not name]
        if empty:
            raise UserError(f"{printable(self.path)}, line 1: column {empty[0]} of the header has no name")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise UserError(f"{printable(self.path)}, line 1: column name {printable(repeated[0])!r} appears twice "
                            "in the header")
        return names

    def __iter__(self) -> Iterator[Row]:
        with open_binary(self.path) as stream:
            yield from (self._jsonl_rows(stream) if self.format == "jsonl" else self._csv_rows(stream))

    def _jsonl_rows(self, stream) -> Iterator[Row]:
        for number, raw in enumerate(capped_lines(stream, self.max_record_bytes), start=1):
            if isinstance(raw, LongLine):
                yield Row(number, None, "too_long")
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Row(number, None, "invalid_utf8")
                continue
            if not line.strip():
                yield Row(number, None, "blank_line")
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            yield Row(number, record, None) if isinstance(record, dict) else Row(number, None, "unparseable")

    def _csv_rows(self, stream) -> Iterator[Row]:
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, self.max_record_bytes))
        try:
            rows = csv.reader(self._text_stream(stream), _DIALECTS[self.format])
            next(rows, None)  # the header (checked in __init__)
            assert self.columns is not None
            width, end = len(self.columns), rows.line_num
            while True:
                start = end + 1
                try:
                    fields = next(rows)
                except StopIteration:
                    return
                except csv.Error as exc:
                    end = rows.line_num
                    yield Row(start, None, "too_long" if "field limit" in str(exc) else "unparseable")
                    continue
                end = rows.line_num
                if not fields:
                    yield Row(start, None, "blank_line")
                elif any(_has_surrogate(value) for value in fields):
                    yield Row(start, None, "invalid_utf8")
                elif sum(len(value) for value in fields) > self.max_record_bytes:
                    yield Row(start, None, "too_long")
                elif len(fields) != width:
                    yield Row(start, None, "wrong_field_count")
                else:
                    yield Row(start, dict(zip(self.columns, fields)), None)
        finally:
            csv.field_size_limit(limit)


def join_text(fields: Dict[str, object], columns: Sequence[str]) -> Optional[str]:
    """The text of `columns` of a record, whitespace collapsed, joined as "first. second" (a period added unless the
    first ends with punctuation; empty or null ones left out): "" when all are empty, None when one is a list or
    an object."""
    parts = []
    for column in columns:
        value = fields[column]
        if isinstance(value, (dict, list)):
            return None
        part = "" if value is None else " ".join(str(value).split())
        if part:
            parts.append(part)
    return _join(parts) if parts else ""


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
