"""Several processes (data parallel): a TCP-store barrier, rank 0's result sent to all, and a clean shutdown."""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable

import paddle
from paddlenlp.trainer import TrainingArguments

__all__ = ["wait_for_every_process", "close_processes", "from_first_process"]


_sync_points = itertools.count()


def wait_for_every_process(training_args: TrainingArguments) -> None:
    """Return once every process has called this (as many times). A barrier on the job's TCP store, polled: no
    process waits inside a collective, so one may arrive minutes after the others (a gloo collective, the CPU
    backend's, gives up after 30 s)."""
    if training_args.world_size <= 1:
        return
    from paddle.base import core

    store = core.create_or_get_global_tcp_store()  # the store of paddle.distributed.init_parallel_env
    key = f"fastformer/sync/{next(_sync_points)}"
    store.add(key, 1)
    while store.add(key, 0) < training_args.world_size:
        time.sleep(0.2)


def close_processes(training_args: TrainingArguments) -> None:
    """At the end of a run with several processes: wait for every process, then take the process groups down
    (docs/training.md, "Several GPUs or machines")."""
    if training_args.world_size <= 1:
        return
    wait_for_every_process(training_args)
    paddle.distributed.destroy_process_group()


def from_first_process(training_args: TrainingArguments, fn: Callable[[], Any]) -> Any:
    """`fn()` run by the first process (rank 0) only, its result sent to every process (pickled, over the collective
    backend); with one process just `fn()`.

    The others wait for it however long it takes (`wait_for_every_process`). If `fn` fails, the first process raises
    its error and the others raise a RuntimeError quoting it, instead of waiting for a result that never comes.
    """
    if training_args.world_size <= 1:
        return fn()
    payload, error = [None], None
    if training_args.process_index == 0:
        try:
            payload = [(True, fn())]
        except Exception as exc:
            payload, error = [(False, f"{type(exc).__name__}: {exc}")], exc
    wait_for_every_process(training_args)
    paddle.distributed.broadcast_object_list(payload, src=0)
    if error is not None:
        raise error
    ok, value = payload[0]
    if not ok:
        raise RuntimeError(f"the first process (rank 0) failed: {value}")
    return value
