"""train.py's --help without loading paddle: the text `arguments.build_parser()` prints (about 600 lines, most of
them PaddleNLP's TrainingArguments), stored in train_help.txt. `python -m tools.train_help` writes it again;
tests/training/test_help.py fails when it differs from the live parser's."""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

__all__ = ["HELP_FILE", "PROG", "asks_for_help", "stored_help", "print_stored_help"]

HELP_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_help.txt")
PROG = "TRAIN_PROG"  # the program name in the stored text, replaced by the running one
WIDTH = 80  # columns the stored text is formatted for (argparse's width when the output is not a terminal)


def asks_for_help(argv: Sequence[str]) -> bool:
    """-h or --help before any '--', as argparse reads them."""
    argv = list(argv)
    return any(arg in ("-h", "--help") for arg in (argv[: argv.index("--")] if "--" in argv else argv))


def stored_help(prog: Optional[str] = None) -> str:
    with open(HELP_FILE, encoding="utf-8") as f:
        return f.read().replace(PROG, prog or os.path.basename(sys.argv[0]) or "train.py")


def print_stored_help(prog: Optional[str] = None) -> None:
    sys.stdout.write(stored_help(prog))
    sys.stdout.flush()
