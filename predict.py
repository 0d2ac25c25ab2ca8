"""Predict star ratings of raw review texts with an exported (or trained) Fastformer model.

    python predict.py --model_dir output/demo/export "Great product." "Broke after a week."
    python predict.py --model_dir output/demo/export --input_file reviews.txt --format jsonl --output preds.jsonl
    cat reviews.jsonl | python predict.py --model_dir output/demo/export -

Input: the text arguments, or --input_file FILE ("-" or a lone "-" argument: standard input) with one review per
line, or JSON lines with a "text" field (detected from the first non-blank line; an "id" field is passed through).
Lines are decoded one by one: a line that is not UTF-8, not valid JSON (JSON lines), without a string "text", empty
or only whitespace gets an error naming its line number; every other line is still predicted. Texts longer than
the model's max length are truncated and say so (`truncated_tokens`). Output: a table (default) or JSON lines,
one per input, in input order, to standard output or --output FILE.

Exit status: 0 when every input was predicted; 1 when any input failed (the results of all the other inputs are
still written first) or when the model or the input file cannot be opened.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from typing import BinaryIO, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple

import fastformer  # noqa: F401  (sets MKL_DEBUG_CPU_TYPE before paddle loads)

CHUNK = 2048  # lines read, predicted and written at a time (bounded memory on large files)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="review texts (a lone '-' reads standard input)")
    parser.add_argument("--model_dir", required=True, help="export folder (export_model.py) or trained model folder")
    parser.add_argument("--input_file", default=None, help="one review per line or JSON lines with 'text'; '-': stdin")
    parser.add_argument("--format", choices=("table", "jsonl"), default="table", help="output format")
    parser.add_argument("--output", default=None, help="write here instead of standard output")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bar (else shown for input files over 1 MiB or stdin when stderr is a tty)")
    from fastformer.predictor import add_predictor_args

    add_predictor_args(parser)
    args = parser.parse_args(argv)
    if args.input_file is None and args.texts == ["-"]:
        args.input_file, args.texts = "-", []
    if args.input_file is not None and args.texts:
        parser.error("give review texts or --input_file, not both")
    if args.input_file is None and not args.texts:
        parser.error("no input: give review texts, --input_file FILE or '-' for standard input")
    return args


# ------------------------------------------------------------------------------------------------------ reading
Line = Tuple[int, Optional[str], Optional[str]]  # (line number, text or None, error or None)


def iter_lines(stream: BinaryIO, on_bytes=None) -> Iterator[Line]:
    """Lines of a binary stream, each decoded on its own (a bad line does not spoil the others).

    A UTF-8 byte-order mark and "\\r" line ends are dropped; a final newline makes no extra empty line.
    `on_bytes(n)` is called with the size of each raw line (progress).
    """
    for number, raw in enumerate(stream, start=1):
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


def _looks_jsonl(text: str) -> bool:
    """A JSON object with a "text" field."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        record = json.loads(text)
    except ValueError:
        return False
    return isinstance(record, dict) and "text" in record


def _record(number: int, text: Optional[str], error: Optional[str], jsonl: bool) -> dict:
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
                if not isinstance(obj, dict) or "text" not in obj:
                    error = f"line {number}: JSON record without a 'text' field"
                elif not isinstance(obj["text"], str):
                    error = f"line {number}: 'text' is {type(obj['text']).__name__}, not a string"
                else:
                    text = obj["text"]
                    if "id" in obj:
                        record["id"] = obj["id"]
    if error is None and not text.strip():
        error = f"line {number}: {'empty' if not text else 'whitespace-only'} text"
    record["text"] = text if error is None else None
    record["error"] = error
    return record


def iter_records(lines: Iterable[Line], info: Optional[dict] = None) -> Iterator[dict]:
    """Records {"line", "text", "error", "id"?} from decoded lines, one review per line or JSON lines.

    JSON lines when the first non-blank decodable line is a JSON object with a "text" field (lines before it are
    held back until then). `info["jsonl"]` is set once that is decided.
    """
    info = {} if info is None else info
    held: List[Line] = []
    jsonl = None
    for line in lines:
        if jsonl is None:
            number, text, error = line
            if error is None and text.strip():
                jsonl = info["jsonl"] = _looks_jsonl(text)
                for h in held:
                    yield _record(*h, jsonl)
                held = []
            else:
                held.append(line)
                continue
        yield _record(*line, jsonl)
    info.setdefault("jsonl", False)
    for h in held:
        yield _record(*h, False)


def parse_records(lines: Sequence[Line]) -> Tuple[List[dict], bool]:
    """All records of `lines` and whether they were JSON lines."""
    info: dict = {}
    records = list(iter_records(lines, info))
    return records, info["jsonl"]


