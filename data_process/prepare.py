"""Draw a seeded sample of reviews from a raw Amazon file, split it and write a prepared dataset folder.

Output folder (written by `prepare_dataset`, read back with `read_split`):

* `train.jsonl`, `dev.jsonl`, `test.jsonl`: one JSON object a line, `{"text": str, "label": int}`, UTF-8,
  label = stars - 1 (0..4).
* `label.txt`: the label names, one a line, line i naming label i: "1".."5" (stars).
* `stats.json`: the arguments (used to decide whether the folder can be reused), the source file and detected
  release, records read / usable / skipped by reason with their first line numbers, duplicate texts, the rating
  distribution of the usable records, and per split its size, class counts and length statistics
  (words and characters: mean, median, p95, max).

Sampling is bottom-K on a seeded 64-bit hash of the normalised text, in one streaming pass and bounded memory:
the sample is the N distinct texts with the smallest keys (per class, N/5 each, with `balanced`). It depends only on
the seed and the set of records, not on their order. Exact duplicate texts share a key, so each text is kept once;
a text that occurs with different ratings has no single label and is left out of the sample. Both are counted with
one 8-byte hash per usable record (about 160 MB for 20M records). The sample, in key order (a seeded shuffle), is cut
into train/dev/test. The same input and arguments give byte-identical files.

CLI: python -m fastformer_data.prepare --input_file data/reviews_Electronics_5.json.gz --output_dir data/amazon
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import contextlib
import logging
import os
from array import array
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from fastformer.cli import UserError, printable
from fastformer.fileio import atomic_open

from fastformer.fileio import is_gzip
from fastformer.labels import LABEL_NAMES, RATINGS
from fastformer.splits import SPLIT_BY, SPLITS, check_sample_args, read_split

from .reader import ReviewReader, check_input_file, check_text_fields

__all__ = ["LABEL_NAMES", "SPLITS", "SPLIT_BY", "OUTPUT_FILES", "check_sample_args", "prepare_dataset", "read_split",
           "main"]

logger = logging.getLogger(__name__)

OUTPUT_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl", "label.txt", "stats.json")
DEFAULT_WEIGHTS = (8, 1, 1)  # train/dev/test 80/10/10
MAX_GROUP_SHARE = 0.1  # split_by "group": the largest share of dev or test one group (product, source) may take
FORMAT_VERSION = 2  # 2: HTML character references unescaped (reader.normalize_text)
_NO_LIMIT = 1 << 64
_CHUNK = 1 << 20


class _BottomK:
    """The records with the `capacity` smallest keys, one per key (max-heap on the key)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.heap: List[tuple] = []
        self.keys: Set[int] = set()
        self.limit = _NO_LIMIT  # keys >= limit cannot enter

    def offer(self, key: int, text: str, rating: int, group: Optional[str] = None) -> None:
        if key in self.keys:
            return
        if len(self.heap) < self.capacity:
            heapq.heappush(self.heap, (-key, rating, text, group))
        else:
            self.keys.discard(-heapq.heapreplace(self.heap, (-key, rating, text, group))[0])
        self.keys.add(key)
        if len(self.heap) == self.capacity:
            self.limit = -self.heap[0][0]

    def sorted_items(self) -> List[Tuple[int, int, str, Optional[str]]]:
        """(key, rating, text, group) by increasing key."""
        return sorted((-k, rating, text, group) for k, rating, text, group in self.heap)


def _hash_summary(values: np.ndarray) -> Tuple[int, Set[int], Dict[int, int]]:
    """From sorted `text hash | rating` values: distinct texts, keys of texts with several ratings, rating counts."""
    distinct, conflicting, ratings = 0, set(), np.zeros(8, dtype=np.int64)
    for start in range(0, len(values), _CHUNK):
        ratings += np.bincount((values[start : start + _CHUNK] & 7).astype(np.intp), minlength=8)
        chunk = values[start : start + _CHUNK + 1]
        same_text = (chunk[1:] ^ chunk[:-1]) < 8
        distinct += int(np.count_nonzero(~same_text))
        changed = same_text & (chunk[1:] != chunk[:-1])
        conflicting.update((chunk[:-1][changed] & ~np.uint64(7)).tolist())
    return distinct + 1, conflicting, {r: int(ratings[r]) for r in RATINGS}


def _split_sizes(n: int, weights: Sequence[int]) -> List[int]:
    """Sizes summing to n in proportion to `weights` (rounded down, rest to train); dev/test get at least one
    each (unless their weight is 0) when n allows."""
    rest = [n * w // sum(weights) for w in weights[1:]]
    if n >= len(weights):
        rest = [max(1, size) if w else size for size, w in zip(rest, weights[1:])]
    return [n - sum(rest)] + rest


def _length_stats(values: List[int]) -> Dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values)
    return {
        "mean": round(float(arr.mean()), 1),
        "median": float(np.median(arr)),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "max": int(arr.max()),
    }


