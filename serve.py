"""A minimal HTTP endpoint for predictions: labels, and star ratings for a rating model (FastAPI + uvicorn).

    python serve.py --host 127.0.0.1 --port 8000          # the model that comes with the repository
    python serve.py --model_dir output/demo/export --host 127.0.0.1 --port 8000
    curl -s localhost:8000/health
    curl -s -X POST localhost:8000/predict -H 'content-type: application/json' \
         -d '{"texts": ["Great sound, works perfectly.", "Broke after a week."]}'

`POST /predict` takes `{"texts": [str, ...]}` and answers `{"predictions": [...]}`, one entry per text in order, as
`Predictor.predict` (an empty or blank text gets its own "error"; the others are still predicted). `POST /explain`
takes the same body, within the same limits, and answers `{"predictions": [...]}` with an "explanation" in each
(docs/explanations.md); it needs a trained model folder (an export answers 501). Requests are
bounded: a body over --max_body_bytes is refused with 413 (from Content-Length, and while the body is read, so a
chunked upload cannot get past it), more than --max_texts texts with 413; a body that is not `application/json`
gets 415, one that is not JSON (or nested too deeply to parse) 400, JSON of the wrong shape or types 422, each with
a "detail" message. A model giving NaN/Inf outputs (damaged weights) answers 500 with a JSON "detail", never a
made-up rating. `GET /health` says the model is loaded. The interactive docs page (/docs) is off unless --docs is
given: it loads Swagger UI from a third-party CDN into the browser; /openapi.json is always served.

Concurrent requests are batched (`fastformer.inference.batching.RequestBatcher`): the requests waiting while a forward pass
runs go into the next one together, up to --max_batch_texts texts (default: --batch_size), waiting at most
--batch_wait_ms for more to arrive; every request still gets exactly its own answers. A forward pass of Paddle
Inference's graph holds the GIL, so the next one starts once the answers of the last are written (at most 50 ms
later). More than --max_queue_texts waiting texts: 503. `--max_batch_texts 1` serves one request per forward
pass. --precision picks fp32 or bf16 (`fastformer.inference.precision`).

Slow clients are bounded (`fastformer.inference.server_limits`): at most --max_connections open connections (lowered to what
the open-files limit allows; one more closes the one that has waited longest for its request headers), request
headers complete within --header_timeout seconds and a body within --body_timeout seconds, else 408.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations (`request: Request`).
import fastformer.env  # noqa: F401  (first, before paddle loads: MKL settings)

import argparse
import asyncio
import contextlib
import functools
import json
import socket
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from fastformer.cli import UserError, run_main

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB
DEFAULT_MAX_TEXTS = 256
DEFAULT_BATCH_WAIT_MS = 2.0
DEFAULT_MAX_QUEUE_TEXTS = 4096
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to send the request line and headers
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to send the body
DELIVERY_WAIT_S = 0.05  # the most a batch's answers hold back the next forward pass (`_wait_delivered`)
MAX_HEADER_BYTES = 16 * 1024  # h11 refuses a longer request head (400)


class RequestError(Exception):
    def __init__(self, status_code: int, detail: str):
        super().__init__(detail)
        self.status_code, self.detail = status_code, detail


def _check_content_type(request) -> None:
    """415 unless the body is declared `application/json` (parameters such as charset allowed)."""
    declared = request.headers.get("content-type", "")
    if declared.split(";")[0].strip().lower() != "application/json":
        raise RequestError(415, f"the body must be JSON sent as 'Content-Type: application/json', got "
                                f"{declared or 'no Content-Type'!r}")


async def _read_body(request, max_body_bytes: int, timeout: float) -> bytes:
    """The request body, refusing (413) one over `max_body_bytes` by its Content-Length or as it streams in, and
    (408) one not received within `timeout` seconds."""
    try:
        return await asyncio.wait_for(_stream_body(request, max_body_bytes), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, f"request body not received within {timeout:g} s") from None


async def _stream_body(request, max_body_bytes: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise RequestError(400, f"invalid Content-Length header {length!r}") from None
        if declared > max_body_bytes:
            raise RequestError(413, f"request body of {declared} bytes is over the limit of {max_body_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise RequestError(413, f"request body is over the limit of {max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_texts(body: bytes, max_texts: int) -> list:
    if not body.strip():
        raise RequestError(400, 'empty request body: send JSON {"texts": ["review", ...]}')
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"request body is not UTF-8 JSON: {exc}") from None
    except ValueError as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "request body is JSON nested too deeply to parse") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f'expected a JSON object {{"texts": [...]}}, got {type(payload).__name__}')
    if "texts" not in payload:
        raise RequestError(422, 'missing field "texts" (a list of review strings)')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f'"texts" must be a list of strings, got {type(texts).__name__}')
    if len(texts) > max_texts:
        raise RequestError(413, f"{len(texts)} texts in one request; the limit is {max_texts}")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise RequestError(422, f'"texts" must hold only strings; items {bad[:10]} are not '
                                f"(first: {type(texts[bad[0]]).__name__})")
    return texts


def _json_bytes(content) -> bytes:
    """`content` as starlette's JSONResponse encodes it (compact, UTF-8, no NaN)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def _wait_delivered(futures) -> None:
    """The batcher's `after_batch`: wait (at most DELIVERY_WAIT_S) until the answers of these futures are sent. A
    forward pass of Paddle Inference's graph holds the GIL (the fused operator lets go of it), so the next one,
    started at once, would stop the event loop in the middle of sending them. Requests that failed get their answer
    from an exception handler and are not waited for."""
    deadline = time.monotonic() + DELIVERY_WAIT_S
    for future in futures:
        sent = getattr(future, "sent", None)
        if sent is not None and not future.cancelled() and future.exception() is None:
            sent.wait(max(0.0, deadline - time.monotonic()))


