"""Check the Paddle Fastformer against the official PyTorch code and print the figures as JSON.

    python tools/check_alignment.py [--steps 5] [--seed 0] [--hidden_size 64 ...] [--output FILE]

Same weights (random official init, converted), same padded batches, dropout off, float32: logits before
training, then per-step loss and per-parameter gradient differences over Adam steps. The comparison lives in
`fastformer.alignment.run_alignment_check`, which `tests/test_alignment.py` asserts on. Needs PyTorch.
Exit status 1 when a figure is over `fastformer.alignment.TOLERANCES` (those of the test: logits and loss 1e-5,
gradients 1e-4 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: Optional[Iterable[str]] = None) -> int:
    from fastformer.alignment import DEFAULT_CONFIG, TOLERANCES, failures, run_alignment_check

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--seq_len", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    for key, value in DEFAULT_CONFIG.items():
        parser.add_argument(f"--{key}", type=type(value), default=value)
    parser.add_argument("--output", default=None, help="also write the JSON report to this file")
    args = parser.parse_args(None if argv is None else list(argv))

    report = run_alignment_check(
        {key: getattr(args, key) for key in DEFAULT_CONFIG},
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
    )
    report["tolerances"] = TOLERANCES
    report["failures"] = failures(report)
    report["passed"] = not report["failures"]
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
