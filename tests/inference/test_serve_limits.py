"""serve.py under slow clients: connections and header/body read times are bounded, so /health answers while
hundreds of clients hold connections with half-sent headers; limits that cannot work are refused at start."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

import serve
from tiny_model import saved_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HALF_HEAD = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"  # no blank line: unfinished


class EchoPredictor:
    labels = ["1", "2"]
    batch_size = 4

    def predict(self, texts):
        return [{"text": text, "rating": 1} for text in texts]


@pytest.mark.parametrize("flags, words", [
    (["--max_body_bytes", "-1"], "--max_body_bytes must be at least 1"),
    (["--max_texts", "0"], "--max_texts must be at least 1"),
    (["--max_connections", "0"], "--max_connections must be at least 1"),
    (["--header_timeout", "0"], "--header_timeout must be a number of seconds above 0"),
    (["--body_timeout", "nan"], "--body_timeout must be a number of seconds above 0"),
    (["--body_timeout", "inf"], "--body_timeout must be a number of seconds above 0"),
])
def test_limits_that_cannot_work_are_refused_at_start(flags, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve.parse_args(["--model_dir", "unused", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and words in err
    assert [line for line in err.splitlines() if "error:" in line] == [err.splitlines()[-1]]


def _slow_clients(port, count):
    clients = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(HALF_HEAD)
        clients.append(s)
    return clients


def _answer(sock, timeout=5.0) -> bytes:
    """What the server sends before closing `sock` within `timeout` seconds (b"" if it closed without a word, b"reset"
    if it reset the connection: closed before reading what the client had sent); socket.timeout if it stays open."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data or b"reset"
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def start_server():
    """Starts real uvicorns (threads, loopback) with serve.py's bounds; yields a function (limits) -> (server, port)."""
    import uvicorn

    started = []

    def start(max_connections, header_timeout, body_timeout):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        app = serve.create_app(EchoPredictor(), body_timeout=body_timeout)
        server = uvicorn.Server(serve.uvicorn_config(app, log_level="warning", lifespan="off",
                                                     max_connections=max_connections, header_timeout=header_timeout))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.append((server, thread, sock))
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        return server, sock.getsockname()[1]

    yield start
    for server, thread, sock in started:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_slow_headers_and_bodies_time_out(start_server):
    server, port = start_server(max_connections=8, header_timeout=0.5, body_timeout=0.5)
    (slow,) = _slow_clients(port, 1)
    start = time.monotonic()
    assert _answer(slow).startswith(b"HTTP/1.1 408 ")  # headers not finished within 0.5 s
    assert 0.4 < time.monotonic() - start < 3
    body = socket.create_connection(("127.0.0.1", port), timeout=10)
    body.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                 b'{"texts": ')
    answer = _answer(body)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request body not received within 0.5 s" in answer
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False) as http:  # a prompt client
        assert http.post("/predict", json={"texts": ["fine"]}).json()["predictions"][0]["rating"] == 1
        assert http.get("/health").json()["status"] == "ok"  # the same connection, kept alive


def test_connections_send_without_nagles_delay(start_server):
    """Answers go out as written (TCP_NODELAY), whatever socket the server listens on: else an answer's body waits
    for the client's delayed ACK of its headers."""
    server, port = start_server(max_connections=8, header_timeout=5, body_timeout=5)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False) as http:
        assert http.post("/predict", json={"texts": ["fine"]}).json()["predictions"][0]["rating"] == 1
        (connection,) = server.server_state.connections  # the client's, kept alive
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    listening = serve.listen_socket("127.0.0.1", 0)  # serve.py's own: asyncio sets TCP_NODELAY on its connections
    try:
        assert listening.proto == socket.IPPROTO_TCP and listening.type == socket.SOCK_STREAM
    finally:
        listening.close()


def test_connections_are_capped_and_the_longest_waiting_make_room(start_server):
    server, port = start_server(max_connections=8, header_timeout=60, body_timeout=60)
    clients = _slow_clients(port, 40)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False) as http:
            assert http.get("/health").json()["status"] == "ok"
            assert http.post("/predict", json={"texts": ["fine"]}).json()["predictions"][0]["rating"] == 1
            assert len(server.server_state.connections) <= 8
        answers = [_answer(c, timeout=2) for c in clients[:32]]  # the 32 oldest were closed to make room
        assert all(a.startswith(b"HTTP/1.1 408 ") or a == b"reset" for a in answers), answers
        with pytest.raises(socket.timeout):  # the newest still wait for their headers (60 s)
            _answer(clients[-1], timeout=0.5)
    finally:
        for c in clients:
            c.close()


def test_health_answers_while_hundreds_of_slow_clients_hold_connections(tmp_path):
    """The real serve.py under an open-files limit of 512, with 600 clients that never finish their headers (the
    probe that locked a server out with 21,000 clients and `Errno 24`, scaled down): /health answers."""
    model_dir = str(tmp_path / "model")
    saved_tiny_model(model_dir, ["great product , works well .", "broke after a week , waste of money ."], seed=3)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    limit = 512

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "serve.py"), "--model_dir", model_dir, "--backend",
                             "dynamic", "--port", str(port), "--log_level", "critical"],
                            preexec_fn=low_fd_limit, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    clients = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    assert http.get("/health").status_code == 200
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
                    time.sleep(0.2)
            clients = _slow_clients(port, 600)
            start = time.monotonic()
            assert http.get("/health").json()["status"] == "ok"
            print(f"/health answered in {time.monotonic() - start:.3f} s with 600 slow clients")
            assert len(os.listdir(f"/proc/{proc.pid}/fd")) < limit
            assert proc.poll() is None
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