def create_app(predictor, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_texts: int = DEFAULT_MAX_TEXTS,
               max_batch_texts: Optional[int] = None, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
               max_queue_texts: int = DEFAULT_MAX_QUEUE_TEXTS, docs: bool = False,
               body_timeout: float = DEFAULT_BODY_TIMEOUT, explain_fn: Optional[Callable] = None):
    """The FastAPI application serving `predictor` (a `fastformer.inference.predictor.Predictor` or anything with
    `predict(texts)` and `labels`); concurrent requests share forward passes of up to `max_batch_texts` texts
    (default: the predictor's batch_size). `docs`: serve the Swagger UI page at /docs (it loads from a CDN).
    `explain_fn(texts)`: results with explanations, for POST /explain (None: it answers 501)."""
    if max_body_bytes < 1 or max_texts < 1 or not body_timeout > 0:
        raise ValueError(f"need max_body_bytes >= 1, max_texts >= 1 and body_timeout > 0, got {max_body_bytes}, "
                         f"{max_texts}, {body_timeout}")
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    from fastformer.inference.batching import QueueFull, RequestBatcher
    from fastformer.inference.predictor import NonFiniteOutputError
    from fastformer.inference.schemas import EXPLAIN_RESPONSES, RESPONSES, HealthResponse

    batch_texts = max_batch_texts or getattr(predictor, "batch_size", 64)
    batcher = RequestBatcher(predictor.predict, max_batch_texts=batch_texts, max_wait_s=batch_wait_ms / 1000.0,
                             max_queue_texts=max_queue_texts, after_batch=_wait_delivered)
    explainer = None if explain_fn is None else RequestBatcher(
        explain_fn, max_batch_texts=batch_texts, max_wait_s=batch_wait_ms / 1000.0, max_queue_texts=max_queue_texts,
        after_batch=_wait_delivered)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()  # answers what is queued
        if explainer is not None:
            explainer.close()

    app = FastAPI(title="Fastformer review ratings", version="1.0", docs_url="/docs" if docs else None,
                  redoc_url=None, lifespan=lifespan)
    app.state.predictor = predictor
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})

    @app.exception_handler(NonFiniteOutputError)
    async def _non_finite(request: Request, exc: NonFiniteOutputError):
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.exception_handler(Exception)  # anything else: still a JSON answer (the traceback goes to the log)
    async def _internal_error(request: Request, exc: Exception):
        return JSONResponse(status_code=500, content={"detail": f"internal server error ({type(exc).__name__})"})

    @app.get("/health", response_model=None, responses={200: {"model": HealthResponse}})
    def health():
        info = predictor.info() if hasattr(predictor, "info") else {"labels": list(predictor.labels)}
        return {"status": "ok", **info, "max_body_bytes": max_body_bytes, "max_texts": max_texts,
                "batching": batcher.info(), "explain": explainer is not None}

    texts_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["texts"],
        "properties": {"texts": {"type": "array", "items": {"type": "string"}, "maxItems": max_texts}},
    }}}}}

    async def answer(request: Request, queue) -> Response:
        """The checks and limits of every texts endpoint, then the answers of `queue` (a RequestBatcher) as JSON.
        The answer is encoded here, as JSONResponse would, without FastAPI's walk over every value of it
        (`jsonable_encoder`): the results are plain JSON types already."""
        _check_content_type(request)
        body = await _read_body(request, max_body_bytes, body_timeout)
        texts = _parse_texts(body, max_texts)
        try:
            future = queue.submit(texts)
        except QueueFull as exc:
            raise RequestError(503, f"server busy: {exc}; retry later") from None
        future.sent = threading.Event()  # set once the answer is written (`_wait_delivered`)
        try:
            content = _json_bytes({"predictions": await asyncio.wrap_future(future)})
        except BaseException:
            future.sent.set()
            raise
        return _Answer(content, future.sent)

    class _Answer(Response):
        """A JSON answer that says when it has been written to the connection."""

        media_type = "application/json"

        def __init__(self, content: bytes, sent: threading.Event):
            super().__init__(content)
            self._sent = sent

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._sent.set()

    @app.post("/predict", response_model=None, responses=RESPONSES, openapi_extra=texts_body)
    async def predict(request: Request):
        return await answer(request, batcher)

    @app.post("/explain", response_model=None, responses=EXPLAIN_RESPONSES, openapi_extra=texts_body)
    async def explain(request: Request):
        if explainer is None:
            raise RequestError(501, "explanations need a trained model folder (train.py's model/): this server "
                                    "runs an export, which holds no gradients")
        return await answer(request, explainer)

    return app


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {port}")
    return port


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds it; UserError when the address cannot be used (busy
    port, no such address). Its protocol is named (IPPROTO_TCP): asyncio sets TCP_NODELAY only on connections of
    such a socket, and without it an answer's headers and body, written apart, wait for the client's delayed ACK
    (about 40 ms on Linux)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on --host {host} --port {port}: {exc.strerror or exc}") from None
    return sock


