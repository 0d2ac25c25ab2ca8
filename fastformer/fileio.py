"""Atomic file writes (a file is its old self or complete, never half-written), gzip-or-plain reading, checksums.

`atomic_open` / `atomic_write` / `write_json` / `atomic_dir` write to a flocked temporary beside the target and swap
it in when complete; links are followed, FIFOs and devices written through. Details: docs/internals.md.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from contextlib import contextmanager
from typing import IO, BinaryIO, Iterator, List, Mapping, Optional, Pattern, Sequence, Union

from .cli import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, and leftovers are never removed (see `_alive`)
    fcntl = None

__all__ = [
    "atomic_open",
    "atomic_write",
    "write_json",
    "atomic_dir",
    "temp_dir",
    "publish_dir",
    "remove_leftovers",
    "file_sha256",
    "CHECKSUMS_FILE",
    "write_checksums",
    "read_checksums",
    "check_checksums",
    "ChecksumError",
    "is_gzip",
    "open_binary",
]

GZIP_MAGIC = b"\x1f\x8b"
CHECKSUMS_FILE = "checksums.json"  # {"sha256": {file name: hex digest}} of a folder's weight files


# ------------------------------------------------------------------------------------------- temporary names
@functools.lru_cache(maxsize=1)
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname())[:24] or "host"


def _temp_prefix(name: str) -> str:
    """`.<name>.<host>-<pid>.`: whose temporary file it is (mkstemp/mkdtemp add `<random>` and the `.tmp` suffix)."""
    return f".{name}.{_host()}-{os.getpid()}."


_OWNER = r"\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>[1-9][0-9]*)\.[A-Za-z0-9_]+\.tmp"  # after `.<name>`


def _lock(fd: int) -> None:
    """Mark a temporary file or folder as in use while `fd` is open (the lock goes with the process)."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without flock: the owner's pid still protects it
            pass


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host may still run (any doubt counts as alive)."""
    if os.name != "posix" or pid <= 0:
        return True  # (os.kill on Windows would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def _remove_unlocked(path: str) -> bool:
    """Remove the temporary file or folder `path` unless a process holds its lock; whether it was removed."""
    try:
        kind = os.lstat(path).st_mode
        if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | (os.O_DIRECTORY if stat.S_ISDIR(kind) else 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its writer lives (in another PID namespace)
        if stat.S_ISDIR(kind):
            shutil.rmtree(path)
        else:
            os.remove(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_leftovers(folder: Union[str, os.PathLike], name: Union[str, Pattern]) -> List[str]:
    """Remove what killed writers of `folder/<name>` left: temporary files and folders named by `_temp_prefix`
    whose process, on this host, is gone and whose lock nobody holds. `name` is a file name or a compiled pattern of
    names (checkpoint-\\d+). Returns the names removed; anything else in `folder` is never touched.

    These are half-written copies that were never a result (a checkpoint's staging folder is not a checkpoint), so
    removing them is not deleting a user's checkpoint or log."""
    target = name.pattern if isinstance(name, re.Pattern) else re.escape(name)
    pattern = re.compile(rf"\.(?:{target}){_OWNER}")
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for entry in sorted(entries):
        match = pattern.fullmatch(entry)
        if match and match["host"] == _host() and not _alive(int(match["pid"])):
            if _remove_unlocked(os.path.join(folder, entry)):
                removed.append(entry)
    return removed


def _write_target(path: str) -> Optional[str]:
    """The regular file an atomic write of `path` replaces: `path`, or where its symlinks lead (the links are kept);
    None when `path` is a FIFO, a device, a socket, a folder or an open descriptor (/dev/stdout, /proc/self/fd/N),
    which are opened, not replaced."""
    current = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    for _ in range(40):
        parent, name = os.path.realpath(os.path.dirname(current)), os.path.basename(current)
        if not name or parent == "/proc" or parent.startswith("/proc/"):
            return None  # /dev/stdout -> /proc/self/fd/1: a descriptor, whatever it points to
        current = os.path.join(parent, name)
        if not os.path.islink(current):
            break
        current = os.path.join(parent, os.readlink(current))  # a relative link is relative to its folder
    else:
        return None  # a link loop: open() reports it
    try:
        return current if stat.S_ISREG(os.stat(current).st_mode) else None
    except FileNotFoundError:
        return current


@contextmanager
def atomic_open(path: Union[str, os.PathLike], mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """`open(path, mode)` for writing ("w" or "wb") whose result appears at `path` only if the block completes.

    A symlink's target is replaced (the link stays); a FIFO, device or descriptor is written through (opened for
    appending, like `>>`: /dev/stdout redirected to a log adds to it)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    options = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
    path = os.fspath(path)
    target = _write_target(path)
    if target is None:
        with open(path, mode.replace("w", "a"), **options) as f:
            yield f
        return
    folder, name = os.path.split(target)
    remove_leftovers(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".tmp", dir=folder)
    _lock(fd)
    try:
        with os.fdopen(fd, mode, **options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if os.path.exists(target):
                os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            else:  # mkstemp makes the file 0600: give it the mode a plain open() would have
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)  # (the lock is held until the file is closed)
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
def temp_dir(path: Union[str, os.PathLike]) -> Iterator[str]:
    """A new locked temporary folder next to `path`, named for it (`.<name>.<host>-<pid>.<random>.tmp`), after the
    leftovers of killed writers of `path` are removed; removed at the end of the block if it still exists (whatever
    was published from it has been renamed away)."""
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    remove_leftovers(parent, name)
    staging = tempfile.mkdtemp(prefix=_temp_prefix(name), suffix=".tmp", dir=parent)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700: give it the mode os.makedirs would
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _lock(fd)
        yield staging
    finally:
        try:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(fd)


@contextmanager
def atomic_dir(path: Union[str, os.PathLike], keep_old: bool = False) -> Iterator[str]:
    """A temporary folder next to `path` to write into (`temp_dir`); renamed to `path` only when the block completes.

    An existing `path` is replaced. The old folder is removed when the new one has every file it had (a model
    folder written again); otherwise, or with `keep_old` (checkpoints are never deleted), it is kept, renamed to
    `<path>.replaced-<time>-<pid>`. A block that raises leaves `path` as it was (the temporary folder is removed); a
    killed process leaves its temporary folder, which nothing reads and the next write of `path` removes.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path!r} exists and is not a folder")
    with temp_dir(path) as staging:
        yield staging
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
    try:
        os.rename(staging, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)  # put the old folder back
        raise
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


# ------------------------------------------------------------------------------------------- plain or gzip
def is_gzip(path: str) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def decompressed(raw: BinaryIO) -> BinaryIO:
    """`raw` itself, or a gzip reader over it when it starts with the gzip magic bytes."""
    return gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == GZIP_MAGIC else raw  # type: ignore[attr-defined]


@contextmanager
def open_binary(path: str) -> Iterator[BinaryIO]:
    """Open a plain or gzip file for binary reading (gzip recognised by its magic bytes)."""
    with open(path, "rb") as raw, decompressed(raw) as stream:
        yield stream
