"""The model that comes with the repository: a complete, checked folder stored in float16 that loads as float32,
is what predict.py and serve.py use without --model_dir, and rates two plain reviews as a rating model should."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastformer  # noqa: F401
from fastformer.fileio import read_checksums
from fastformer.inference.folders import SHIPPED_MODEL_DIR
from fastformer.inference.loader import load_predictor
from fastformer.model_folder import WEIGHTS_FILE, load_model_dir, save_model_dir
from fastformer.weight_files import safetensors_tensors

import predict as predict_script
import serve as serve_script
from tiny_model import tiny_model

GOOD, BAD = "Great product, works perfectly.", "Stopped working after two days. Waste of money."


def test_the_folder_is_complete_small_and_carded():
    names = set(os.listdir(SHIPPED_MODEL_DIR))
    assert {"config.json", WEIGHTS_FILE, "checksums.json", "vocab.txt", "tokenizer_config.json", "README.md"} <= names
    assert WEIGHTS_FILE in read_checksums(SHIPPED_MODEL_DIR)
    assert sum(os.path.getsize(os.path.join(SHIPPED_MODEL_DIR, n)) for n in names) < 15 * 2**20
    with open(os.path.join(SHIPPED_MODEL_DIR, "README.md"), encoding="utf-8") as f:
        card = f.read()
    for statement in ("not the paper's model", "not redistributed", "Research and demonstration",
                      "configs/shipped_real_reviews.json"):
        assert statement in card
    with open(os.path.join(SHIPPED_MODEL_DIR, "training_args.json"), encoding="utf-8") as f:
        recorded = json.dumps(json.load(f))
    assert "/work" not in recorded and '"/' not in recorded  # no local paths in a shared folder


def test_float16_on_disk_float32_in_memory():
    tensors = safetensors_tensors(os.path.join(SHIPPED_MODEL_DIR, WEIGHTS_FILE))
    assert {t.dtype for t in tensors.values()} == {"float16"}
    model, tokenizer = load_model_dir(SHIPPED_MODEL_DIR)
    assert {str(p.dtype) for p in model.parameters()} == {"paddle.float32"}
    assert model.config.id2label == {i: str(i + 1) for i in range(5)} and len(tokenizer) == 19843


def test_predict_uses_it_without_model_dir(tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    assert predict_script.main([GOOD, BAD, "--precision", "fp32", "--output", str(out)]) == 0
    good, bad = [json.loads(line) for line in out.read_text().splitlines()]
    assert good["rating"] == 5 and good["label"] == "5"
    assert bad["rating"] in (1, 2)
    assert abs(sum(good["probabilities"].values()) - 1) < 1e-5 and set(good["probabilities"]) == set("12345")
    assert predict_script.parse_args([GOOD]).model_dir == SHIPPED_MODEL_DIR


def test_serve_defaults_to_it():
    assert serve_script.parse_args([]).model_dir == SHIPPED_MODEL_DIR


def test_predictor_of_the_shipped_model():
    predictor = load_predictor(SHIPPED_MODEL_DIR, precision="fp32")
    assert predictor.rating_model and predictor.labels == ["1", "2", "3", "4", "5"]
    assert [r["rating"] for r in predictor.predict([GOOD])] == [5]


def test_float16_storage_round_trip(tmp_path):
    corpus = ["good fine great", "bad awful broken", "ok so so"]
    model, tokenizer = tiny_model(corpus, seed=3)
    save_model_dir(model, tokenizer, str(tmp_path / "full"))
    save_model_dir(model, tokenizer, str(tmp_path / "half"), weights_dtype="float16")
    full = os.path.getsize(tmp_path / "full" / WEIGHTS_FILE)
    half = os.path.getsize(tmp_path / "half" / WEIGHTS_FILE)
    assert half < 0.6 * full
    loaded, _ = load_model_dir(str(tmp_path / "half"))
    for name, value in model.state_dict().items():
        restored = loaded.state_dict()[name]
        assert str(restored.dtype) == "paddle.float32"
        np.testing.assert_allclose(restored.numpy(), value.numpy().astype(np.float16).astype(np.float32), rtol=0,
                                   atol=0)
    with pytest.raises(ValueError, match="weights_dtype"):
        save_model_dir(model, tokenizer, str(tmp_path / "x"), weights_dtype="int8")


def test_predict_prints_no_loading_chatter():
    """PaddleNLP's INFO lines about each file it loads stay out of a prediction's output; its warnings would not."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "predict.py", GOOD, "--precision", "fp32"], cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Loading weights file" not in run.stderr and "Loading configuration file" not in run.stderr
    assert run.stdout.count("\n") >= 3 and "5" in run.stdout
