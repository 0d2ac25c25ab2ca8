"""Draw the training curve of a finished run from its trainer_state.json (the Trainer's log history).

    python -m tools.plot_training_curve --trainer_state output/demo/trainer_state.json --output curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from fastformer.cli import UserError, run_main
from fastformer.plots import plot_training_curve


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--trainer_state", required=True, help="a run's trainer_state.json")
    parser.add_argument("--output", required=True, help="the PNG to write")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    try:
        with open(args.trainer_state, encoding="utf-8") as f:
            history = json.load(f)["log_history"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{args.trainer_state}: not a trainer_state.json with a log_history ({exc})") from None
    if not plot_training_curve(history, args.output, args.title):
        raise UserError(f"{args.trainer_state}: its log_history holds no loss and no evaluation")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
