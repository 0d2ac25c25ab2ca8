"""Compiled CPU kernels for training: Paddle custom operators, built from `csrc/` the first time they are needed.

Paddle's CPU kernels of `layer_norm` and `gelu` backward and of `dropout` are single-threaded loops (layer_norm
backward: about 100 ms on a [64, 256, 256] batch, where PyTorch takes 12; benchmarks/README.md). The kernels here do
the same work on several threads with vectorised math, several times faster. They are compiled with the
machine's C++ compiler on first use (about 15 s, once; cached: `extensions`). Only training builds them: eval mode,
export and inference use Paddle's kernels (`cpu_layers`).

Where they cannot be built (no compiler, or FASTFORMER_CPU_OPS=0) `available()` is False, a warning says why, and
the model falls back to Paddle's own kernels: slower on CPU, the same results.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Optional, Tuple

import paddle

from . import extensions

SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "cpu_ops.cc")]
MODULE_NAME = "fastformer_cpu_ops"
# -ffast-math lets GCC vectorise erf/exp (glibc's libmvec: GELU's backward 8x faster) and the row sums. It also assumes
# finite values: a NaN or Inf activation gives undefined gradients here, while Paddle's own forward still shows it in
# the loss. -fopenmp-simd: the `omp simd` loop hints only, no OpenMP runtime (the kernels run on std::threads).
CXX_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-pthread"]
LD_FLAGS = ["-pthread"]

_lock = threading.Lock()
_module = None
_error: Optional[str] = None


def build_dir() -> str:
    return extensions.build_dir("cpu_ops", SOURCES, CXX_FLAGS + LD_FLAGS)


def _build():
    return extensions.build_extension(MODULE_NAME, "cpu_ops", SOURCES, CXX_FLAGS, LD_FLAGS)


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
