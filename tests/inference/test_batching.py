"""Request batching (fastformer/inference/batching.py and serve.py): concurrent requests share forward passes, every request
gets exactly its own answers in order, one request's failure stays its own, the queue is bounded (503), and a real
uvicorn server on loopback batches concurrent clients."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

import fastformer  # noqa: F401
from fastformer.inference.batching import QueueFull, RequestBatcher
from fastformer.inference.loader import load_predictor

import serve
from tiny_model import saved_tiny_model


class Echo:
    """predict(texts) -> one tagged result per text; blocks while `gate` is clear; records each call's size."""

    def __init__(self):
        self.calls = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, texts):
        self.entered.set()
        self.gate.wait(10)
        if "boom" in texts:
            raise RuntimeError("boom")
        self.calls.append(len(texts))
        return [f"<{t}>" for t in texts]


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_waiting_requests_share_one_call_and_keep_their_answers():
    echo = Echo()
    batcher = RequestBatcher(echo, max_batch_texts=10, max_wait_s=0.0)
    echo.gate.clear()
    first = batcher.submit(["a0"])  # taken alone by the worker, which then blocks in predict
    _wait(echo.entered.is_set)
    requests = [[f"r{i}-{j}" for j in range(1 + i % 3)] for i in range(8)]  # 1-3 texts each, 15 in all
    futures = [batcher.submit(texts) for texts in requests]
    big = batcher.submit([f"big{j}" for j in range(12)])  # over max_batch_texts: runs alone, never split
    assert batcher.info()["waiting_texts"] == 27
    echo.gate.set()
    assert first.result(10) == ["<a0>"]
    for texts, future in zip(requests, futures):
        assert future.result(10) == [f"<{t}>" for t in texts]
    assert big.result(10) == [f"<big{j}>" for j in range(12)]
    # 1 alone, then the 15 queued texts as whole requests in batches of at most 10 (9 + 6), then the big one
    assert echo.calls == [1, 9, 6, 12]
    info = batcher.info()
    assert info["requests"] == 10 and info["texts"] == 28 and info["batches"] == len(echo.calls)
    batcher.close()


def test_a_failing_request_does_not_fail_the_others():
    echo = Echo()
    batcher = RequestBatcher(echo, max_batch_texts=64, max_wait_s=0.0)
    echo.gate.clear()
    blocker = batcher.submit(["x"])
    _wait(echo.entered.is_set)
    good1, bad, good2 = batcher.submit(["a", "b"]), batcher.submit(["boom"]), batcher.submit(["c"])
    echo.gate.set()
    assert blocker.result(10) == ["<x>"]
    assert good1.result(10) == ["<a>", "<b>"] and good2.result(10) == ["<c>"]
    with pytest.raises(RuntimeError, match="boom"):
        bad.result(10)
    assert batcher.info()["retried_alone"] == 3
    batcher.close()


def test_queue_is_bounded_and_close_answers_what_waits():
    echo = Echo()
    batcher = RequestBatcher(echo, max_batch_texts=4, max_wait_s=0.0, max_queue_texts=5)
    echo.gate.clear()
    running = batcher.submit(["x"])
    _wait(echo.entered.is_set)
    waiting = batcher.submit(["a", "b", "c"])
    with pytest.raises(QueueFull, match="3 texts are waiting"):
        batcher.submit(["d", "e", "f"])
    assert batcher.submit([]).result(1) == []  # nothing to predict: answered at once
    echo.gate.set()
    batcher.close()
    assert running.done() and waiting.result(0) == ["<a>", "<b>", "<c>"]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["late"])


def test_max_wait_lets_later_requests_join():
    echo = Echo()
    batcher = RequestBatcher(echo, max_batch_texts=64, max_wait_s=0.5)
    first = batcher.submit(["a"])
    time.sleep(0.05)  # well inside the wait of the first request
    second = batcher.submit(["b"])
    assert first.result(10) == ["<a>"] and second.result(10) == ["<b>"]
    assert echo.calls == [2]
    batcher.close()


def test_after_batch_sees_each_batch_answered_before_the_next_is_taken():
    echo, seen = Echo(), []

    def after_batch(futures):
        seen.append([f.result(0) for f in futures])  # all answered already
        if len(seen) == 1:
            raise RuntimeError("a failing hook")  # ignored: the answers go on

    batcher = RequestBatcher(echo, max_batch_texts=10, max_wait_s=0.0, after_batch=after_batch)
    echo.gate.clear()
    first = batcher.submit(["a"])
    _wait(echo.entered.is_set)
    second, third = batcher.submit(["b"]), batcher.submit(["c", "d"])
    echo.gate.set()
    assert first.result(10) == ["<a>"] and third.result(10) == ["<c>", "<d>"] and second.result(10) == ["<b>"]
    batcher.close()
    assert seen == [[["<a>"]], [["<b>"], ["<c>", "<d>"]]] and echo.calls == [1, 3]


# -------------------------------------------------------------------------------------------- serve.py, end to end
CORPUS = ["great product , works well .", "broke after a week , waste of money .", "the sound is ok ."]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("batching") / "model")
    saved_tiny_model(model_dir, CORPUS, seed=5)
    return load_predictor(model_dir, backend="dynamic", batch_size=64)


