"""Predict the label (for a rating model, the star rating) of raw texts with a trained or exported Fastformer model.

    python predict.py "Great product." "Broke after a week."            # the model that comes with the repository
    python predict.py --model_dir output/demo/export --input_file reviews.txt --format jsonl --output preds.jsonl
    python predict.py --model_dir output/mine/model --input_file new.csv --text_column title body --output out.csv
    cat reviews.jsonl | python predict.py --model_dir output/demo/export -
    python predict.py --model_dir output/demo/model --explain --explain_html why.html "Great product."

Model: --model_dir, else models/fastformer-amazon-reviews-rating (1-5 stars, trained on real Amazon reviews; its
README.md is the model card). Each result gives the label name, `rating` (stars) for a rating model (labels 1..5),
and the probability of every label.

Input: the text arguments, or --input_file FILE ("-" or a lone "-" argument: standard input) with one text per
line, JSON lines with a "text" field (an "id" field is passed through), or a CSV/TSV file with a header row (the
other columns are passed through). --text_column names the field(s) or column(s) holding the text (several are
joined as "first. second"). Which format is --input_format's: by default from the extension (.jsonl/.ndjson,
.csv, .tsv/.tab, .txt), and otherwise JSON lines when the first non-blank line starts with "{". Lines are decoded
one by one: a line that is not UTF-8, not valid JSON (JSON lines), without a string "text", empty or only
whitespace, or over 1 MiB (prepare's limit: it is skipped without being held in memory) gets an error naming its
line number and is never given to the model; every other line is still predicted. A line with no end within
256 MiB (/dev/zero) ends the input with that error. Texts longer than the model's max length are truncated and
say so (`truncated_tokens`); `unk_share` is the share of a text's tokens the vocabulary does not know, with a
`warning` when it is over half. Output (--format; by default from the --output extension, else a table): a table
(control and bidi characters of the texts escaped), JSON lines, CSV or TSV, one row per input, in input order, to
standard output or --output FILE (a file is written whole or not at all, through its symlink if it is one; a FIFO
or device such as /dev/stdout is written to; never the input file nor a file in the model folder or another model
or export folder). docs/own_data.md describes the CSV/TSV columns.

--explain adds each review's top words to the table (highlighted on a terminal) and an "explanation" (token and
word scores, docs/explanations.md) to JSON lines; --explain_html FILE writes one self-contained HTML page of them.
Explanations need a trained model folder.

Exit status: 0 when every input was predicted; 1 when any input failed (the results of all the other inputs are
still written first); 2 when the arguments, the input file (missing, or empty: no line at all) or the model cannot
be used, or the model gives NaN/Inf (one line on standard error).
"""

from __future__ import annotations

import fastformer.env  # noqa: F401  (first, before paddle loads: MKL settings)

import argparse
import contextlib
import csv
import functools
import io
import itertools
import json
import os
import stat
import sys
from typing import BinaryIO, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

from fastformer_data.reader import MAX_LINE_BYTES, LongLine, capped_lines
from fastformer_data.tables import ROW_PROBLEMS, TableReader, join_text, table_format
from fastformer.cli import UserError, printable, run_main
from fastformer.fileio import atomic_open

