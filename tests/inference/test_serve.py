"""serve.py: the HTTP endpoint answers, and refuses oversized and malformed requests (loopback only)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

import fastformer  # noqa: F401
from fastformer.inference.loader import load_predictor

import serve
from tiny_model import saved_tiny_model

CORPUS = ["great product , works well .", "broke after a week , waste of money .", "the sound is ok ."]
MAX_BODY = 2000
MAX_TEXTS = 8


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("serve") / "model")
    saved_tiny_model(model_dir, CORPUS, seed=3)
    return load_predictor(model_dir, backend="dynamic", batch_size=4)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(serve.create_app(predictor, max_body_bytes=MAX_BODY, max_texts=MAX_TEXTS)) as c:
        yield c


def test_health(client, predictor):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["labels"] == predictor.labels and body["max_texts"] == MAX_TEXTS


def test_predict_answers_in_order_with_per_item_errors(client, predictor):
    texts = ["great product , works well", "", "broke after a week", "   "]
    r = client.post("/predict", json={"texts": texts})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert len(preds) == 4
    assert preds[1]["error"] == "empty text" and "whitespace" in preds[3]["error"]
    want = predictor.predict(texts)
    for got, exp in zip(preds, want):
        assert got["rating"] == exp["rating"] and got["label"] == exp["label"]
        if exp["probabilities"]:
            assert abs(got["probabilities"]["5"] - exp["probabilities"]["5"]) < 1e-6
    assert client.post("/predict", json={"texts": []}).json() == {"predictions": []}


def test_oversized_requests_are_refused(client):
    big = {"texts": ["word " * (MAX_BODY // 5)]}
    r = client.post("/predict", json=big)  # Content-Length over the limit
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the streamed read stops it
        for _ in range(10):
            yield b" " * (MAX_BODY // 4)

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = client.post("/predict", json={"texts": ["ok"] * (MAX_TEXTS + 1)})
    assert r.status_code == 413 and str(MAX_TEXTS) in r.json()["detail"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty request body"),
        (b"\xff\xfe{}", 400, "JSON"),
        (b'["a", "b"]', 422, "JSON object"),
        (b'{"text": ["a"]}', 422, 'missing field "texts"'),
        (b'{"texts": "a single string"}', 422, "list of strings"),
        (b'{"texts": ["ok", 3, null]}', 422, "only strings"),
    ],
)
def test_malformed_requests_get_clear_errors(client, body, status, words):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_real_uvicorn_on_loopback(predictor):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = serve.create_app(predictor, max_body_bytes=MAX_BODY, max_texts=MAX_TEXTS)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=20, trust_env=False) as http:
            assert http.get("/health").json()["status"] == "ok"
            texts = ["great product", "broke after a week"]
            r = http.post("/predict", json={"texts": texts})
            assert r.status_code == 200
            got, want = r.json()["predictions"], predictor.predict(texts)
            assert [p["rating"] for p in got] == [w["rating"] for w in want]
            assert [p["label"] for p in got] == [w["label"] for w in want]
            for g, w in zip(got, want):
                assert g["probabilities"].keys() == w["probabilities"].keys()
                assert all(abs(g["probabilities"][k] - w["probabilities"][k]) < 1e-6 for k in w["probabilities"])
            r = http.post("/predict", content=json.dumps({"texts": ["x" * MAX_BODY]}),
                          headers={"content-type": "application/json"})
            assert r.status_code == 413
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_openapi_describes_the_answers_and_the_answers_fit_it(client):
    from fastformer.inference.schemas import HealthResponse, PredictResponse

    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    ref = responses["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/PredictResponse")
    for code in ("400", "413", "415", "422", "500", "503"):
        assert responses[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), code
    prediction = spec["components"]["schemas"]["Prediction"]["properties"]
    assert {"rating", "label", "probabilities", "truncated_tokens", "unk_share", "warning", "error"} <= set(prediction)
    health = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health["$ref"].endswith("/HealthResponse")
    answer = client.post("/predict", json={"texts": ["great sound", " "]}).json()
    assert PredictResponse.model_validate(answer).model_dump(exclude_unset=True) == answer  # nothing lost or added
    HealthResponse.model_validate(client.get("/health").json())
