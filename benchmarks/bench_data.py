"""Throughput of the data pipeline and of the tokenizer, on synthetic reviews (or a given raw file).

Measures, and prints and writes to a JSON file:
* pipeline: `prepare_dataset` (read, parse, hash, sample, split, write) in a fresh child process, in raw lines/s,
  with the child's peak RSS (and its RSS before the call, imports included);
* tokenizer: `build_from_corpus` on the train split, then `encode_batch` (the fast path) and PaddleNLP's generic
  `tokenizer(texts, truncation=True, max_length=...)` on the same texts, in reviews/s, checking the ids agree.

Default size (60,000 synthetic reviews, 40,000 train texts) runs in about a minute on one core:
    python -m benchmarks.bench_data --output benchmarks/results/data_cpu.json
Memory on a large file, pipeline only (generating 2M reviews takes ~5 min; --input_file takes an existing file):
    python -m benchmarks.bench_data --num_reviews 2000000 --skip_tokenizer
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence


from benchmarks import common
from fastformer_data.demo_data import generate_demo_reviews
from fastformer.splits import read_split

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Run in the child: time prepare_dataset alone and report the child's own peak RSS (KiB on Linux).
CHILD = """
import json, resource, sys, time
from fastformer_data.prepare import prepare_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
stats = prepare_dataset(sys.argv[1], sys.argv[2], num_samples=int(sys.argv[3]), show_progress=False, overwrite=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "lines": stats["records"]["lines_read"], "usable": stats["records"]["usable"], "drawn": stats["sample"]["drawn"]}))
"""


def bench_pipeline(input_file: str, output_dir: str, num_samples: int) -> dict:
    """Run prepare_dataset in a child process; throughput in raw lines per second and peak memory."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, input_file, output_dir, str(num_samples)],
        check=True, capture_output=True, text=True, env=env,
    )
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "input_file": input_file,
        "input_mb": round(os.path.getsize(input_file) / 2**20, 1),
        "lines": child["lines"],
        "usable": child["usable"],
        "drawn": child["drawn"],
        "seconds": round(child["seconds"], 2),
        "reviews_per_s": round(child["lines"] / child["seconds"]),
        "rss_before_mb": round(child["rss_before_kib"] / 1024, 1),
        "peak_rss_mb": round(child["peak_rss_kib"] / 1024, 1),
    }


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), common.cpu_seconds()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, common.cpu_seconds() - cpu


def bench_tokenizer(train_file: str, max_length: int) -> dict:
    """Build the vocabulary on the train texts, then encode them with both paths."""
    from fastformer.tokenizer import FastformerTokenizer

    texts, _ = read_split(train_file)
    tokenizer, build_s, _ = timed(FastformerTokenizer.build_from_corpus, texts, min_freq=2)
    fast, fast_s, fast_cpu = timed(tokenizer.encode_batch, texts, max_length=max_length)
    slow, slow_s, slow_cpu = timed(tokenizer, texts, max_length=max_length, truncation=True)
    tokens = sum(map(len, fast["input_ids"]))
    words = sum(len(t.split()) for t in texts)
    return {
        "texts": len(texts),
        "mean_words": round(words / len(texts), 1),
        "max_length": max_length,
        "tokens_after_truncation": tokens,
        "vocab_size": len(tokenizer),
        "build_from_corpus_s": round(build_s, 2),
        "encode_batch": {"seconds": round(fast_s, 2), "cpu_seconds": round(fast_cpu, 2), "reviews_per_s": round(len(texts) / fast_s)},
        "call": {"seconds": round(slow_s, 2), "cpu_seconds": round(slow_cpu, 2), "reviews_per_s": round(len(texts) / slow_s)},
        "identical_ids": fast["input_ids"] == slow["input_ids"] and fast["attention_mask"] == slow["attention_mask"],
    }


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--num_reviews", type=int, default=60000, help="synthetic reviews to generate (default 60000)")
    parser.add_argument("--input_file", default=None, help="benchmark this raw file instead of generated reviews")
    parser.add_argument("--num_samples", type=int, default=50000, help="reviews drawn by prepare_dataset (default 50000)")
    parser.add_argument("--max_length", type=int, default=256, help="truncation length for the tokenizer (default 256)")
    parser.add_argument("--skip_tokenizer", action="store_true", help="measure the pipeline only")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "data_cpu.json"), help="JSON result file")
    args = parser.parse_args(argv)

    result = common.result_header("data", __file__, args, argv)
    with tempfile.TemporaryDirectory() as tmp:
        input_file = args.input_file
        if input_file is None:
            input_file = os.path.join(tmp, "reviews_Electronics_5.json.gz")
            _, seconds, _ = timed(generate_demo_reviews, input_file, args.num_reviews, 1)
            result["generate"] = {"reviews": args.num_reviews, "seconds": round(seconds, 2), "reviews_per_s": round(args.num_reviews / seconds)}
            print(f"generated {args.num_reviews} synthetic reviews in {seconds:.1f} s")
        result["pipeline"] = pipeline = bench_pipeline(input_file, os.path.join(tmp, "prepared"), args.num_samples)
        print(f"pipeline: {pipeline['lines']} lines in {pipeline['seconds']} s = {pipeline['reviews_per_s']} reviews/s, "
              f"peak RSS {pipeline['peak_rss_mb']} MB (after imports {pipeline['rss_before_mb']} MB)")
        if not args.skip_tokenizer:
            result["tokenizer"] = tok = bench_tokenizer(os.path.join(tmp, "prepared", "train.jsonl"), args.max_length)
            print(f"tokenizer on {tok['texts']} train reviews ({tok['mean_words']} words on average): "
                  f"build {tok['build_from_corpus_s']} s; encode_batch {tok['encode_batch']['seconds']} s "
                  f"= {tok['encode_batch']['reviews_per_s']} reviews/s; __call__ {tok['call']['seconds']} s "
                  f"= {tok['call']['reviews_per_s']} reviews/s; identical ids: {tok['identical_ids']}")
    result["machine_after"] = {"load_average_1_5_15min": common.load_average()}
    common.write_json(args.output, result)
    return result


if __name__ == "__main__":
    main()
