"""How long each script takes to answer --help, and whether it imports paddle to do so (it should not).

Each `python SCRIPT --help` runs `--rounds` times in a fresh process from the repository root (wall time of the whole
process, as `time` measures it); the median and the slowest are reported, with the heavy packages the process
imported (from `python -X importtime`). `import fastformer` alone is timed the same way.

    python -m benchmarks.bench_startup --output_dir benchmarks/results    # ~10 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Optional, Sequence

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("train.py", "evaluate.py", "export_model.py", "predict.py", "serve.py")
HEAVY = ("paddle", "paddlenlp", "sklearn", "torch")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="runs of each command (median and slowest reported)")
    p.add_argument("--output_dir", default=None, help="write startup_cpu.json/.md here")
    return p.parse_args(argv)


def measure(command: Sequence[str], rounds: int) -> dict:
    walls = []
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    traced = subprocess.run([sys.executable, "-X", "importtime", *command[1:]], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    modules = {line.rsplit("|", 1)[1].strip() for line in traced.stderr.splitlines() if line.startswith("import time")}
    return {"median_seconds": round(statistics.median(walls), 3), "max_seconds": round(max(walls), 3),
            "heavy_imports": sorted({m.split(".")[0] for m in modules} & set(HEAVY))}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    header = common.result_header("startup", __file__, args, argv)
    rows = [{"command": f"python {s} --help", **measure([sys.executable, s, "--help"], args.rounds)} for s in SCRIPTS]
    rows.append({"command": "python -c 'import fastformer'",
                 **measure([sys.executable, "-c", "import fastformer"], args.rounds)})
    table = common.format_table(rows, [("command", "command", None), ("median_seconds", "median s", ".2f"),
                                       ("max_seconds", "max s", ".2f"), ("heavy_imports", "heavy imports", None)])
    payload = {**header, "rows": rows}
    if args.output_dir:
        common.write_results(args.output_dir, "startup_cpu", payload, table)
    else:
        print(table)
    return payload


if __name__ == "__main__":
    main()
