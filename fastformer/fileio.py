"""Atomic file writes: a file is either its old self or complete, never half-written.

Every file the project writes for a user (results, model folders' JSON, prepared data, predictions) goes through
`atomic_open` / `atomic_write` / `write_json`: the content goes to a temporary file in the same folder, is flushed to
disk, and replaces the target with `os.replace` only when complete. An interrupted or failed write leaves the target
untouched and removes the temporary file. `atomic_dir` does the same for a whole folder (model folders, checkpoints).

Weight files are recorded with their SHA-256 (`file_sha256`, `write_checksums` -> `checksums.json`) and checked when
loaded (`check_checksums`): a damaged or changed file is an error naming it, before anything is read from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from typing import IO, Iterator, Mapping, Optional, Sequence, Union

from .cli import UserError

__all__ = [
    "atomic_open",
    "atomic_write",
    "write_json",
    "atomic_dir",
    "publish_dir",
    "file_sha256",
    "CHECKSUMS_FILE",
    "write_checksums",
    "read_checksums",
    "check_checksums",
    "ChecksumError",
]

CHECKSUMS_FILE = "checksums.json"  # {"sha256": {file name: hex digest}} of a folder's weight files


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
            os.chmod(tmp, 0o666 & ~_umask())
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


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: str) -> None:
    """Flush every file under `folder` (and the folders themselves) to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)


@contextmanager
def atomic_dir(path: Union[str, os.PathLike], keep_old: bool = False) -> Iterator[str]:
    """A temporary folder next to `path` to write into; renamed to `path` only when the block completes.

    An existing `path` is replaced. The old folder is removed when the new one has every file it had (a model
    folder written again); otherwise, or with `keep_old` (checkpoints are never deleted), it is kept, renamed to
    `<path>.replaced-<time>-<pid>`. A block that raises leaves `path` as it was (the temporary folder is removed); a
    killed process leaves a hidden `.<name>.<random>.tmp` folder, which nothing reads.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path!r} exists and is not a folder")
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700: give it the mode os.makedirs would
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish_dir(staging, path, keep_old)


def publish_dir(staging: str, path: str, keep_old: bool = False) -> Optional[str]:
    """Flush the complete folder `staging` to disk and rename it to `path` (see `atomic_dir` for an existing `path`);
    returns where the old folder was kept, if it was."""
    _fsync_tree(staging)
    old = None
    if os.path.lexists(path):
        keep_old = keep_old or not _files(path) <= _files(staging)
        old = f"{path}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        os.rename(path, old)
    os.rename(staging, path)
    _fsync(os.path.dirname(path))  # the rename itself
    if old is not None and not keep_old:
        shutil.rmtree(old, ignore_errors=True)
        return None
    return old


def _files(folder: str) -> set:
    """Paths of the files under `folder`, relative to it."""
    return {os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names}


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def file_sha256(path: Union[str, os.PathLike], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class ChecksumError(UserError):
    """A weight file is missing or its SHA-256 is not the recorded one (damaged, truncated or changed)."""


def write_checksums(folder: Union[str, os.PathLike], names: Sequence[str]) -> dict:
    """Record the SHA-256 of `names` (files in `folder`) in `folder/checksums.json`; returns {name: digest}."""
    digests = {name: file_sha256(os.path.join(folder, name)) for name in names}
    write_json(os.path.join(folder, CHECKSUMS_FILE), {"sha256": digests})
    return digests


def read_checksums(folder: Union[str, os.PathLike]) -> Optional[dict]:
    """{name: digest} of `folder/checksums.json`, None when there is none; a UserError when it is unreadable."""
    path = os.path.join(folder, CHECKSUMS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            digests = json.load(f).get("sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise ChecksumError(f"{path}: not a readable checksum file ({exc})") from None
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise ChecksumError(f"{path}: expected {{\"sha256\": {{file name: hex digest}}}}")
    return digests


def check_checksums(folder: Union[str, os.PathLike], digests: Mapping[str, str], source: str = CHECKSUMS_FILE) -> None:
    """Every file of `digests` exists in `folder` with that SHA-256; else a `ChecksumError` naming the file."""
    for name, expected in digests.items():
        path = os.path.join(folder, name)
        if os.path.basename(name) != name:
            raise ChecksumError(f"{os.path.join(folder, source)}: {name!r} is not a file name of this folder")
        if not os.path.isfile(path):
            raise ChecksumError(f"{path}: missing (listed in {source})")
        actual = file_sha256(path)
        if actual != expected.lower():
            raise ChecksumError(
                f"{path}: SHA-256 {actual[:16]}... differs from the {expected[:16]}... recorded in {source}: the file "
                "is damaged or was changed after it was written"
            )