CHUNK = 2048  # lines read, predicted and written at a time (bounded memory on large files)
HTML_MAX_REVIEWS = 1000  # reviews on an --explain_html page
INPUT_FORMATS = ("auto", "text", "jsonl", "csv", "tsv")
OUTPUT_FORMATS = ("table", "jsonl", "csv", "tsv")
MAX_SKIP_BYTES = 1 << 28  # a line over MAX_LINE_BYTES with no end within 256 MiB (/dev/zero) ends the input


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("texts", nargs="*", help="review texts (a lone '-' reads standard input)")
    parser.add_argument("--model_dir", default=None,
                        help="export folder (export_model.py) or trained model folder; default: the model that comes "
                        "with the repository, models/fastformer-amazon-reviews-rating (1-5 stars, real Amazon reviews)")
    parser.add_argument("--input_file", default=None,
                        help="one text per line, JSON lines, or CSV/TSV with a header row; '-': stdin")
    parser.add_argument("--input_format", choices=INPUT_FORMATS, default="auto",
                        help="text: one text a line; jsonl: a JSON object a line; csv/tsv: a header row, then one "
                        "record a row; auto: from the extension, else jsonl when the first non-blank line starts "
                        "with '{'")
    parser.add_argument("--text_column", nargs="+", default=["text"], metavar="COLUMN",
                        help="field(s) of JSON lines or column(s) of CSV/TSV holding the text, joined (default: text)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="output format (default: from the --output extension .jsonl/.csv/.tsv, else table)")
    parser.add_argument("--output", default=None,
                        help="write here instead of standard output ('-': standard output); not the input file")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bar (else shown for input files over 1 MiB or stdin when stderr is a tty)")
    from fastformer.inference.args import add_explain_args, add_predictor_args

    add_predictor_args(parser)
    add_explain_args(parser)
    args = parser.parse_args(argv)
    if args.input_file is None and args.texts == ["-"]:
        args.input_file, args.texts = "-", []
    if args.input_file is not None and args.texts:
        parser.error("give review texts or --input_file, not both")
    if args.input_file is None and not args.texts:
        parser.error("no input: give review texts, --input_file FILE or '-' for standard input")
    if args.format is None:
        ext = os.path.splitext(args.output or "")[1].lower().lstrip(".")
        args.format = {"ndjson": "jsonl", "tab": "tsv"}.get(ext, ext) if args.output not in (None, "-") else ""
        args.format = args.format if args.format in OUTPUT_FORMATS else "table"
    if args.input_format == "auto" and args.input_file not in (None, "-"):
        name = args.input_file[:-3] if args.input_file.lower().endswith(".gz") else args.input_file
        args.input_format = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}.get(os.path.splitext(name)[1].lower(),
                                                                              "auto")
    if args.input_format in ("csv", "tsv") and args.input_file in (None, "-"):
        parser.error(f"--input_format {args.input_format}: give the file with --input_file (not standard input)")
    if args.model_dir is None:
        from fastformer.inference.folders import shipped_model_dir

        args.model_dir = shipped_model_dir()
    return args


# ------------------------------------------------------------------------------------------------------ reading
Line = Tuple[int, Optional[str], Optional[str]]  # (line number, text or None, error or None)


def iter_lines(stream: BinaryIO, on_bytes=None, max_line_bytes: Optional[int] = None) -> Iterator[Line]:
    """Lines of a binary stream, each decoded on its own (a bad line does not spoil the others).

    A UTF-8 byte-order mark and "\\r" line ends are dropped; a final newline makes no extra empty line. A line over
    `max_line_bytes` (default MAX_LINE_BYTES, prepare's) is an error for its line, dropped as it is read (bounded
    memory); one with no end within MAX_SKIP_BYTES ends the input. `on_bytes(n)` is called with the size of each raw
    line (progress).
    """
    cap = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    for number, raw in enumerate(capped_lines(stream, cap, max(MAX_SKIP_BYTES, cap + 1)), start=1):
        if isinstance(raw, LongLine):
            if on_bytes is not None:
                on_bytes(raw.size)
            yield number, None, (
                f"line {number}: {raw.size:,} bytes, longer than the {cap:,} a line may have; skipped"
                if raw.ended else f"line {number}: no line end within {raw.size:,} bytes (a line may have {cap:,}); "
                "the rest of the input was not read")
            continue
        if on_bytes is not None:
            on_bytes(len(raw))
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            yield number, None, f"line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start})"


def read_lines(data: bytes) -> List[Line]:
    """`iter_lines` over bytes in memory."""
    return list(iter_lines(io.BytesIO(data)))


JSONL_EXTENSIONS, TEXT_EXTENSIONS = (".jsonl", ".ndjson"), (".txt",)


def input_is_jsonl(path: Optional[str], input_format: str = "auto") -> Optional[bool]:
    """Whether `path` holds JSON lines, from --input_format or the file's extension; None: decide from the
    first non-blank line (standard input, other extensions)."""
    if input_format != "auto":
        return input_format == "jsonl"
    ext = os.path.splitext(path or "")[1].lower() if path not in (None, "-") else ""
    return True if ext in JSONL_EXTENSIONS else False if ext in TEXT_EXTENSIONS else None


