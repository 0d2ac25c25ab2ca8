"""Writes fastformer/training/train_help.txt, the text train.py --help prints without loading paddle, from the live
parser (`fastformer.training.arguments.build_parser`). Run it after changing a training flag:

    python -m tools.train_help
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence


def live_help() -> str:
    """The help of the live parser at the stored text's width and program name."""
    from fastformer.training import stored_help

    os.environ["COLUMNS"] = str(stored_help.WIDTH)  # read by argparse's formatter
    from fastformer.training.arguments import build_parser

    return build_parser(prog=stored_help.PROG).format_help()


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from fastformer.fileio import atomic_write
    from fastformer.training.stored_help import HELP_FILE

    text = live_help()
    atomic_write(HELP_FILE, text)
    print(f"wrote {HELP_FILE} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
