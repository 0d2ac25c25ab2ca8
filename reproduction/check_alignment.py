"""Check the Paddle Fastformer against the official PyTorch code and print the figures.

    python -m reproduction.check_alignment [--steps 5] [--seed 0] [--hidden_size 64 ...] [--output FILE]
    python -m reproduction.check_alignment --paper_size --output benchmarks/results/alignment.json

Same weights (random official init, converted), same padded batches, dropout off, float32: logits before
training, then per-step loss and per-parameter gradient differences over Adam steps. The comparison lives in
`reproduction.alignment.run_alignment_check`, which `tests/reproduction/test_alignment.py` asserts on. Needs PyTorch.
The first run is the test's size (`reproduction.alignment.DEFAULT_CONFIG`, which the flags change); `--paper_size` adds
a run at the paper's size (`PAPER_SIZE`: hidden 256, 16 heads, intermediate 256, 2 layers, batch 8 x 256 tokens).
Prints the full report(s) as JSON, then one summary line per size; `--output` writes the JSON with the command, the
machine and the package versions. Exit status 1 when a figure is over `reproduction.alignment.TOLERANCES` (those of
the test: logits and loss 1e-5, gradients 1e-4 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The paper's Amazon model (2 layers, hidden 256, 16 heads, intermediate 256) on 8 reviews of 256 tokens.
PAPER_SIZE = dict(
    config=dict(vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=16, intermediate_size=256,
                max_position_embeddings=256),
    batch_size=8,
    seq_len=256,
)


def summary(name: str, report: dict) -> str:
    c = report["config"]
    return (f"{name}: hidden {c['hidden_size']}, {c['num_attention_heads']} heads, {c['num_hidden_layers']} layers, "
            f"batch {report['batch_size']} x {report['seq_len']}, {report['steps']} Adam steps: logits max abs diff "
            f"{report['logits_max_abs_diff']:.3g}, per-step loss diff max {report['max_loss_diff']:.3g}, worst gradient "
            f"relative diff {report['worst_grad_rel']:.3g} ({report['worst_grad_param']}, step "
            f"{report['worst_grad_step']}): {'passed' if report['passed'] else 'FAILED ' + '; '.join(report['failures'])}")


def main(argv: Optional[Iterable[str]] = None) -> int:
    import fastformer  # noqa: F401  (MKL_DEBUG_CPU_TYPE before paddle loads)
    from reproduction.alignment import DEFAULT_CONFIG, TOLERANCES, failures, run_alignment_check
    from fastformer.fileio import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--seq_len", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    for key, value in DEFAULT_CONFIG.items():
        parser.add_argument(f"--{key}", type=type(value), default=value)
    parser.add_argument("--paper_size", action="store_true",
                        help="also check the paper's size (hidden 256, 16 heads, batch 8 x 256), same steps and seed")
    parser.add_argument("--output", default=None, help="also write the JSON report to this file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)

    runs = {"test_size": dict(config={key: getattr(args, key) for key in DEFAULT_CONFIG},
                              batch_size=args.batch_size, seq_len=args.seq_len)}
    if args.paper_size:
        runs["paper_size"] = PAPER_SIZE
    reports = {}
    for name, run in runs.items():
        report = run_alignment_check(run["config"], steps=args.steps, seed=args.seed, batch_size=run["batch_size"],
                                     seq_len=run["seq_len"], lr=args.lr)
        report["tolerances"] = TOLERANCES
        report["failures"] = failures(report)
        report["passed"] = not report["failures"]
        reports[name] = report
    print(json.dumps(reports["test_size"] if len(reports) == 1 else reports, indent=2))
    for name, report in reports.items():
        print(summary(name, report))
    if args.output:
        from reproduction import machine as common  # the machine and package versions every results file records

        write_json(args.output, {
            "command": " ".join(["python", "-m", "reproduction.check_alignment", *argv]),
            "machine": dict(common.machine_info(), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS")),
            "packages": common.package_versions(),
            **reports,
        })
    return 0 if all(r["passed"] for r in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
