"""Environment set-up that must happen before paddle loads (docs/training.md, "CPU threads").

Importing this module sets MKL_DEBUG_CPU_TYPE=5 (MKL's fast path on AMD CPUs, about 3x on sgemm); `fastformer`
imports it. `set_training_threads()` (run by `fastformer.training`) sets the CPU thread counts of a training process.
A value the user set is kept.
"""

import os

__all__ = ["set_training_threads"]

os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


def set_training_threads() -> None:
    """OMP_NUM_THREADS and MKL_NUM_THREADS = the cores, shared among the processes of this machine."""
    processes_here = max(1, int(os.environ.get("PADDLE_LOCAL_SIZE") or 1))  # set by paddle.distributed.launch
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes_here)))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
