"""What `make demo` prints, recorded: the demo's training, evaluation, export and predictions, run as the Makefile runs
them (the same scripts, configs/demo.json, the three demo reviews) in a fresh folder, with their figures in one file.

    python -m benchmarks.demo_run --output benchmarks/results/demo_cpu.json    # a few minutes on 2 cores

Recorded: train.py's dev and test metrics (fp32, `test_results.json`), evaluate.py's test metrics of the model folder
(what `make demo` prints) and of the export in fp32, the export's parity, and predict.py's ratings of the three
reviews by the demo model and by the shipped model, with the wall time of each step.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_reviews() -> List[str]:
    """The Makefile's DEMO_REVIEWS (quoted strings, continued over lines)."""
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"^DEMO_REVIEWS :=(.*?)(?<!\\)\n", text, re.S | re.M).group(1)
    return re.findall(r'"([^"]*)"', block)


def run(args: Sequence[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 1)


def ratings(args: Sequence[str]) -> List[dict]:
    done = subprocess.run([sys.executable, "predict.py", "--format", "jsonl", *args], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return [{k: r.get(k) for k in ("rating", "label", "unk_share")} for r in map(json.loads, done.stdout.splitlines())]


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="JSON results file")
    args = parser.parse_args(argv)
    header = common.result_header("demo_run", __file__, args, argv)
    reviews = demo_reviews()
    with tempfile.TemporaryDirectory() as out:
        seconds = {"train": run(["train.py", "configs/demo.json", "--output_dir", out])}
        seconds["evaluate"] = run(["evaluate.py", "--model_dir", f"{out}/model"])
        seconds["export"] = run(["export_model.py", "--model_dir", f"{out}/model", "--output_dir", f"{out}/export"])
        run(["evaluate.py", "--model_dir", f"{out}/export", "--precision", "fp32",
             "--output_dir", f"{out}/eval_export"])
        with open(f"{out}/test_results.json") as f:
            trained = json.load(f)
        with open(f"{out}/eval_test/eval_results.json") as f:
            evaluated = json.load(f)
        with open(f"{out}/eval_export/eval_results.json") as f:
            exported = json.load(f)
        with open(f"{out}/export/manifest.json") as f:
            parity = json.load(f).get("parity")
        result = {
            **header,
            "train": {k: trained.get(k) for k in ("dev_macro_f1", "dev_accuracy", "test_macro_f1", "test_accuracy",
                                                 "global_step", "best_checkpoint", "sizes")},
            "evaluate_model": {k: evaluated[k] for k in ("accuracy", "macro_f1", "precision", "num_examples")},
            "evaluate_export_fp32": {k: exported[k] for k in ("accuracy", "macro_f1", "precision", "num_examples")},
            "export_parity": parity,
            "reviews": reviews,
            "demo_model_ratings": ratings(["--model_dir", f"{out}/export", *reviews]),
            "shipped_model_ratings": ratings(reviews),
            "seconds": seconds,
        }
    print(json.dumps({k: result[k] for k in ("train", "evaluate_model", "evaluate_export_fp32", "demo_model_ratings",
                                             "shipped_model_ratings", "seconds")}, indent=1))
    if args.output:
        from fastformer.fileio import write_json

        write_json(args.output, result)
        print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