# ------------------------------------------------------------------------------------------------------ writing
def _preview(text: Optional[str], width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


class TableWriter:
    """Fixed-width rows: where, rating, confidence, truncated tokens, the text (or the error)."""

    def __init__(self, out: TextIO, key: str):
        self.out, self.key = out, key
        out.write(f"{key:>6}  {'rating':>6}  {'conf':>5}  {'trunc':>5}  text\n")
        out.write(f"{'-' * 6}  {'-' * 6}  {'-' * 5}  {'-' * 5}  {'-' * 60}\n")

    def write(self, record: dict) -> None:
        where = record.get("line", record.get("index"))
        if record["error"]:
            self.out.write(f"{where:>6}  {'-':>6}  {'-':>5}  {'-':>5}  ERROR: {record['error']}\n")
            return
        conf = max(record["probabilities"].values())
        self.out.write(f"{where:>6}  {record['rating']:>6}  {conf:>5.2f}  {record['truncated_tokens']:>5}  "
                       f"{_preview(record['text'])}\n")


class JsonlWriter:
    def __init__(self, out: TextIO, key: str):
        self.out = out

    def write(self, record: dict) -> None:
        keys = [k for k in ("line", "index", "id") if k in record]
        keys += ["rating", "label", "probabilities", "truncated_tokens", "error", "text"]
        self.out.write(json.dumps({k: record.get(k) for k in keys}, ensure_ascii=False) + "\n")


def _chunks(items: Iterable[dict], size: int) -> Iterator[List[dict]]:
    chunk: List[dict] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_records(predictor, records: Iterable[dict], writer) -> Dict[str, int]:
    """Predict the records without an error and write every record, in order, a chunk at a time (bounded
    memory); counts of predicted, failed and truncated records."""
    counts = {"predicted": 0, "errors": 0, "truncated": 0}
    for chunk in _chunks(records, CHUNK):
        todo = [r for r in chunk if r["error"] is None]
        results = predictor.predict([r["text"] for r in todo]) if todo else []
        for record, result in zip(todo, results):
            record.update(result)
            if result["error"] and "line" in record:
                record["error"] = f"line {record['line']}: {result['error']}"
        for record in chunk:
            if record["error"]:
                for field in ("rating", "label", "probabilities"):
                    record.setdefault(field, None)
                record.setdefault("truncated_tokens", 0)
                counts["errors"] += 1
            else:
                counts["predicted"] += 1
                counts["truncated"] += bool(record["truncated_tokens"])
            writer.write(record)
    return counts


def _open_input(args) -> Tuple[BinaryIO, str, Optional[int]]:
    """(binary stream, name, size in bytes or None)."""
    if args.input_file == "-":
        return sys.stdin.buffer, "standard input", None
    if not os.path.isfile(args.input_file):
        raise FileNotFoundError(f"input file {args.input_file!r} does not exist")
    return open(args.input_file, "rb"), args.input_file, os.path.getsize(args.input_file)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    stream = None
    try:
        if args.input_file is not None:
            stream, source, size = _open_input(args)
        from fastformer.predictor import Predictor

        predictor = Predictor.from_args(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar, info = None, {}
    if args.input_file is None:
        records: Iterable[dict] = [{"index": i, "text": t, "error": None} for i, t in enumerate(args.texts)]
        source = f"{len(args.texts)} text argument(s)"
    else:
        on_bytes = None
        if not args.no_progress and sys.stderr.isatty() and (size is None or size > 1 << 20):
            from tqdm import tqdm

            bar = tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, dynamic_ncols=True, desc="predict")
            on_bytes = bar.update
        records = iter_records(iter_lines(stream, on_bytes), info)
    out = open(args.output, "w", encoding="utf-8", newline="\n") if args.output else sys.stdout
    try:
        key = "line" if args.input_file is not None else "#"
        writer = (JsonlWriter if args.format == "jsonl" else TableWriter)(out, key)
        counts = predict_records(predictor, records, writer)
    finally:
        if bar is not None:
            bar.close()
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    if args.input_file is not None:
        source += f" ({'JSON lines' if info.get('jsonl') else 'one review per line'})"
    print(f"{source}: {counts['predicted']} predicted, {counts['errors']} with errors, {counts['truncated']} "
          f"truncated to {predictor.max_length} tokens ({predictor.backend} backend"
          f"{', oneDNN' if predictor.enable_mkldnn else ''}, {predictor.precision}, {predictor.device})"
          + (f"; wrote {args.output}" if args.output else ""), file=sys.stderr)
    return 1 if counts["errors"] else 0  # every good result is written above; failed inputs make the status 1


if __name__ == "__main__":
    sys.exit(main())
