"""How long the shipped model takes to answer: `predict.py` from a cold start, and loading + predicting in-process.

* `predict.py TEXT TEXT` (no --model_dir: the shipped model), a new process each time: Python, Paddle, the model
  folder's checks and the prediction, wall time;
* in one process after the imports: `load_predictor(shipped model)` and `predict` of the two texts.

    python -m benchmarks.bench_shipped_model --output_dir benchmarks/results    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional, Sequence

from benchmarks import common

TEXTS = ("Great product, works perfectly.", "Stopped working after two days. Waste of money.")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each (median and best reported)")
    p.add_argument("--output_dir", default=None, help="write shipped_model_cpu.json/.md here")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    header = common.result_header("shipped_model", __file__, args, argv)
    common.quiet_paddle()
    cold = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, os.path.join(common.ROOT, "predict.py"), "--format", "jsonl", *TEXTS],
                             capture_output=True, text=True, check=True, cwd=common.ROOT)
        cold.append(time.perf_counter() - start)
    answers = [json.loads(line) for line in out.stdout.splitlines()]

    from fastformer.inference.folders import SHIPPED_MODEL_DIR
    from fastformer.inference.loader import load_predictor

    load = common.time_calls(lambda: load_predictor(SHIPPED_MODEL_DIR), steps=args.rounds, warmup=1)
    predictor = load_predictor(SHIPPED_MODEL_DIR)
    predict = common.time_calls(lambda: predictor.predict(list(TEXTS)), steps=args.rounds, warmup=1)
    rows = [
        {"case": "predict.py, 2 texts (new process)", "best_s": min(cold), "median_s": sorted(cold)[len(cold) // 2]},
        {"case": "load_predictor(shipped model)", "best_s": load["min_s"], "median_s": load["median_s"]},
        {"case": "predict 2 texts (loaded)", "best_s": predict["min_s"], "median_s": predict["median_s"]},
    ]
    table = common.format_table(rows, [("case", "case", None), ("best_s", "best s", ".3f"),
                                       ("median_s", "median s", ".3f")])
    table += "\n\n" + "\n".join(f"{a['rating']} stars ({max(a['probabilities'].values()):.2f}): {a['text']}"
                                for a in answers)
    payload = {**header, "model_dir": os.path.relpath(SHIPPED_MODEL_DIR, common.ROOT), "precision": predictor.precision,
               "rows": rows, "answers": [{k: a[k] for k in ("text", "rating", "label", "probabilities")}
                                         for a in answers]}
    if args.output_dir:
        common.write_results(args.output_dir, "shipped_model_cpu", payload, table)
    else:
        print(table)
    return payload


if __name__ == "__main__":
    main()
