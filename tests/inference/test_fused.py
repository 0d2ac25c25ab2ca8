"""The fused inference operator (`fastformer/inference/fused.py`, `csrc/infer_ops.cc`): the whole classifier as one
compiled operator computes the model's logits for every configuration it accepts (others are refused with the
reason), the export writes it beside the regular graph under the same parity check, and `--backend fused` runs it;
where it cannot be built the export is still complete and says why."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest

import fastformer  # noqa: F401
from fastformer.cli import run_main
from fastformer.encoding import encode_texts, pad_batch
from fastformer.inference import fused
from fastformer.inference.export import export_model
from fastformer.inference.folders import MANIFEST_FILE
from fastformer.inference.graph import LogitsModel, export_graph
from fastformer.inference.predictor import Predictor

import predict as predict_script
from test_graph import CONFIGS, CORPUS, TEXTS, _logits, _model
from tiny_model import saved_tiny_model

pytestmark = pytest.mark.skipif(fused.fused_unavailable() is not None,
                                reason=f"the fused operator cannot be built here: {fused.fused_unavailable()}")

ACCEPTED = {"paper": {}, "mean_pooler": {"pooler_type": "mean"}, "first_token": {"pooler_type": "first"},
            "shared_three_labels": {"share_attention_layers": True, "num_labels": 3}}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_fused_operator_computes_the_models_logits(name):
    model, tokenizer = _model(seed=3, **ACCEPTED[name])
    graph = fused.FusedClassifier(export_graph(model))
    rng = np.random.default_rng(0)
    words = " ".join(CORPUS).split()
    many = [" ".join(rng.choice(words, size=int(rng.integers(1, 30)))) for _ in range(40)]
    # one row per text (some padded), and 40 rows of up to 32 tokens: the operator's threaded loops
    for texts in (TEXTS, many):
        input_ids, attention_mask = pad_batch(encode_texts(tokenizer, texts, 40), tokenizer.pad_token_id, 8)
        expected = _logits(LogitsModel(model), input_ids, attention_mask)
        np.testing.assert_allclose(_logits(graph, input_ids, attention_mask), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["mean_pooler_value_projection", "first_token_relu_shared"])
def test_models_the_operator_does_not_compute_are_refused_with_the_reason(name):
    model, _ = _model(seed=3, **CONFIGS[name])
    ok, why = fused.fusable(export_graph(model))
    assert not ok and ("use_value_projection" in why or "GELU" in why)
    with pytest.raises(ValueError, match="fused operator"):
        fused.FusedClassifier(export_graph(model))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fused")
    saved_tiny_model(str(root / "model"), CORPUS, seed=2)
    export_model(str(root / "model"), str(root / "export"), max_length=48, log=lambda *a: None, precision="fp32")
    return str(root / "export")


def test_the_export_writes_and_checks_the_fused_program(export_dir):
    with open(os.path.join(export_dir, MANIFEST_FILE)) as f:
        record = json.load(f)["fused"]
    assert record["status"] == "ok" and record["max_abs_logits_diff"] <= 1e-5
    assert sorted(record["sha256"]) == ["model.fused.json", "model.fused.pdiparams"]
    with open(os.path.join(export_dir, "model.fused.json")) as f:
        assert "fastformer_classifier_infer" in f.read()
    graph = Predictor(export_dir, backend="inference", precision="fp32", batch_size=128, num_threads=2)
    one = Predictor(export_dir, backend="fused", precision="fp32", batch_size=128, num_threads=2)
    assert one.info()["backend"] == "fused" and not one.info()["onednn"]
    rng = np.random.default_rng(4)
    words = " ".join(CORPUS).split()
    # 128 texts of 20-40 tokens: more than 4,096 token rows, where the operator's loops run on two threads
    texts = TEXTS + [" ".join(rng.choice(words, size=int(rng.integers(20, 41)))) for _ in range(125)]
    np.testing.assert_allclose(one.predict_proba(texts), graph.predict_proba(texts), rtol=0, atol=1e-5)


def test_predict_runs_the_fused_backend(export_dir, capsys):
    code = run_main(predict_script.main, ["--model_dir", export_dir, "--backend", "fused", "--format", "jsonl",
                                          "great sound and battery"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out.splitlines()[0])["label"] and "(fused backend, fp32, cpu)" in err


def test_a_damaged_fused_program_is_refused(export_dir, tmp_path):
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    with open(copy / "model.fused.pdiparams", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    with pytest.raises(Exception, match="model.fused.pdiparams"):
        Predictor(str(copy), backend="fused", precision="fp32")


def test_without_the_operator_the_export_says_why_and_the_fused_backend_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fused, "_state", {"error": "the fused operator could not be built (no compiler)"})
    saved_tiny_model(str(tmp_path / "model"), CORPUS, seed=2)
    lines = []
    export_model(str(tmp_path / "model"), str(tmp_path / "export"), max_length=48, log=lines.append,
                 precision="fp32")
    with open(tmp_path / "export" / MANIFEST_FILE) as f:
        record = json.load(f)["fused"]
    assert record == {"status": "unavailable", "reason": "the fused operator could not be built (no compiler)"}
    assert not os.path.exists(tmp_path / "export" / "model.fused.json")
    assert any("fused operator: not exported (the fused operator could not be built" in line for line in lines)
    code = run_main(predict_script.main, ["--model_dir", str(tmp_path / "export"), "--backend", "fused", "fine"])
    err = capsys.readouterr().err
    assert code == 2 and "no fused program for the fused backend" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_fused_runs_fp32_only(export_dir):
    with pytest.raises(ValueError, match=r"bf16 runs an export on CPU with oneDNN \(backend inference"):
        Predictor(export_dir, backend="fused", precision="bf16")


def test_the_quality_gate_times_full_batches_single_reviews_and_the_split(export_dir, tmp_path):
    import shutil

    from fastformer.inference import gate

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    dev = tmp_path / "dev.jsonl"
    rng = np.random.default_rng(5)
    words = " ".join(CORPUS).split()
    with open(dev, "w", encoding="utf-8") as f:
        for _ in range(60):
            f.write(json.dumps({"text": " ".join(rng.choice(words, size=int(rng.integers(2, 40)))),
                                "label": int(rng.integers(0, 5))}) + "\n")
    record = gate.run_quality_gate(str(copy), "fused", str(dev), when="first use", batch_size=8)
    assert record["status"] == "passed" and record["agreement"] == 1.0 and record["backend"] == "fused"
    for key in ("speedup", "speedup_batch_1", "speedup_dev_split", "reviews_per_s", "single_reviews_per_s"):
        assert record[key] > 0, key
    with open(copy / MANIFEST_FILE) as f:
        assert json.load(f)["quality_gate"]["fused"]["speedup_batch_1"] == record["speedup_batch_1"]
