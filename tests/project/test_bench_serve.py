"""benchmarks/bench_serve.py: its load generator against a real server (a tiny model over loopback HTTP), with the
CPU time of the clients and of the server it records, and its argument checks."""

import os
import socket
import threading
import time

import pytest

import fastformer  # noqa: F401
from benchmarks import bench_serve
from fastformer.inference.loader import load_predictor

import serve
from tiny_model import saved_tiny_model

CORPUS = ["great product , works well .", "broke after a week , waste of money .", "the sound is ok ."]


def test_arguments_are_checked():
    args = bench_serve.parse_args([])
    assert args.rounds == 1 and args.warmup_requests == 2 and args.texts_range == (1, 16)
    for bad in (["--rounds", "0"], ["--warmup_requests", "-1"], ["--texts_per_request", "3-2"]):
        with pytest.raises(SystemExit):
            bench_serve.parse_args(bad)


def test_cpu_time_of_a_process():
    assert bench_serve.process_cpu_s(os.getpid()) > 0
    assert bench_serve.process_cpu_s(2 ** 22 + 12345) is None  # no such process


def test_load_reads_every_answer_and_records_cpu_time(tmp_path):
    import uvicorn

    model_dir = str(tmp_path / "model")
    saved_tiny_model(model_dir, CORPUS, seed=11)
    app = serve.create_app(load_predictor(model_dir, backend="dynamic", batch_size=8), max_texts=8)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        args = bench_serve.parse_args(["--clients", "3", "--requests", "4", "--warmup_requests", "1",
                                       "--texts_per_request", "1-3", "--timeout", "30"])
        pool = ["great product", "broke after a week", "the sound is ok", "waste of money", "works well"]
        result = bench_serve.load(args, sock.getsockname()[1], pool, server_pid=os.getpid(), round_index=1)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert result["requests_ok"] == 12 and result["requests_failed"] == 0 and 12 <= result["texts"] <= 36
    assert result["texts_per_s"] > 0 and result["latency_ms_p50"] <= result["latency_ms_p99"]
    # the server runs in this process here, so both counts are this process's time
    assert result["client_cpu_s"] > 0 and result["server_cpu_s"] is not None
    assert 0 < result["client_cpu_share"] < 1 and result["client_cpu_ms_per_request"] > 0
