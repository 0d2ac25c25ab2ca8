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
    # one row per text (some padded), and 40 rows of up to 32 tokens: blocks of texts on every thread
    for texts in (TEXTS, many):
        input_ids, attention_mask = pad_batch(encode_texts(tokenizer, texts, 40), tokenizer.pad_token_id, 8)
        expected = _logits(LogitsModel(model), input_ids, attention_mask)
        np.testing.assert_allclose(_logits(graph, input_ids, attention_mask), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["paper", "mean_pooler"])
def test_masks_other_than_padding_at_the_end_are_computed_in_full(name):
    # padding after the last real token is skipped; a mask with leading zeros, a hole or no real token is not
    model, tokenizer = _model(seed=3, **ACCEPTED[name])
    folded = export_graph(model)
    graph = fused.FusedClassifier(folded)
    input_ids, attention_mask = pad_batch(encode_texts(tokenizer, TEXTS, 40), tokenizer.pad_token_id, 8)
    assert attention_mask[1].sum() > 3 and attention_mask[3].all()
    mask = attention_mask.copy()
    mask[0] = 0  # no real token: the exported graph's arithmetic (the model's pooling weights would all be 0)
    mask[1, :2] = 0
    mask[3, 5] = 0
    got = _logits(graph, input_ids, mask)
    np.testing.assert_allclose(got, _logits(folded, input_ids, mask), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[1:], _logits(LogitsModel(model), input_ids, mask)[1:], rtol=0, atol=1e-5)


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
    # 128 texts of 20-40 tokens: more than 4,096 token rows, in blocks of texts on two threads
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


def test_the_bf16_fused_program_runs_close_to_fp32(export_dir):
    with open(os.path.join(export_dir, MANIFEST_FILE)) as f:
        record = json.load(f)["fused"]["bf16"]
    assert record["status"] == "ok"
    assert sorted(record["sha256"]) == ["model.fused.bf16.json", "model.fused.bf16.pdiparams"]
    fp32 = Predictor(export_dir, backend="fused", precision="fp32", num_threads=2)
    bf16 = Predictor(export_dir, backend="fused", precision="bf16", num_threads=2)
    assert bf16.info()["precision"] == "bf16" and bf16.info()["backend"] == "fused"
    rng = np.random.default_rng(6)
    words = " ".join(CORPUS).split()
    # a few texts (one block, products on every thread) and 64 texts of 20-40 tokens (blocks on both threads)
    for texts in (TEXTS, [" ".join(rng.choice(words, size=int(rng.integers(20, 41)))) for _ in range(64)]):
        difference = np.abs(fp32.predict_proba(texts) - bf16.predict_proba(texts)).max()
        assert 0 < difference < 0.02  # products of bf16-rounded numbers: close to fp32, not equal


def test_fused_bf16_on_a_cpu_without_bf16_runs_fp32_with_a_warning(export_dir, monkeypatch):
    import fake_cpu
    from fastformer.inference import precision
    from fastformer.inference.loader import load_predictor

    monkeypatch.setattr(precision, "cpu_features", lambda: fake_cpu.report("avx2"))
    with pytest.warns(precision.PrecisionWarning, match="fused bf16 not used, running the fused program in fp32"):
        predictor = load_predictor(export_dir, backend="fused", precision="bf16")
    assert (predictor.backend, predictor.precision) == ("fused", "fp32")
    predictor = load_predictor(export_dir, backend="fused", precision="auto")  # auto: quietly fp32
    assert predictor.precision == "fp32" and "bf16" in predictor.precision_note


def test_fused_bf16_runs_where_its_quality_gate_passed(export_dir, tmp_path, monkeypatch):
    import shutil
    import warnings

    import fake_cpu
    from fastformer.inference import precision
    from fastformer.inference.loader import load_predictor

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    fp32 = Predictor(str(copy), backend="fused", precision="fp32")
    rng = np.random.default_rng(7)
    words = " ".join(CORPUS).split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 40)))) for _ in range(60)]
    with open(tmp_path / "dev.jsonl", "w", encoding="utf-8") as f:
        for text, label in zip(texts, fp32.predict_proba(texts).argmax(-1)):
            f.write(json.dumps({"text": text, "label": int(label)}) + "\n")
    monkeypatch.setattr(precision, "cpu_features", lambda: fake_cpu.report("bf16"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load_predictor(str(copy), backend="fused", precision="auto", batch_size=8,
                                   precision_data=str(tmp_path / "dev.jsonl"))
    with open(copy / MANIFEST_FILE) as f:
        record = json.load(f)["quality_gate"]["fused-bf16"]
    assert (record["backend"], record["precision"], record["num_examples"]) == ("fused", "bf16", 60)
    assert record["status"] in ("passed", "failed") and record["max_abs_prob_diff"] > 0
    # a random tiny model can have near-tied ratings that bf16 flips: either way the gate decides
    expected = "bf16" if record["status"] == "passed" else "fp32"
    assert predictor.precision == expected
    assert any("fused bf16 not used" in str(w.message) for w in caught) == (expected == "fp32")


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
