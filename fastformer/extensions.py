"""Paddle custom operators compiled from `csrc/` the first time they are needed, cached per source.

`paddle.utils.cpp_extension` compiles a module with the machine's C++ compiler (15-25 s, once): the build is kept
under FASTFORMER_OPS_CACHE (default ~/.cache/fastformer_paddle) in a folder keyed by the sources, the compiler and
linker flags and the Paddle version, compiled from a copy of the sources kept there, so checkouts of the same source
share it. Users: `cpu_ops` (training kernels) and `inference.fused` (the fused inference operator).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
from typing import Sequence

__all__ = ["build_dir", "build_extension"]

BUILT = "built"  # marks a finished build in its folder
BUILD_LAYOUT = "sources copied into the build folder"  # in the hash: folders of the older layout are left alone


def build_dir(prefix: str, sources: Sequence[str], flags: Sequence[str]) -> str:
    import paddle

    digest = hashlib.sha256(paddle.__version__.encode() + " ".join(flags).encode() + BUILD_LAYOUT.encode())
    for path in sources:
        with open(path, "rb") as f:
            digest.update(f.read())
    root = os.environ.get("FASTFORMER_OPS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastformer_paddle")
    return os.path.join(root, f"{prefix}-{digest.hexdigest()[:16]}")


def build_extension(name: str, prefix: str, sources: Sequence[str], cxx_flags: Sequence[str],
                    ld_flags: Sequence[str] = ()):
    """The compiled module `name` (its operators registered with Paddle), built on first use under
    `build_dir(prefix, ...)`; raises on a failed build (callers fall back and say why)."""
    path = build_dir(prefix, sources, list(cxx_flags) + list(ld_flags))
    os.makedirs(path, exist_ok=True)
    quiet = logging.getLogger("utils.cpp_extension")  # Paddle's loader logs "using custom operator only" at INFO
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        return _build_in(path, name, sources, cxx_flags, ld_flags)
    finally:
        quiet.setLevel(level)


def _build_in(path: str, name: str, sources: Sequence[str], cxx_flags: Sequence[str], ld_flags: Sequence[str]):
    import fcntl

    from paddle.utils.cpp_extension import load

    # Paddle's loader prints "Compiling ..." to stdout: sent to stderr, a script's output (JSON lines) stays clean
    with open(os.path.join(path, ".lock"), "w") as lock, contextlib.redirect_stdout(sys.stderr):
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compiler at a time per build folder
        if os.path.isfile(os.path.join(path, BUILT)):  # built before: load it (Paddle's `load` runs a build step)
            try:
                from paddle.utils.cpp_extension.extension_utils import _import_module_from_library
            except ImportError:  # another Paddle: its `load` below
                pass
            else:
                return _import_module_from_library(name, os.path.join(path, name), False)
        saved = os.environ.get("PYTHONWARNINGS")
        # the build step's Python looks for ccache (which speeds up Paddle's own rebuilds) and warns; this build is
        # made once per source and kept
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [saved, "ignore:No ccache found:UserWarning"]))
        try:
            module = load(name=name, sources=_sources_in(path, sources), extra_cxx_cflags=list(cxx_flags),
                          extra_ldflags=list(ld_flags), build_directory=path, verbose=False)
        finally:
            if saved is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = saved
        with open(os.path.join(path, BUILT), "w") as f:  # written last: a build that was cut short is redone
            f.write("built\n")
        return module


def _sources_in(path: str, sources: Sequence[str]):
    """The sources copied into the build folder: Paddle's build record hashes their paths, so two checkouts of the
    same sources compile from the same paths and share one build instead of rebuilding it for each other."""
    copies = []
    for source in sources:
        copy = os.path.join(path, "src", os.path.basename(source))
        if not os.path.isfile(copy):  # the folder is keyed by the sources' hash: an existing copy is the same text
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copyfile(source, copy + ".tmp")
            os.replace(copy + ".tmp", copy)
        copies.append(copy)
    return copies
