"""Atomic file writes: a file is either its old self or complete, never half-written.

Every file the project writes for a user (results, model folders' JSON, prepared data, predictions) goes through
`atomic_open` / `atomic_write` / `write_json`: the content goes to a temporary file in the same folder, is flushed to
disk, and replaces the target with `os.replace` only when complete. An interrupted or failed write leaves the target
untouched and removes the temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator, Union

__all__ = ["atomic_open", "atomic_write", "write_json"]


@contextmanager
def atomic_open(path: Union[str, os.PathLike], mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """`open(path, mode)` for writing ("w" or "wb") whose result appears at `path` only if the block completes."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding, "newline": "\n"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:  # mkstemp makes the file 0600: give it the mode a plain open() would have
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path: Union[str, os.PathLike], data: Union[str, bytes], encoding: str = "utf-8") -> None:
    """Write `data` (text or bytes) to `path` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding) as f:
        f.write(data)


def write_json(path: Union[str, os.PathLike], obj, indent: int = 2) -> None:
    """`obj` as UTF-8 JSON (non-ASCII kept, newline at the end), written atomically. NaN/Infinity are refused:
    they are not JSON."""
    atomic_write(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")
