"""serve.py POST /explain: explanations with each prediction, within the limits of /predict."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import serve
from fastformer.inference.explain import explain_predictions, explainer_for
from fastformer.inference.loader import load_predictor
from fastformer.model_folder import save_model_dir
from reference_numpy import realistic_weights
from tiny_model import tiny_model

CORPUS = ["great product , works perfectly and the battery lasts all day .",
          "stopped working after two days , waste of money ."]
TEXTS = ["Great product, works perfectly!", "Stopped working after two days: waste of money."]
MAX_TEXTS, MAX_BODY = 4, 3000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("serve_explain") / "model")
    model, tokenizer = tiny_model(CORPUS, seed=5)
    realistic_weights(model, seed=5)
    save_model_dir(model, tokenizer, path)
    return path


@pytest.fixture(scope="module")
def app(model_dir):
    predictor = load_predictor(model_dir, backend="dynamic", batch_size=4)
    explainer = explainer_for(predictor, "gradient")
    with TestClient(serve.create_app(predictor, max_body_bytes=MAX_BODY, max_texts=MAX_TEXTS,
                                     explain_fn=lambda texts: explain_predictions(predictor, explainer, texts))) as c:
        yield c, predictor, explainer


def test_serve_explain_answers_predictions_with_explanations(app):
    client, predictor, explainer = app
    assert client.get("/health").json()["explain"] is True
    r = client.post("/explain", json={"texts": [TEXTS[0], "", TEXTS[1]]})
    assert r.status_code == 200
    got = r.json()["predictions"]
    assert got[1]["error"] == "empty text" and got[1]["explanation"] is None
    want = explain_predictions(predictor, explainer, [TEXTS[0], "", TEXTS[1]])
    for g, w in zip(got, want):
        assert g["label"] == w["label"]
        if w["explanation"]:
            assert g["explanation"]["top_words"] == w["explanation"]["top_words"]
            assert g["explanation"]["token_scores"] == pytest.approx(w["explanation"]["token_scores"], abs=1e-5)
    plain = client.post("/predict", json={"texts": [TEXTS[0]]}).json()["predictions"][0]
    assert "explanation" not in plain and plain["label"] == got[0]["label"]


@pytest.mark.parametrize("request_kwargs, status", [
    ({"json": {"texts": ["ok"] * (MAX_TEXTS + 1)}}, 413),
    ({"json": {"texts": ["word " * MAX_BODY]}}, 413),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b'{"texts": ["ok"]}', "headers": {"content-type": "text/plain"}}, 415),
    ({"json": {"texts": [1, 2]}}, 422),
])
def test_serve_explain_has_the_limits_of_predict(app, request_kwargs, status):
    client = app[0]
    for endpoint in ("/predict", "/explain"):
        r = client.post(endpoint, **request_kwargs)
        assert r.status_code == status and r.json()["detail"]


def test_serve_explain_without_a_model_folder_is_501(model_dir):
    predictor = load_predictor(model_dir, backend="dynamic", batch_size=4)
    with TestClient(serve.create_app(predictor)) as client:
        r = client.post("/explain", json={"texts": ["ok"]})
        assert r.status_code == 501 and "trained model folder" in r.json()["detail"]
        assert client.get("/health").json()["explain"] is False
