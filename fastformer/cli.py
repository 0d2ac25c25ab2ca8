"""How the scripts end on a user's mistake: one line on stderr (`<prog>: error: ...`), exit status 2, no traceback.

`UserError` (a ValueError) is a mistake in what the user gave; `run_main(main)` turns it and OSError into that line,
and `printable` escapes user paths and text before they are printed. No heavy imports. More in docs/internals.md.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import Callable, Optional, Sequence

__all__ = ["UserError", "USER_ERROR_EXIT", "USER_ERROR_STATUS", "run_main", "printable", "BIDI_CONTROLS"]

USER_ERROR_EXIT = USER_ERROR_STATUS = 2  # argparse's exit status for a bad command line


class UserError(ValueError):
    """A mistake in the user's input (argument, config, data file, model folder): reported in one line."""


# Characters that would act on the terminal instead of showing: C0/C1 controls (ESC sequences), lone surrogates
# and the bidirectional-text controls (U+202E turns the rest of the line around).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """`text` with control, surrogate and bidi-control characters written as escapes (\\x1b, \\u202e)."""
    return "".join(
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs") else ch
        for ch in str(text)
    )


def _one_line(exc: BaseException) -> str:
    return printable(" ".join(str(exc).split())) or type(exc).__name__


def run_main(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> int:
    """`main(argv)` as a script: its int result is the exit status (anything else: 0); a `UserError` or an `OSError`
    prints `<prog>: error: <message>` (one line) to stderr and returns 2; a closed stdout returns 1 quietly."""
    prog = printable(os.path.basename(sys.argv[0])) if sys.argv and sys.argv[0] else "fastformer"
    try:
        result = main(argv)
    except BrokenPipeError:
        # the reader of stdout is gone: point stdout at /dev/null so the interpreter's final flush is silent too
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return 1
    except (UserError, OSError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return USER_ERROR_EXIT
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