def _looks_jsonl(text: str) -> bool:
    """A line meant as JSON: it starts with "{" (a malformed one is then reported, not read as a review)."""
    return text.lstrip().startswith("{")


def _record(number: int, text: Optional[str], error: Optional[str], jsonl: bool,
            columns: Sequence[str] = ("text",)) -> dict:
    record: Dict[str, object] = {"line": number}
    if error is None and jsonl:
        if not text.strip():
            error = f"line {number}: empty line"
        else:
            try:
                obj = json.loads(text)
            except ValueError as exc:
                obj, error = None, f"line {number}: not valid JSON ({exc})"
            if error is None:
                missing = [c for c in columns if not isinstance(obj, dict) or c not in obj]
                wrong = [c for c in columns if not missing and not isinstance(obj[c], str)]
                if missing:
                    error = f"line {number}: JSON record without a {missing[0]!r} field"
                elif wrong:
                    error = f"line {number}: {wrong[0]!r} is {type(obj[wrong[0]]).__name__}, not a string"
                else:
                    text = obj[columns[0]] if len(columns) == 1 else join_text(obj, columns)
                    if "id" in obj:
                        record["id"] = obj["id"]
    if error is None and not text.strip():
        error = f"line {number}: {'empty' if not text else 'whitespace-only'} text"
    record["text"] = text if error is None else None
    record["error"] = error
    return record


def iter_records(lines: Iterable[Line], info: Optional[dict] = None, jsonl: Optional[bool] = None,
                 columns: Sequence[str] = ("text",)) -> Iterator[dict]:
    """Records {"line", "text", "error", "id"?} from decoded lines, one review per line or JSON lines.

    `jsonl` True/False says which; None: JSON lines when the first non-blank decodable line starts with "{" (lines
    before it are held back until then). `info["jsonl"]` is set once that is decided.
    """
    info = {} if info is None else info
    held: List[Line] = []
    if jsonl is not None:
        info["jsonl"] = jsonl
    for line in lines:
        if jsonl is None:
            number, text, error = line
            if error is None and text.strip():
                jsonl = info["jsonl"] = _looks_jsonl(text)
                for h in held:
                    yield _record(*h, jsonl, columns)
                held = []
            else:
                held.append(line)
                continue
        yield _record(*line, jsonl, columns)
    info.setdefault("jsonl", False)
    for h in held:
        yield _record(*h, False, columns)


def iter_table_records(table: TableReader, columns: Sequence[str]) -> Iterator[dict]:
    """Records {"line", "text", "error", "columns"} of a CSV/TSV file: the text of `columns` (joined), and every
    column of the row passed through."""
    for row in table:
        if row.problem:
            yield {"line": row.line, "text": None, "error": f"line {row.line}: {ROW_PROBLEMS[row.problem]}",
                   "columns": {}}
            continue
        text = join_text(row.fields, columns)
        error = None if text else f"line {row.line}: empty text in column(s) {', '.join(columns)}"
        yield {"line": row.line, "text": text or None, "error": error, "columns": row.fields}


def open_table(path: str, file_format: str, columns: Sequence[str]) -> TableReader:
    """The CSV/TSV reader of `path`; a `UserError` naming file and column when a text column is not in the header."""
    table = TableReader(path, table_format(path, file_format))
    for column in columns:
        if column not in table.columns:
            raise UserError(f"{printable(path)}, line 1: no column {printable(column)!r} (the header has "
                            f"{', '.join(map(printable, table.columns))}); name the text with --text_column")
    return table


def parse_records(lines: Sequence[Line], jsonl: Optional[bool] = None) -> Tuple[List[dict], bool]:
    """All records of `lines` and whether they were JSON lines."""
    info: dict = {}
    records = list(iter_records(lines, info, jsonl))
    return records, info["jsonl"]


# ------------------------------------------------------------------------------------------------------ writing
HIGHLIGHT, PLAIN = "\x1b[1;33m", "\x1b[0m"  # bold yellow on a terminal