def _split_stats(rows: List[Tuple[str, int]]) -> dict:
    labels = [label for _, label in rows]
    return {
        "size": len(rows),
        "labels": {name: labels.count(i) for i, name in enumerate(LABEL_NAMES)},
        "words": _length_stats([len(text.split()) for text, _ in rows]),
        "chars": _length_stats([len(text) for text, _ in rows]),
    }


def _reusable(output_dir: str, args: dict, overwrite: bool) -> Optional[dict]:
    """Stats of a complete dataset in `output_dir` made with `args`; None if the folder may be (over)written."""
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return None
    stats_path = os.path.join(output_dir, "stats.json")
    stats = None
    if all(os.path.isfile(os.path.join(output_dir, name)) for name in OUTPUT_FILES):
        try:
            with open(stats_path, encoding="utf-8") as f:
                stats = json.load(f)
        except (OSError, ValueError):
            stats = None
    if isinstance(stats, dict) and stats.get("args") == args:
        if stats.get("format_version") == FORMAT_VERSION:
            return stats
        # our own folder, made with the same arguments by an older version of the pipeline: made again
        logger.info("%s was prepared by an older version of the data pipeline (format %s, now %s): preparing it "
                    "again", output_dir, stats.get("format_version"), FORMAT_VERSION)
        return None
    if overwrite:
        return None
    raise FileExistsError(
        f"output folder {output_dir!r} is not empty and holds no complete dataset prepared with the same arguments "
        f"({args}); choose another folder or pass overwrite=True (only the files {', '.join(OUTPUT_FILES)} are replaced)"
    )


