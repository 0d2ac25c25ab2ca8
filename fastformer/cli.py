"""How the scripts end on a user's mistake: one line on stderr and exit status 2, never a traceback.

    from fastformer.cli import UserError, run_main

    def main(argv=None):
        ...
        raise UserError(f"config file {path!r} is not valid JSON: ...")

    if __name__ == "__main__":
        sys.exit(run_main(main))

`UserError` is a mistake in what the user gave (an argument, a config file, an input file or model folder); it is a
`ValueError`, so code that catches ValueError keeps working. `run_main` also reports an `OSError` (missing file,
permission, a folder where a file is expected, a full disk) as one line: those name a path and are about the
machine, not the code. Everything else is a bug and keeps its traceback. This module imports nothing heavy (no
paddle), so the data pipeline can raise `UserError` too.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

__all__ = ["UserError", "USER_ERROR_EXIT", "run_main"]

USER_ERROR_EXIT = 2  # argparse's exit status for a bad command line


class UserError(ValueError):
    """A mistake in the user's input (argument, config, data file, model folder): reported in one line."""


def run_main(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> int:
    """`main(argv)` as a script: its int result is the exit status (anything else: 0); a `UserError` or an `OSError`
    prints `error: <message>` (one line) to stderr and returns 2."""
    try:
        result = main(argv)
    except BrokenPipeError:  # a closed pipe (`... | head -1`) is the caller's to handle, not a user error
        raise
    except (UserError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