def _preview(text: Optional[str], width: int = 60, marked: Sequence[int] = ()) -> str:
    """The text on one line, printable, cut to `width` characters; the words at the `marked` positions (of
    text.split()) highlighted."""
    words = [printable(w) for w in (text or "").split()]
    plain = " ".join(words)
    cut = len(plain) > width
    limit = width - 3 if cut else len(plain)
    if not marked:
        return plain[:limit] + ("..." if cut else "")
    flags = []  # per character of `plain`: inside a marked word
    for i, word in enumerate(words):
        flags += ([False] if i else []) + [i in marked] * len(word)
    out, inside = [], False
    for char, flag in zip(plain[:limit], flags):
        if flag != inside:
            out.append(HIGHLIGHT if flag else PLAIN)
            inside = flag
        out.append(char)
    return "".join(out) + (PLAIN if inside else "") + ("..." if cut else "")


def top_word_positions(explanation: dict) -> List[int]:
    """Positions (in text.split()) of the words that are among the explanation's top words and support the rating."""
    from fastformer.inference.explain import bare_word

    top = {w.lower() for w in explanation.get("top_words") or ()}
    return [i for i, w in enumerate(explanation.get("words") or ())
            if (w.get("score") or 0) > 0 and bare_word(w["word"]).lower() in top]


def use_colour(out: TextIO) -> bool:
    """Highlight on a terminal, unless NO_COLOR is set or TERM is dumb."""
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class TableWriter:
    """Fixed-width rows: where, rating (a rating model) or label, confidence, truncated tokens, unknown-token share,
    the text (or the error), printable (see `printable`); with explanations, a line of top words under each row
    (highlighted in the text on a terminal)."""

    def __init__(self, out: TextIO, key: str, labels: Sequence[str] = (), rating: bool = True,
                 columns: Optional[Sequence[str]] = None, text_columns: Sequence[str] = ()):
        self.out, self.key = out, key
        self.colour = use_colour(out)
        self.field = "rating" if rating else "label"
        self.width = 6 if rating else max(6, min(20, max(map(len, labels), default=6)))
        out.write(f"{key:>6}  {self.field:>{self.width}}  {'conf':>5}  {'trunc':>5}  {'unk':>4}  text\n")
        out.write(f"{'-' * 6}  {'-' * self.width}  {'-' * 5}  {'-' * 5}  {'-' * 4}  {'-' * 60}\n")

    def write(self, record: dict) -> None:
        where, w = record.get("line", record.get("index")), self.width
        if record["error"]:
            self.out.write(f"{where:>6}  {'-':>{w}}  {'-':>5}  {'-':>5}  {'-':>4}  ERROR: {printable(record['error'])}\n")
            return
        conf = max(record["probabilities"].values())
        flag = "[mostly unknown words] " if record.get("warning") else ""
        explanation = record.get("explanation")
        marked = top_word_positions(explanation) if explanation and self.colour else ()
        self.out.write(f"{where:>6}  {printable(record[self.field]):>{w}}  {conf:>5.2f}  {record['truncated_tokens']:>5}  "
                       f"{record['unk_share']:>4.0%}  {flag}{_preview(record['text'], marked=marked)}\n")
        if explanation:
            words = ", ".join(printable(t) for t in explanation.get("top_words") or ()) or "(none)"
            self.out.write(f"{'':>6}  {'':>{w}}  top words ({explanation['method']}): {words}\n")


class JsonlWriter:
    """One JSON object a result; a CSV/TSV input's columns other than the text under "columns"."""

    def __init__(self, out: TextIO, key: str, labels: Sequence[str] = (), rating: bool = True,
                 columns: Optional[Sequence[str]] = None, text_columns: Sequence[str] = ()):
        self.out = out
        self.fields = (["rating"] if rating else []) + ["label", "probabilities", "truncated_tokens", "unk_share",
                                                         "warning", "error", "text"]
        self.text_columns = tuple(text_columns)

    def write(self, record: dict) -> None:
        keys = [k for k in ("line", "index", "id") if k in record] + self.fields
        keys += ["explanation"] if "explanation" in record else []
        out = {k: record.get(k) for k in keys}
        if "columns" in record:
            out["columns"] = {k: v for k, v in record["columns"].items() if k not in self.text_columns}
        # allow_nan=False: a bare NaN is not JSON (the predictor refuses non-finite outputs before this)
        self.out.write(json.dumps(out, ensure_ascii=False, allow_nan=False) + "\n")