def _sample(reader: ReviewReader, num_samples: int, seed: int, balanced: bool) -> Tuple[List[tuple], dict, List[str]]:
    """One pass over `reader`: the sample as (key, rating, text, group) by increasing key, duplicate statistics,
    warnings."""
    if balanced:
        quotas = {r: num_samples // len(RATINGS) + (i < num_samples % len(RATINGS)) for i, r in enumerate(RATINGS)}
    else:
        quotas = {0: num_samples}
    # A margin of extra candidates replaces the texts left out at the end for having several ratings.
    buckets = {c: _BottomK(q + q // 10 + 10) for c, q in quotas.items()}
    hashes = array("Q")
    salt = hashlib.blake2b(str(seed).encode(), digest_size=16).digest()
    blake2b, from_bytes, mask = hashlib.blake2b, int.from_bytes, ~7
    for review in reader:
        key = from_bytes(blake2b(review.text.encode("utf-8"), digest_size=8, salt=salt).digest(), "little") & mask
        hashes.append(key | review.rating)
        bucket = buckets[review.rating if balanced else 0]
        if key < bucket.limit:
            bucket.offer(key, review.text, review.rating, review.group)
    if not reader.usable:
        raise UserError(f"no usable review: {reader.skipped_summary()}")
    values = np.frombuffer(hashes, dtype=np.uint64)
    values.sort()
    distinct, conflicting, ratings = _hash_summary(values)
    del values
    sample: List[tuple] = []
    warnings = []
    for c, bucket in buckets.items():
        items = [item for item in bucket.sorted_items() if item[0] not in conflicting][: quotas[c]]
        if len(items) < quotas[c] and len(bucket.heap) == bucket.capacity:
            warnings.append("more texts with conflicting ratings than the sampling margin: the sample is smaller than it could be")
        elif len(items) < quotas[c] and balanced:
            warnings.append(f"only {len(items)} distinct reviews with {c} stars, fewer than the {quotas[c]} of a balanced sample")
        sample.extend(items)
    sample.sort()
    dup_stats = {
        "distinct_texts": distinct,
        "duplicates_dropped": reader.usable - distinct,
        "conflicting_rating_texts": len(conflicting),
        "ratings_of_usable": {str(r): ratings[r] for r in RATINGS},
    }
    return sample, dup_stats, warnings


def _group_split(sample: List[tuple], counts: List[int], seed: int, warnings: List[str]) -> Tuple[dict, dict]:
    """Split the sample so that each group lies in one split: groups in a seeded random order fill test, then dev,
    up to their sizes in `counts` (a group that would overflow them is passed over and goes to train); train takes
    the rest. A group larger than `MAX_GROUP_SHARE` of the dev or test size always goes to train, so that no single
    product or source file dominates an evaluation split. Records without a group (no product or source field) are
    each their own group."""
    members: Dict[str, List[int]] = {}
    for i, (key, _, _, group) in enumerate(sample):
        members.setdefault(group if group is not None else f"record:{key}", []).append(i)
    salt = hashlib.blake2b(f"group-split-{seed}".encode(), digest_size=16).digest()
    order = sorted(members, key=lambda g: hashlib.blake2b(g.encode("utf-8"), digest_size=8, salt=salt).digest())
    quota = {"test": counts[2], "dev": counts[1]}
    taken: Dict[str, List[str]] = {name: [] for name in SPLITS}
    filled = dict.fromkeys(SPLITS, 0)
    for group in order:
        size = len(members[group])
        target = next((name for name in ("test", "dev")
                       if filled[name] + size <= quota[name] and size <= MAX_GROUP_SHARE * quota[name]), "train")
        taken[target].append(group)
        filled[target] += size
    splits = {}
    for name in SPLITS:
        rows = sorted(i for group in taken[name] for i in members[group])  # sample (key) order inside a split
        splits[name] = [(sample[i][2], sample[i][1] - 1) for i in rows]
    for name in ("dev", "test"):
        if len(splits[name]) < 0.9 * quota[name]:
            warnings.append(f"grouped split: {name} has {len(splits[name])} reviews, fewer than the {quota[name]} "
                            "asked for (its groups are too large to fit)")
    largest = max(len(m) for m in members.values())
    stats = {
        "groups": len(members),
        "records_without_group": sum(1 for g in members if g.startswith("record:")),
        "largest_group": largest,
        "per_split": {name: len(taken[name]) for name in SPLITS},
    }
    return splits, stats


def _write(output_dir: str, splits: Dict[str, List[Tuple[str, int]]], stats: dict) -> None:
    """Write all output files through temporary names (`atomic_open`), replaced together at the end, stats.json last,
    so a folder is complete or untouched."""
    os.makedirs(output_dir, exist_ok=True)
    encode = json.JSONEncoder(ensure_ascii=False).encode
    contents = {f"{name}.jsonl": "".join(encode({"text": t, "label": l}) + "\n" for t, l in rows) for name, rows in splits.items()}
    contents["label.txt"] = "".join(name + "\n" for name in LABEL_NAMES)
    contents["stats.json"] = json.dumps(stats, indent=2, ensure_ascii=False) + "\n"
    with contextlib.ExitStack() as stack:  # the files are replaced as the stack closes, the first entered last
        files = {name: stack.enter_context(atomic_open(os.path.join(output_dir, name)))
                 for name in reversed(OUTPUT_FILES)}
        for name in OUTPUT_FILES:
            files[name].write(contents[name])


def prepare_dataset(
    input_path: str,
    output_dir: str,
    num_samples: int = 50000,
    split_sizes: Optional[Sequence[int]] = None,
    seed: int = 42,
    balanced: bool = False,
    text_fields: Sequence[str] = ("text",),
    show_progress: bool = True,
    overwrite: bool = False,
    split_by: str = "random",
) -> dict:
    """Sample `num_samples` reviews from `input_path`, split them and write the dataset folder; returns the stats.

    `split_sizes` (train, dev, test) must add up to `num_samples`; None means 80/10/10 (40000/5000/5000 for 50000).
    When fewer distinct usable reviews exist, everything usable is taken and split in the same proportions.
    `balanced` draws num_samples/5 per star rating (fewer if a class has fewer). `text_fields`: ("text",) for the
    review text, ("title", "text") for "title. text". A folder already holding a complete dataset prepared with the
    same arguments is reused as is; another non-empty folder is an error unless `overwrite` (which replaces only
    the files of `OUTPUT_FILES`). Raises ValueError naming the file when no record is usable.

    `split_by`: "random" cuts the seeded sample into train/dev/test; "group" keeps every group (product, else source
    file: `reader.group_key`) in a single split, so no product of the test split was seen in training (see
    `_group_split`; dev and test may come out a little smaller than asked, train takes the rest).
    """
    sizes = check_sample_args(num_samples, split_sizes, seed)
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    fields = check_text_fields(text_fields)
    check_input_file(input_path)
    args = {
        "input_file": os.path.basename(input_path),
        "input_bytes": os.path.getsize(input_path),
        "num_samples": num_samples,
        "split_sizes": sizes,
        "seed": seed,
        "balanced": bool(balanced),
        "text_fields": list(fields),
        **({"split_by": split_by} if split_by != "random" else {}),  # folders made before split_by stay reusable
    }
    previous = _reusable(output_dir, args, overwrite)
    if previous is not None:
        logger.info("reusing the dataset prepared with the same arguments in %s", output_dir)
        return previous

    reader = ReviewReader(input_path, fields, show_progress)
    sample, dup_stats, warnings = _sample(reader, num_samples, seed, balanced)
    read_stats = reader.stats()
    if read_stats["skipped_total"]:
        logger.warning("%s", reader.skipped_summary())
    if len(read_stats["formats"]) > 1:
        warnings.append(f"records of several releases in one file: {read_stats['formats']}")
    if dup_stats["duplicates_dropped"] or dup_stats["conflicting_rating_texts"]:
        logger.info(
            "%s: %d duplicate texts dropped, %d texts with conflicting ratings left out",
            input_path, dup_stats["duplicates_dropped"], dup_stats["conflicting_rating_texts"],
        )
    if len(sample) < num_samples:
        warnings.append(f"only {len(sample)} of the {num_samples} requested reviews could be drawn")
    counts = _split_sizes(len(sample), sizes or DEFAULT_WEIGHTS)
    if split_by == "group":
        splits, group_stats = _group_split(sample, counts, seed, warnings)
        counts = [len(splits[name]) for name in SPLITS]
    else:
        rows = [(text, rating - 1) for _, rating, text, _ in sample]
        bounds = np.cumsum([0] + counts).tolist()
        splits = {name: rows[bounds[i] : bounds[i + 1]] for i, name in enumerate(SPLITS)}
        group_stats = None
    for message in warnings:
        logger.warning("%s: %s", input_path, message)
    stats = {
        "format_version": FORMAT_VERSION,
        "args": args,
        "source": {
            "path": os.path.abspath(input_path),
            "compression": "gzip" if is_gzip(input_path) else "none",
            "detected_format": read_stats["detected_format"],
            "formats": read_stats["formats"],
            "python_literal_lines": read_stats["python_literal_lines"],
        },
        "records": {
            "lines_read": read_stats["lines_read"],
            "usable": read_stats["usable"],
            "skipped_total": read_stats["skipped_total"],
            "skipped": read_stats["skipped"],
            **dup_stats,
        },
        "sample": {
            "requested": num_samples,
            "drawn": len(sample),
            "balanced": bool(balanced),
            "split_sizes": dict(zip(SPLITS, counts)),
            "split_by": split_by,
            **({"groups": group_stats} if group_stats else {}),
            "warnings": warnings,
        },
        "splits": {name: _split_stats(split) for name, split in splits.items()},
        "label_names": LABEL_NAMES,
    }
    _write(output_dir, splits, stats)
    return stats


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """CLI entry point; returns the stats of `prepare_dataset`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--input_file", required=True, help="raw review file: 2014/2018 .json(.gz) or 2023 .jsonl(.gz)")
    parser.add_argument("--output_dir", required=True, help="folder for train/dev/test.jsonl, label.txt, stats.json")
    parser.add_argument("--num_samples", type=int, default=50000, help="reviews to draw (default 50000)")
    parser.add_argument("--split_sizes", type=int, nargs=3, metavar=("TRAIN", "DEV", "TEST"), default=None,
                        help="split sizes adding up to num_samples (default 80/10/10)")
    # train.py's names; --seed and --balanced are the older names of the same flags
    parser.add_argument("--data_seed", "--seed", dest="seed", type=int, default=42, help="sampling seed (default 42)")
    parser.add_argument("--balanced_sample", "--balanced", dest="balanced", action="store_true",
                        help="draw num_samples/5 reviews per star rating")
    parser.add_argument("--text_fields", nargs="+", choices=("title", "text"), default=["text"],
                        help="fields joined into the text, e.g. --text_fields title text (default: text)")
    parser.add_argument("--split_by", choices=SPLIT_BY, default="random",
                        help="random: a seeded random split; group: each product (asin; else the source field) in "
                        "one split only")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset prepared with other arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stats = prepare_dataset(
        args.input_file, args.output_dir, args.num_samples, args.split_sizes, args.seed, args.balanced,
        args.text_fields, show_progress=not args.no_progress, overwrite=args.overwrite, split_by=args.split_by,
    )
    records, sample = stats["records"], stats["sample"]
    print(
        f"{printable(stats['source']['path'])} (release {stats['source']['detected_format']}): {records['lines_read']} lines, "
        f"{records['usable']} usable, {records['skipped_total']} skipped, {records['duplicates_dropped']} duplicates; "
        f"wrote {sample['split_sizes']} to {printable(args.output_dir)}"
    )
    return stats


if __name__ == "__main__":
    import sys

    from fastformer.cli import run_main

    sys.exit(run_main(main))
