"""Compiled CPU kernels for training: Paddle custom operators, built from `csrc/` the first time they are needed.

Paddle's CPU kernels of `layer_norm` and `gelu` backward and of `dropout` are single-threaded loops (layer_norm
backward: about 100 ms on a [64, 256, 256] batch, where PyTorch takes 12; benchmarks/README.md). The kernels here do
the same work on several threads with vectorised math, several times faster. `paddle.utils.cpp_extension` compiles
them with the machine's C++ compiler (about 15 s, once: the build is cached under FASTFORMER_OPS_CACHE, default
~/.cache/fastformer_paddle, keyed by the source, the compiler flags and the Paddle version, and compiled from a copy
of the source kept there, so that checkouts of the same source share it). Only training builds them: eval mode,
export and inference use Paddle's kernels (`cpu_layers`).

Where they cannot be built (no compiler, or FASTFORMER_CPU_OPS=0) `available()` is False, a warning says why, and
the model falls back to Paddle's own kernels: slower on CPU, the same results.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import warnings
from typing import Optional, Tuple

import paddle

SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "cpu_ops.cc")]
MODULE_NAME = "fastformer_cpu_ops"
# -ffast-math lets GCC vectorise erf/exp (glibc's libmvec: GELU's backward 8x faster) and the row sums. It also assumes
# finite values: a NaN or Inf activation gives undefined gradients here, while Paddle's own forward still shows it in
# the loss. -fopenmp-simd: the `omp simd` loop hints only, no OpenMP runtime (the kernels run on std::threads).
CXX_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-pthread"]

BUILT = "built"  # marks a finished build in its folder
BUILD_LAYOUT = "sources copied into the build folder"  # in the hash: folders of the older layout are left alone
_lock = threading.Lock()
_module = None
_error: Optional[str] = None


def build_dir() -> str:
    digest = hashlib.sha256(paddle.__version__.encode() + " ".join(CXX_FLAGS).encode() + BUILD_LAYOUT.encode())
    for path in SOURCES:
        with open(path, "rb") as f:
            digest.update(f.read())
    root = os.environ.get("FASTFORMER_OPS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastformer_paddle")
    return os.path.join(root, f"cpu_ops-{digest.hexdigest()[:16]}")


def _build():
    import fcntl

    from paddle.utils.cpp_extension import load

    path = build_dir()
    os.makedirs(path, exist_ok=True)
    # Paddle's loader prints "Compiling ..." to stdout: sent to stderr, a script's output (JSON lines) stays clean
    with open(os.path.join(path, ".lock"), "w") as lock, contextlib.redirect_stdout(sys.stderr):
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compiler at a time per build folder
        if os.path.isfile(os.path.join(path, BUILT)):  # built before: load it (Paddle's `load` runs a build step)
            try:
                from paddle.utils.cpp_extension.extension_utils import _import_module_from_library
            except ImportError:  # another Paddle: its `load` below
                pass
            else:
                return _import_module_from_library(MODULE_NAME, os.path.join(path, MODULE_NAME), False)
        saved = os.environ.get("PYTHONWARNINGS")
        # the build step's Python looks for ccache (which speeds up Paddle's own rebuilds) and warns; this build is
        # made once per source and kept
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [saved, "ignore:No ccache found:UserWarning"]))
        try:
            module = load(name=MODULE_NAME, sources=_sources_in(path), extra_cxx_cflags=CXX_FLAGS,
                          extra_ldflags=["-pthread"], build_directory=path, verbose=False)
        finally:
            if saved is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = saved
        with open(os.path.join(path, BUILT), "w") as f:  # written last: a build that was cut short is redone
            f.write("built\n")
        return module


def _sources_in(path: str):
    """The sources copied into the build folder: Paddle's build record hashes their paths, so two checkouts of the
    same sources compile from the same paths and share one build instead of rebuilding it for each other."""
    import shutil

    copies = []
    for source in SOURCES:
        copy = os.path.join(path, "src", os.path.basename(source))
        if not os.path.isfile(copy):  # the folder is keyed by the sources' hash: an existing copy is the same text
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copyfile(source, copy + ".tmp")
            os.replace(copy + ".tmp", copy)
        copies.append(copy)
    return copies


def load_ops():
    """The compiled module, built on the first call; None (with one warning) where it cannot be built."""
    global _module, _error
    if _module is not None or _error is not None:
        return _module
    with _lock:
        if _module is None and _error is None:
            if os.environ.get("FASTFORMER_CPU_OPS", "1") == "0":
                _error = "disabled by FASTFORMER_CPU_OPS=0"
            else:
                try:
                    _module = _build()
                except Exception as exc:  # no compiler, no headers, a failed build: fall back, loudly
                    _error = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
            if _error is not None:  # once per process: later calls return above
                warnings.warn(f"fastformer: compiled CPU kernels unavailable ({_error}); training uses Paddle's "
                              "own backward kernels instead (same results, slower on CPU)", RuntimeWarning)
    return _module


def available() -> bool:
    return load_ops() is not None


def unavailable_reason() -> Optional[str]:
    load_ops()
    return _error


def layer_norm_backward(
    x: paddle.Tensor, weight: paddle.Tensor, grad: paddle.Tensor, epsilon: float
) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """Gradients (dx, dweight, dbias) of layer_norm over the last axis of float32 CPU tensors."""
    return tuple(load_ops().fastformer_ln_backward(x.contiguous(), weight, grad.contiguous(), float(epsilon)))


def gelu_backward(x: paddle.Tensor, grad: paddle.Tensor) -> paddle.Tensor:
    """Gradient of the exact (erf) GELU of a float32 CPU tensor."""
    return load_ops().fastformer_gelu_backward(x.contiguous(), grad.contiguous())


def dropout(x: paddle.Tensor, p: float) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """Upscale-in-train dropout of a float32 CPU tensor: (x * mask / (1 - p), uint8 mask). The mask's random numbers
    come from a seed drawn from Paddle's generator, so `paddle.seed` makes them repeatable."""
    seed = int(paddle.randint(0, 2**31 - 1, [1]).item())
    return tuple(load_ops().fastformer_dropout(x.contiguous(), seed, float(p)))


def dropout_backward(mask: paddle.Tensor, grad: paddle.Tensor, p: float) -> paddle.Tensor:
    return load_ops().fastformer_dropout_backward(mask, grad.contiguous(), float(p))