class CsvWriter:
    """A header row, then one row a result: the input's columns (a CSV/TSV input's own, else where it came from and
    the text), then label, rating (a rating model), confidence, prob_<label> for every label, truncated tokens,
    unknown-token share, warning and error (and top_words, a JSON list, with `explain`). An input column named like
    one of these is written as input_<name>."""

    def __init__(self, out: TextIO, key: str, labels: Sequence[str] = (), rating: bool = True,
                 columns: Optional[Sequence[str]] = None, text_columns: Sequence[str] = (), delimiter: str = ",",
                 explain: bool = False):
        self.writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        self.labels = list(labels)
        self.predicted = (["label"] + (["rating"] if rating else []) + ["confidence"]
                          + [f"prob_{name}" for name in self.labels] + ["truncated_tokens", "unk_share", "warning",
                                                                         "error"]
                          + (["top_words"] if explain else []))
        self.columns = list(columns) if columns is not None else [key if key != "#" else "index"] + (
            ["id"] if key == "line" else []) + ["text"]
        self.writer.writerow([f"input_{c}" if c in self.predicted else c for c in self.columns] + self.predicted)

    def write(self, record: dict) -> None:
        given = record.get("columns") or {k: record.get(k) for k in self.columns}
        probabilities = record.get("probabilities") or {}
        values = {"label": record.get("label"), "rating": record.get("rating"),
                  "confidence": f"{max(probabilities.values()):.4f}" if probabilities else None,
                  **{f"prob_{n}": f"{probabilities[n]:.4f}" if probabilities else None for n in self.labels},
                  "truncated_tokens": record.get("truncated_tokens"), "unk_share": record.get("unk_share"),
                  "warning": record.get("warning"), "error": record.get("error"),
                  "top_words": (record.get("explanation") or {}).get("top_words")}
        row = [given.get(c) for c in self.columns] + [values[c] for c in self.predicted]
        self.writer.writerow(["" if v is None else v if isinstance(v, (str, int, float)) else json.dumps(v)
                              for v in row])


WRITERS = {"table": TableWriter, "jsonl": JsonlWriter, "csv": CsvWriter,
           "tsv": lambda *a, **k: CsvWriter(*a, delimiter="\t", **k)}


