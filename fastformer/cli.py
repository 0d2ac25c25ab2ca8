"""User errors on the command line: one line on standard error and exit status 2, no traceback.

    from fastformer.cli import UserError, run_main

    def main(argv=None):
        ...
        raise UserError(f"--input_file {path!r} is a directory, not a file")

    if __name__ == "__main__":
        sys.exit(run_main(main))

`run_main` prints `<prog>: error: <message>` (argparse's form) for a `UserError` and for the file errors a user
causes (missing file, a directory where a file is expected, no permission). Any other exception is a bug and keeps
its traceback; a `ValueError` from the user's input should be re-raised as `UserError` where it is caught, so that
one from the code is not mistaken for the user's. When standard output is closed early (`script ... | head -1`),
the script stops quietly, as Unix tools do.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Sequence

__all__ = ["UserError", "run_main", "USER_ERROR_STATUS"]

USER_ERROR_STATUS = 2  # argparse's status for a usage error
USER_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class UserError(Exception):
    """A mistake in the user's arguments, input files or model folder (not a bug): reported in one line."""


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines) or type(exc).__name__


def run_main(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> int:
    """`main(argv)` as a command: its status (0 when it returns something that is not an int), or 2 with a
    one-line message for a user error, or 1 (quietly) when standard output was closed by the reader."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fastformer"
    try:
        status = main(argv)
    except (UserError, *USER_ERRORS) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return USER_ERROR_STATUS
    except BrokenPipeError:
        # the reader of stdout is gone: point stdout at /dev/null so the interpreter's final flush is silent too
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return 1
    return status if isinstance(status, int) else 0
