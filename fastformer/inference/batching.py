"""Request batching for serve.py: concurrent `predict(texts)` calls share one forward pass (docs/inference.md).

    batcher = RequestBatcher(predictor.predict, max_batch_texts=64, max_wait_s=0.002)
    future = batcher.submit(["Great sound.", "Broke after a week."])   # concurrent.futures.Future
    future.result()                                                      # predictor.predict's list for these texts
    batcher.close()
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

__all__ = ["RequestBatcher", "QueueFull"]


class QueueFull(RuntimeError):
    """More texts are waiting than the batcher's `max_queue_texts`."""


class RequestBatcher:
    """Gathers concurrent requests into joint calls of `predict_fn(texts) -> list of one result per text`.

    `after_batch(futures)`, when given, runs in the worker thread once a batch's futures are resolved and before the
    next batch is taken (serve.py waits there until the event loop has sent those answers: a forward pass of Paddle
    Inference's graph holds the GIL and would hold them back); its exceptions are ignored."""

    def __init__(self, predict_fn: Callable[[List[str]], Sequence], max_batch_texts: int = 64,
                 max_wait_s: float = 0.002, max_queue_texts: int = 4096,
                 after_batch: Optional[Callable[[List[Future]], None]] = None):
        if max_batch_texts < 1 or max_queue_texts < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch_texts >= 1, max_queue_texts >= 1 and max_wait_s >= 0, got "
                             f"{max_batch_texts}, {max_queue_texts}, {max_wait_s}")
        self.predict_fn = predict_fn
        self.after_batch = after_batch
        self.max_batch_texts = int(max_batch_texts)
        self.max_wait_s = float(max_wait_s)
        self.max_queue_texts = int(max_queue_texts)
        self._queue: Deque[Tuple[List[str], Future]] = collections.deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._thread = None
        self._closed = False
        self.stats = {"batches": 0, "requests": 0, "texts": 0, "largest_batch_texts": 0, "retried_alone": 0}

    def submit(self, texts: Sequence[str]) -> Future:
        """A future of `predict_fn`'s results for `texts` (in order); `QueueFull` when too many texts wait."""
        texts = list(texts)
        future: Future = Future()
        if not texts:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if self._queue and self._queued_texts + len(texts) > self.max_queue_texts:
                raise QueueFull(f"{self._queued_texts} texts are waiting (limit {self.max_queue_texts})")
            self._queue.append((texts, future))
            self._queued_texts += len(texts)
            if self._thread is None:  # started on first use: works with or without the app's lifespan events
                self._thread = threading.Thread(target=self._work, name="fastformer-batcher", daemon=True)
                self._thread.start()
            self._cond.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Answer what is queued, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def info(self) -> Dict[str, object]:
        with self._cond:
            waiting = self._queued_texts
        return {"max_batch_texts": self.max_batch_texts, "max_wait_ms": round(1000 * self.max_wait_s, 3),
                "max_queue_texts": self.max_queue_texts, "waiting_texts": waiting, **self.stats}

    # ------------------------------------------------------------------------------------------------ worker
    def _take(self):
        """The next batch of (texts, future), or None once closed and drained."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            count = len(batch[0][0])
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_batch_texts:
                while self._queue and count + len(self._queue[0][0]) <= self.max_batch_texts:
                    batch.append(self._queue.popleft())
                    count += len(batch[-1][0])
                remaining = deadline - time.monotonic()
                if self._queue or self._closed or remaining <= 0:  # the next one does not fit, or no more waiting
                    break
                self._cond.wait(remaining)
            self._queued_texts -= count
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            live = [(texts, future) for texts, future in batch if future.set_running_or_notify_cancel()]
            if live:
                self._answer(live)
                if self.after_batch is not None:
                    try:
                        self.after_batch([future for _, future in live])
                    except Exception:  # noqa: BLE001 - a hook's failure must not stop the answers
                        pass

    def _answer(self, batch: List[Tuple[List[str], Future]]) -> None:
        texts = [text for request, _ in batch for text in request]
        try:
            results = list(self.predict_fn(texts))
            if len(results) != len(texts):
                raise RuntimeError(f"predict_fn returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) that caused it
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            self.stats["retried_alone"] += len(batch)
            for one in batch:
                self._answer([one])
            return
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        self.stats["texts"] += len(texts)
        self.stats["largest_batch_texts"] = max(self.stats["largest_batch_texts"], len(texts))
        start = 0
        for request, future in batch:
            future.set_result(results[start:start + len(request)])
            start += len(request)