def _chunks(items: Iterable[dict], size: int) -> Iterator[List[dict]]:
    chunk: List[dict] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_records(predictor, records: Iterable[dict], writer, explainer=None, page: Optional[list] = None
                    ) -> Dict[str, int]:
    """Predict the records without an error and write every record, in order, a chunk at a time (bounded
    memory); counts of predicted, failed, truncated and mostly-unknown records. Non-finite model outputs are a
    UserError naming the lines (or text arguments). With an `explainer`, each result gets its "explanation"; `page`
    collects the first HTML_MAX_REVIEWS records for the HTML page."""
    from fastformer.inference.predictor import NonFiniteOutputError

    predict = predictor.predict
    if explainer is not None:
        from fastformer.inference.explain import explain_predictions

        predict = functools.partial(explain_predictions, predictor, explainer)
    counts = {"predicted": 0, "errors": 0, "truncated": 0, "unknown": 0}
    for chunk in _chunks(records, CHUNK):
        todo = [r for r in chunk if r["error"] is None]
        try:
            results = predict([r["text"] for r in todo]) if todo else []
        except NonFiniteOutputError as exc:
            where = [todo[i].get("line", todo[i].get("index")) for i in exc.indices]
            what = "line(s)" if "line" in todo[0] else "text argument(s) #"
            raise UserError(f"the model in {predictor.model_dir!r} gave non-finite logits (NaN or Inf) for {what} "
                            f"{', '.join(map(str, where[:10]))}{' ...' if len(where) > 10 else ''}: its weights are "
                            "damaged or the model diverged; no rating was given") from exc
        for record, result in zip(todo, results):
            record.update(result)
            if result["error"] and "line" in record:
                record["error"] = f"line {record['line']}: {result['error']}"
        for record in chunk:
            if record["error"]:
                for field in (("rating",) if getattr(predictor, "rating_model", True) else ()) + ("label",
                                                                                                  "probabilities"):
                    record.setdefault(field, None)
                record.setdefault("truncated_tokens", 0)
                counts["errors"] += 1
            else:
                counts["predicted"] += 1
                counts["truncated"] += bool(record["truncated_tokens"])
                counts["unknown"] += bool(record.get("warning"))
            writer.write(record)
            if page is not None and len(page) < HTML_MAX_REVIEWS:
                page.append(record)
    return counts


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_paths(args) -> None:
    """UserError for an input file that is missing, a directory or empty, an --output into a missing folder, onto a
    directory or into a model or export folder, and an output that is the input (the same file under any name: links,
    symlinks, redirections)."""
    inp = None  # the input's stat
    if args.input_file == "-":
        with contextlib.suppress(OSError, ValueError, AttributeError):  # stdin may be no real file (tests)
            inp = os.fstat(sys.stdin.fileno())
    elif args.input_file is not None:
        if os.path.isdir(args.input_file):
            raise UserError(f"--input_file {args.input_file!r} is a directory, not a file")
        if not os.path.exists(args.input_file):
            raise UserError(f"--input_file {args.input_file!r} does not exist")
        inp = os.stat(args.input_file)
        if stat.S_ISREG(inp.st_mode) and inp.st_size == 0:
            raise UserError(f"--input_file {args.input_file!r} is empty: no line to predict")
    html = getattr(args, "explain_html", None)
    if html is not None:
        _check_output_file("--explain_html", html, args, inp)
        if args.output not in (None, "-") and os.path.abspath(args.output) == os.path.abspath(html):
            raise UserError(f"--explain_html {html!r} is also --output: give the page a file of its own")
    if args.output not in (None, "-"):
        _check_output_file("--output", args.output, args, inp)
    elif inp is not None and stat.S_ISREG(inp.st_mode):
        same = False
        with contextlib.suppress(OSError, ValueError, AttributeError):  # stdout may be no real file (tests)
            same = _same_file(os.fstat(sys.stdout.fileno()), inp)
        if same:  # (UserError is a ValueError: raised outside the suppress)
            raise UserError(f"standard output is the input file ({args.input_file!r}): redirect it to "
                                "another file")


