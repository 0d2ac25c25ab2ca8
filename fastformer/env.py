"""Environment set-up that must happen before paddle loads (docs/training.md, "CPU threads"; docs/library.md,
"Start-up").

Importing this module sets MKL_DEBUG_CPU_TYPE=5 (MKL's fast path on AMD CPUs, about 3x on sgemm), GLOG_minloglevel=1
(Paddle's C++ INFO lines; its warnings still show) and quiets three messages of other packages that say nothing
about the run (each matched by its text and the module that issues it, so every other warning still shows);
`fastformer` imports it. `set_training_threads()` (run by `fastformer.training`) sets the CPU thread counts of a
training process. A value the user set is kept.
`keep_freed_memory()` (run by Paddle Inference runners) keeps glibc from handing activation memory back to the
system after every forward pass (docs/inference_speed.md, "Memory").
"""

import logging
import os
import sys
import warnings

from .import_hooks import after_import

__all__ = ["set_training_threads", "keep_freed_memory"]

# glibc mallopt parameters: freed memory above the heap top is kept up to TRIM; blocks up to MMAP come from the heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES, _MMAP_BYTES = 512 << 20, 32 << 20  # 32 MiB: the largest threshold glibc accepts on 64-bit
_kept = []

os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
# Paddle's C++ INFO lines (e.g. "Hardware support for BFLOAT16 is enabled" for every bf16 predictor); warnings show
os.environ.setdefault("GLOG_minloglevel", "1")
# paddle's import looks for ccache, which only speeds up rebuilds of C++ extensions (fastformer builds its kernels
# once per source and keeps them: cpu_ops.py)
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning,
                        module=r"paddle\.utils\.cpp_extension\.extension_utils")
# Python < 3.12: PaddleNLP imports pip after paddle has imported setuptools, and setuptools' distutils shim says so
warnings.filterwarnings("ignore", message="Setuptools is replacing distutils", category=UserWarning,
                        module="_distutils_hack")
# paddle sets the root logger to INFO; datasets then logs "PyTorch version ... available." before it sets its own
# logger to WARNING. Set that level first (datasets' warnings still show).
if logging.getLogger("datasets").level == logging.NOTSET:
    logging.getLogger("datasets").setLevel(logging.WARNING)


def set_training_threads() -> None:
    """OMP_NUM_THREADS and MKL_NUM_THREADS = the cores, shared among the processes of this machine.

    OMP_NUM_THREADS is set right after paddle has loaded: paddle prints a warning when it finds it above 1 and sets
    it to 1 when unset, and the Intel OpenMP runtime of its MKL, like the compiled kernels of `cpu_ops`, reads it
    only when first used, later."""
    processes_here = max(1, int(os.environ.get("PADDLE_LOCAL_SIZE") or 1))  # set by paddle.distributed.launch
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // processes_here))
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    if "OMP_NUM_THREADS" not in os.environ:
        after_import("paddle", lambda: os.environ.__setitem__("OMP_NUM_THREADS", threads))


def keep_freed_memory() -> bool:
    """On glibc, keep freed blocks in the process (mallopt) instead of unmapping them: Paddle Inference frees its
    activations after each forward pass and would otherwise page-fault them in again on the next one. Once per
    process; False where it does not apply (not glibc) or the user tuned malloc (MALLOC_TRIM_THRESHOLD_ /
    MALLOC_MMAP_THRESHOLD_ set)."""
    if _kept:
        return _kept[0]
    applies = sys.platform.startswith("linux") and not any(
        name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"))
    if applies:
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
            applies = bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES) and
                           libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES))
        except (OSError, AttributeError):  # another C library (musl): nothing to tune
            applies = False
    _kept.append(applies)
    return applies