def uvicorn_config(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                   max_connections: int = DEFAULT_MAX_CONNECTIONS, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                   **kwargs):
    """uvicorn's Config for `app` with the connection and header-time bounds of `fastformer.inference.server_limits`."""
    import uvicorn

    from fastformer.inference.server_limits import ACCEPT_BACKLOG, limited_h11_protocol

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, backlog=ACCEPT_BACKLOG,
                          http=limited_h11_protocol(max_connections, header_timeout),
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, **kwargs)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model_dir", default=None,
                        help="export folder (export_model.py) or trained model folder; default: the model that comes "
                        "with the repository, models/fastformer-amazon-reviews-rating (1-5 stars, real Amazon reviews)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=_port, default=8000)
    parser.add_argument("--docs", action="store_true",
                        help="serve the interactive docs page /docs (the browser loads Swagger UI from a CDN)")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="larger bodies get 413")
    parser.add_argument("--max_texts", type=int, default=DEFAULT_MAX_TEXTS, help="more texts in a request get 413")
    parser.add_argument("--max_connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="open connections at most (lowered to what the open-files limit allows)")
    parser.add_argument("--header_timeout", type=float, default=DEFAULT_HEADER_TIMEOUT,
                        help="seconds a client has to send its request headers (408 after)")
    parser.add_argument("--body_timeout", type=float, default=DEFAULT_BODY_TIMEOUT,
                        help="seconds a client has to send a request body (408 after)")
    parser.add_argument("--log_level", default="info")
    parser.add_argument("--max_batch_texts", type=int, default=None,
                        help="texts of concurrent requests gathered into one forward pass (default: --batch_size; "
                        "1: one request per pass)")
    parser.add_argument("--batch_wait_ms", type=float, default=DEFAULT_BATCH_WAIT_MS,
                        help="how long the first waiting request may wait for others to join its batch")
    parser.add_argument("--max_queue_texts", type=int, default=DEFAULT_MAX_QUEUE_TEXTS,
                        help="texts allowed to wait; requests beyond get 503")
    from fastformer.inference.args import add_predictor_args
    from fastformer.inference.explain_methods import DEFAULT_METHOD, METHODS

    add_predictor_args(parser)
    parser.add_argument("--explain_method", choices=METHODS, default=DEFAULT_METHOD,
                        help="token importance of POST /explain (docs/explanations.md)")
    args = parser.parse_args(argv)
    for name in ("max_body_bytes", "max_texts", "max_connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    for name in ("header_timeout", "body_timeout"):
        if not 0 < getattr(args, name) < float("inf"):
            parser.error(f"--{name} must be a number of seconds above 0, got {getattr(args, name)}")
    if args.max_batch_texts is not None and args.max_batch_texts < 1:
        parser.error(f"--max_batch_texts must be at least 1, got {args.max_batch_texts}")
    if not args.batch_wait_ms >= 0:
        parser.error(f"--batch_wait_ms must be 0 or more, got {args.batch_wait_ms}")
    if args.max_queue_texts < 1:
        parser.error(f"--max_queue_texts must be at least 1, got {args.max_queue_texts}")
    if args.model_dir is None:
        from fastformer.inference.folders import shipped_model_dir

        args.model_dir = shipped_model_dir()
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Serve as on the command line; user errors (model folder, busy port) raise `UserError`."""
    args = parse_args(argv)
    from fastformer.inference.server_limits import FD_RESERVE, connection_budget, fd_limit

    budget = connection_budget()
    if budget < 1:
        raise UserError(f"the open-files limit (ulimit -n) is {fd_limit()}: serving needs more than {FD_RESERVE}")
    if args.max_connections > budget:
        print(f"--max_connections {args.max_connections} lowered to {budget}: the open-files limit (ulimit -n) is "
              f"{fd_limit()}", file=sys.stderr)
        args.max_connections = budget
    sock = listen_socket(args.host, args.port)  # before loading the model: a busy port fails at once
    try:
        from fastformer.inference.loader import predictor_from_args

        predictor = predictor_from_args(args)
        import uvicorn

        from fastformer.inference.explain import explain_predictions, explainer_for

        explain_fn = None
        if predictor.dynamic_model is not None:
            explainer = explainer_for(predictor, args.explain_method)
            explain_fn = functools.partial(explain_predictions, predictor, explainer)
        app = create_app(predictor, max_body_bytes=args.max_body_bytes, max_texts=args.max_texts, docs=args.docs,
                         max_batch_texts=args.max_batch_texts, batch_wait_ms=args.batch_wait_ms,
                         max_queue_texts=args.max_queue_texts, body_timeout=args.body_timeout, explain_fn=explain_fn)
        endpoints = "POST /predict, POST /explain, GET /health" if explain_fn else "POST /predict, GET /health"
        print(f"serving {predictor!r} on http://{args.host}:{args.port} ({endpoints})", file=sys.stderr)
        config = uvicorn_config(app, args.host, args.port, args.log_level, args.max_connections, args.header_timeout)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def console_main() -> int:
    """The `fastformer-serve` command (pyproject.toml): `main` with one-line errors, as `python serve.py`."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(console_main())