def _check_output_file(flag: str, path: str, args, inp: Optional[os.stat_result]) -> None:
    """UserError for an output file `path` (of option `flag`) that is a directory, in a missing folder, in a model
    folder or the input file."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {path!r}: folder {folder!r} does not exist")
    check_not_model_folder(path, args.model_dir, flag)
    if inp is not None and os.path.exists(path) and _same_file(os.stat(path), inp):
        raise UserError(f"{flag} {path!r} is the input file ({args.input_file!r}): it would be overwritten; write "
                        "the predictions to another file")


def check_not_model_folder(output: str, model_dir: str, flag: str = "--output") -> None:
    """UserError for an `output` (symlinks followed) inside `model_dir` or in a model, checkpoint or export folder:
    predictions written there would replace or sit among the files a model is loaded from."""
    target = os.path.realpath(output)
    model = os.path.realpath(model_dir)
    if os.path.commonpath([target, model]) == model:
        raise UserError(f"{flag} {output!r} is inside the model folder {model_dir!r}: write the predictions "
                        "elsewhere")
    from fastformer.inference.folders import model_folder_marker

    folder = os.path.dirname(target)
    marker = model_folder_marker(folder)
    if marker:
        raise UserError(f"{flag} {output!r} is in a model or export folder ({folder!r} holds {marker}): write the "
                        "predictions elsewhere")


def write_page(path: str, records: Sequence[dict], predictor, method: str, counts: Dict[str, int]) -> None:
    """The HTML page of the explained `records` (atomically)."""
    from fastformer.inference.explain_html import render_page

    items = [{"text": r.get("text") or "", "prediction": r, "explanation": r.get("explanation") or {},
              "note": f"line {r['line']}" if "line" in r else None} for r in records]
    total = counts["predicted"] + counts["errors"]
    shown = f"the first {len(items)} of {total} reviews" if total > len(items) else f"{total} review(s)"
    subtitle = (f"{shown}; model {predictor.model_dir}; token importance: "
                f"{method.replace('_', ' ')}")
    with atomic_open(path) as f:
        f.write(render_page(items, "Explained predictions", subtitle))


def _open_input(args) -> Tuple[BinaryIO, str, Optional[int]]:
    """(binary stream, name, size in bytes or None)."""
    if args.input_file == "-":
        return sys.stdin.buffer, "standard input", None
    return open(args.input_file, "rb"), args.input_file, os.path.getsize(args.input_file)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Predict as on the command line; user errors raise `UserError` (one line and status 2 through `run_main`)."""
    args = parse_args(argv)
    check_paths(args)
    from fastformer.inference.loader import predictor_from_args

    predictor = predictor_from_args(args)
    explainer = None
    if args.explain or args.explain_html:
        from fastformer.inference.explain import explainer_for

        explainer = explainer_for(predictor, args.explain_method, with_weights=args.explain_attention)
    page = [] if args.explain_html else None
    to_file = args.output not in (None, "-")
    bar, info, table = None, {}, None
    with contextlib.ExitStack() as stack:
        if args.input_file is None:
            records: Iterable[dict] = [{"index": i, "text": t, "error": None} for i, t in enumerate(args.texts)]
            source = f"{len(args.texts)} text argument(s)"
        elif args.input_format in ("csv", "tsv"):
            table = open_table(args.input_file, args.input_format, args.text_column)
            records = iter_table_records(table, args.text_column)
            source = args.input_file
            first = next(records, None)
            if first is None:
                raise UserError(f"{printable(source)} has a header row but no records: nothing to predict")
            records = itertools.chain([first], records)
        else:
            stream, source, size = _open_input(args)
            if stream is not sys.stdin.buffer:
                stack.enter_context(stream)
            on_bytes = None
            if not args.no_progress and sys.stderr.isatty() and (size is None or size > 1 << 20):
                from tqdm import tqdm

                bar = tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, dynamic_ncols=True, desc="predict")
                stack.callback(bar.close)
                on_bytes = bar.update
            records = iter_records(iter_lines(stream, on_bytes), info,
                                   input_is_jsonl(args.input_file, args.input_format), args.text_column)
            first = next(records, None)  # (before any output is opened or written)
            if first is None:
                raise UserError(f"{source} is empty: no line to predict")
            records = itertools.chain([first], records)
        # a file appears whole when every record is written, or not at all (the old one, if any, is kept)
        out = stack.enter_context(atomic_open(args.output)) if to_file else sys.stdout
        key = "line" if args.input_file is not None else "#"
        writer = WRITERS[args.format](out, key, labels=predictor.labels, rating=predictor.rating_model,
                                      columns=table.columns if table else None, text_columns=args.text_column,
                                      **({"explain": True} if explainer and args.format in ("csv", "tsv") else {}))
        counts = predict_records(predictor, records, writer, explainer, page)
        if page is not None:
            write_page(args.explain_html, page, predictor, args.explain_method, counts)
        if not to_file:
            out.flush()
    if table is not None:
        source = printable(source) + f" ({table.format.upper()})"
    elif args.input_file is not None:
        source = printable(source) + f" ({'JSON lines' if info.get('jsonl') else 'one review per line'})"
    small = getattr(predictor, "small_batch", None)
    print(f"{source}: {counts['predicted']} predicted, {counts['errors']} with errors, {counts['truncated']} "
          f"truncated to {predictor.max_length} tokens, {counts['unknown']} mostly unknown words "
          f"({predictor.backend} backend{', oneDNN' if predictor.enable_mkldnn else ''}, {predictor.precision}, "
          f"{predictor.device}" + (f"; batches of up to {small['max_rows']}: {small['backend']} backend, "
                                   f"{small['precision']}" if small else "") + ")"
          + (f"; wrote {printable(args.output)}" if to_file else "")
          + (f"; wrote {printable(args.explain_html)}" if args.explain_html else ""), file=sys.stderr)
    return 1 if counts["errors"] else 0  # every good result is written above; failed inputs make the status 1


def console_main() -> int:
    """The `fastformer-predict` command (pyproject.toml): `main` with one-line errors, as `python predict.py`."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(console_main())