class Slow:
    """A predictor whose forward takes at least 40 ms (so concurrent requests pile up), or waits for `gate`."""

    def __init__(self, predictor):
        self.inner, self.labels, self.batch_size = predictor, predictor.labels, 64
        self.gate = threading.Event()
        self.gate.set()
        self.sizes = []

    def predict(self, texts):
        self.gate.wait(20)
        time.sleep(0.04)
        self.sizes.append(len(texts))
        return self.inner.predict(texts)


def _serve(app):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait(lambda: server.started, 20)
    return server, thread, sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_server_batches_concurrent_clients_and_answers_each(predictor):
    slow = Slow(predictor)
    app = serve.create_app(slow, max_texts=16, max_batch_texts=64, batch_wait_ms=5)
    server, thread, sock, base = _serve(app)
    words = " ".join(CORPUS).replace(",", "").replace(".", "").split()
    answers, errors = {}, []

    def client(c):
        try:
            with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
                for r in range(4):
                    texts = [f"{words[(c + r + j) % len(words)]} {words[(c * r + j) % len(words)]} {c} {r} {j}"
                             for j in range(1 + (c + r) % 5)]
                    response = http.post("/predict", json={"texts": texts})
                    assert response.status_code == 200, response.text
                    answers[(c, r)] = (texts, response.json()["predictions"])
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    try:
        clients = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(60)
        assert not errors, errors
        assert len(answers) == 32
        for texts, got in answers.values():
            want = predictor.predict(texts)
            assert len(got) == len(texts)
            assert [g["rating"] for g in got] == [w["rating"] for w in want]
            for g, w in zip(got, want):
                assert all(abs(g["probabilities"][k] - w["probabilities"][k]) < 1e-5 for k in w["probabilities"])
        stats = httpx.get(base + "/health", trust_env=False).json()["batching"]
        assert stats["requests"] == 32 and stats["texts"] == sum(len(t) for t, _ in answers.values())
        assert stats["batches"] < 32 and max(slow.sizes) > 5  # requests shared forward passes
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_server_answer_is_the_predictors_results_as_compact_json(predictor):
    """/predict and its errors over real HTTP: the body is JSONResponse's encoding of `Predictor.predict`'s list."""
    from fastapi.responses import JSONResponse

    server, thread, sock, base = _serve(serve.create_app(predictor, max_texts=8))
    texts = ["great product , works well", "", "broke after a week , waste of money", "été ok"]
    try:
        response = httpx.post(base + "/predict", json={"texts": texts}, trust_env=False, timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.content == JSONResponse({"predictions": predictor.predict(texts)}).body
        assert int(response.headers["content-length"]) == len(response.content)
        bad = httpx.post(base + "/predict", json={"texts": "one"}, trust_env=False, timeout=30)
        assert bad.status_code == 422 and bad.json()["detail"].startswith('"texts" must be a list')
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_the_next_forward_pass_waits_until_the_answers_before_it_are_written(predictor, monkeypatch):
    """A forward pass holds the GIL: serve.py starts the next one only once the last batch's answers are written
    (here each answer's body is held back 0.3 s on its way out; without the wait the second request's pass would
    start while the first answer is still unwritten)."""
    import asyncio

    monkeypatch.setattr(serve, "DELIVERY_WAIT_S", 10.0)
    slow, starts, written = Slow(predictor), [], []
    predict = slow.predict

    def timed_predict(texts):
        starts.append(time.monotonic())
        return predict(texts)

    slow.predict = timed_predict
    app = serve.create_app(slow, max_texts=8, batch_wait_ms=0)

    async def late_bodies(scope, receive, send):
        async def send_late(message):
            if message["type"] == "http.response.body":
                await asyncio.sleep(0.3)
                written.append(time.monotonic())
            await send(message)

        await app(scope, receive, send_late)

    server, thread, sock, base = _serve(late_bodies)
    answers = []

    def post(text):
        answers.append(httpx.post(base + "/predict", json={"texts": [text]}, trust_env=False, timeout=30).status_code)

    try:
        first = threading.Thread(target=post, args=("great product",))
        first.start()
        _wait(lambda: len(starts) == 1)
        second = threading.Thread(target=post, args=("broke after a week",))  # queued while the first pass runs
        second.start()
        first.join(30)
        second.join(30)
        assert answers == [200, 200] and len(starts) == 2 and len(written) == 2
        assert starts[1] >= written[0]  # the second pass began after the first answer was written
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_server_answers_503_when_the_queue_is_full(predictor):
    slow = Slow(predictor)
    app = serve.create_app(slow, max_texts=8, max_batch_texts=8, batch_wait_ms=0, max_queue_texts=10)
    server, thread, sock, base = _serve(app)
    results = {}

    def post(name, texts):
        results[name] = httpx.post(base + "/predict", json={"texts": texts}, timeout=30, trust_env=False)

    try:
        slow.gate.clear()
        first = threading.Thread(target=post, args=("first", ["great"]))
        first.start()
        _wait(lambda: app.state.batcher.info()["waiting_texts"] == 0 and app.state.batcher._thread is not None)
        time.sleep(0.1)  # the worker holds "first" inside predict
        second = threading.Thread(target=post, args=("second", ["ok"] * 8))
        second.start()
        _wait(lambda: app.state.batcher.info()["waiting_texts"] == 8)
        post("third", ["broke"] * 5)
        assert results["third"].status_code == 503 and "busy" in results["third"].json()["detail"]
        slow.gate.set()
        first.join(30)
        second.join(30)
        assert results["first"].status_code == 200 and len(results["second"].json()["predictions"]) == 8
    finally:
        slow.gate.set()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
