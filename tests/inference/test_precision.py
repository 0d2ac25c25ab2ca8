"""Precision option (fastformer/inference/precision.py): bf16 only where the CPU has it and the quality gate passed, fp32 with a
clear message otherwise, int8 refused on Paddle Inference with its reason; the gate's figures recorded in the export's
manifest.

The CPU is made to look bf16-capable or not (tests/fake_cpu.py, the `bf16_cpu` fixture of tests/conftest.py), so
every test means the same on an AVX2 machine and on one with avx512_bf16. Where a test needs "bf16 logits" it uses a
runner that perturbs fp32 logits in a known way (a real bf16 run of a random tiny model could flip near-tied ratings
and make the gate's outcome machine-dependent); `test_bf16_on_this_cpu` is the one that runs whatever this CPU really
offers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastformer  # noqa: F401
from fastformer.inference import gate as quality_gate
from fastformer.inference import precision as precisions
from fastformer.inference.export import export_model
from fastformer.inference.folders import MANIFEST_FILE
from fastformer.inference.loader import load_predictor

import fake_cpu
import predict as predict_script
from tiny_model import saved_tiny_model

CORPUS = [
    "great product , works perfectly and the battery lasts all day .",
    "stopped working after two days , waste of money .",
    "the sound is fine but the cable is too short .",
    "i bought this for my office and it is ok .",
    "terrible keyboard , keys stick and the receiver broke .",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """<root>/model (random tiny model), <root>/export (fp32 export, no gate yet), <root>/data/dev.jsonl."""
    root = tmp_path_factory.mktemp("precision")
    saved_tiny_model(str(root / "model"), CORPUS, seed=11)
    export_model(str(root / "model"), str(root / "export"), max_length=48, log=lambda *a: None, precision="fp32")
    rng = np.random.default_rng(0)
    words = " ".join(CORPUS).split()
    os.makedirs(root / "data")
    with open(root / "data" / "dev.jsonl", "w", encoding="utf-8") as f:
        for _ in range(200):
            text = " ".join(rng.choice(words, size=int(rng.integers(3, 30))))
            f.write(json.dumps({"text": text, "label": int(rng.integers(0, 5))}) + "\n")
    return root


@pytest.fixture
def export_copy(built, tmp_path):
    """A fresh copy of the export with the dev split next to it (first-use gates write into its manifest)."""
    shutil.copytree(built / "export", tmp_path / "export")
    shutil.copytree(built / "data", tmp_path / "data")
    return str(tmp_path / "export")


def _features(bf16_fast: bool):
    return lambda: fake_cpu.report("bf16" if bf16_fast else "avx2")


def _manifest(export_dir):
    with open(os.path.join(export_dir, MANIFEST_FILE)) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------ the gate figures
def test_compare_predictions_thresholds():
    labels = np.arange(1000) % 5
    same = labels.copy()
    report = quality_gate.compare_predictions(labels, labels, same)
    assert report["passed"] and report["agreement"] == 1.0 and report["macro_f1_change"] == 0.0
    off4 = same.copy()
    off4[:4] = (off4[:4] + 1) % 5  # 99.6 % identical, macro-F1 -0.4 points: fails on F1 alone
    report = quality_gate.compare_predictions(labels, labels, off4)
    assert report["agreement"] == pytest.approx(0.996) and not report["passed"]
    assert report["macro_f1_change"] == pytest.approx(-0.004, abs=5e-4)
    # reference and candidate both wrong in ways that keep macro-F1 but change 1 % of ratings: fails on agreement
    ref = labels.copy()
    ref[:10] = (ref[:10] + 1) % 5
    cand = labels.copy()
    cand[10:20] = (cand[10:20] + 1) % 5
    report = quality_gate.compare_predictions(labels, ref, cand)
    assert abs(report["macro_f1_change"]) < 1e-3 and report["agreement"] == pytest.approx(0.98)
    assert not report["passed"]
    with pytest.raises(ValueError, match="as many predictions"):
        quality_gate.compare_predictions(labels[:3], labels[:3], labels[:2])


# -------------------------------------------------------------------------------------------- fallbacks and int8
def test_bf16_without_cpu_support_warns_and_runs_fp32(built, monkeypatch):
    from fastformer.inference import fused

    monkeypatch.setattr(precisions, "cpu_features", _features(False))
    monkeypatch.setattr(fused, "_state", {"error": "left out: auto would weigh it (test_backends.py)"})
    export = str(built / "export")
    fp32 = load_predictor(export, precision="fp32")
    with pytest.warns(precisions.PrecisionWarning, match="avx512_bf16"):
        asked = load_predictor(export, precision="bf16")
    assert asked.precision == "fp32" and "avx512_bf16" in asked.precision_note
    assert asked.info()["precision"] == "fp32"
    texts = ["great product", "keys stick and the receiver broke"]
    np.testing.assert_array_equal(asked.predict_proba(texts), fp32.predict_proba(texts))
    with warnings.catch_warnings():
        warnings.simplefilter("error", precisions.PrecisionWarning)  # auto falls back quietly (a note, no warning)
        auto = load_predictor(export)
    assert auto.precision == "fp32" and "avx512_bf16" in auto.precision_note
    assert "quality_gate" not in _manifest(export)  # nothing was checked or written


def test_bf16_needs_onednn_and_an_export(built, bf16_cpu):
    with pytest.warns(precisions.PrecisionWarning, match="oneDNN"):
        assert load_predictor(str(built / "export"), precision="bf16", enable_mkldnn=False).precision == "fp32"
    with pytest.warns(precisions.PrecisionWarning, match="Paddle Inference exports"):
        assert load_predictor(str(built / "model"), precision="bf16", max_length=48).precision == "fp32"


def test_int8_is_refused_on_paddle_with_the_measured_reason(built, capsys, monkeypatch):
    from fastformer.cli import run_main
    from fastformer.inference import loader, runners

    export = str(built / "export")
    with pytest.raises(ValueError, match="int8 is not available .*no oneDNN int8 passes"):
        load_predictor(export, backend="paddle", precision="int8")
    code = run_main(predict_script.main, ["--model_dir", export, "--backend", "paddle", "--precision", "int8", "great"])
    assert code == 2 and "int8 is not available" in capsys.readouterr().err
    for module in (runners, quality_gate, loader):  # int8 is ONNX Runtime's: without it, one line says so
        monkeypatch.setattr(module, "onnxruntime_missing", lambda: runners.ONNXRUNTIME_MISSING)
    with pytest.raises(ValueError, match="int8 runs on the onnxruntime backend: onnxruntime is not installed"):
        load_predictor(export, precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_predictor(export, precision="fp16")


def test_bf16_on_this_cpu(built):
    """Whatever this CPU offers: bf16 close to fp32 where it has avx512_bf16, else a warning and fp32."""
    supported, why = precisions.bf16_support()
    export = str(built / "export")
    texts = [" ".join(CORPUS)] + CORPUS
    reference = load_predictor(export, backend="paddle", precision="fp32").predict_proba(texts)
    if supported:
        predictor = load_predictor(export, precision="bf16", quality_gate=False)
        assert predictor.precision == "bf16"
        assert np.abs(predictor.predict_proba(texts) - reference).max() < 0.02
    else:
        assert "avx512_bf16" in why
        with pytest.warns(precisions.PrecisionWarning, match="avx512_bf16"):
            predictor = load_predictor(export, precision="bf16", quality_gate=False)
        assert predictor.precision == "fp32"
        np.testing.assert_array_equal(predictor.predict_proba(texts), reference)


def test_onednn_limited_below_bf16_means_no_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert precisions.onednn_max_cpu_isa() == "AVX2"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")  # oneDNN's older name
    assert precisions.onednn_max_cpu_isa() == "AVX512_CORE"
    bf16 = fake_cpu.report("bf16")
    for isa in ("AVX2", "AVX512_CORE", "AVX512_CORE_VNNI"):
        supported, why = precisions.bf16_support(dict(bf16, onednn_max_cpu_isa=isa))
        assert not supported and f"ONEDNN_MAX_CPU_ISA={isa}" in why
    for isa in (None, "AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"):
        assert precisions.bf16_support(dict(bf16, onednn_max_cpu_isa=isa)) == (True, "")


def test_bf16_under_onednn_limited_to_avx2_runs_fp32(built):
    """A process started with ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN reads it once): bf16 asked for runs fp32 with a
    warning. On a CPU with avx512_bf16 Paddle still reports bf16, and a bf16 predictor then fails to run
    (RuntimeError in Paddle 3.3); elsewhere this is the ordinary fallback."""
    texts = CORPUS[:3]
    code = (
        "import json, sys, warnings\n"
        "import fastformer\n"
        "from fastformer.inference.loader import load_predictor\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    p = load_predictor(sys.argv[1], precision='bf16', quality_gate=False)\n"
        "probs = p.predict_proba(json.loads(sys.argv[2])).tolist()\n"
        "print(json.dumps({'precision': p.precision, 'warnings': [str(w.message) for w in caught], 'probs': probs}))\n"
    )
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2")
    done = subprocess.run([sys.executable, "-c", code, str(built / "export"), json.dumps(texts)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["precision"] == "fp32" and any("bf16 not used" in w for w in out["warnings"])
    reference = load_predictor(str(built / "export"), precision="fp32").predict_proba(texts)
    np.testing.assert_allclose(out["probs"], reference, rtol=0, atol=1e-5)


# -------------------------------------------------------------------------------------------------- quality gate
def test_first_use_gate_passes_and_is_recorded(export_copy, bf16_cpu):
    bf16_cpu.perturb = staticmethod(lambda logits: logits + 1e-4)  # rounding that changes no rating
    predictor = load_predictor(export_copy)  # auto
    assert predictor.precision == "bf16" and "quality gate passed" in predictor.precision_note
    gate = _manifest(export_copy)["quality_gate"]["bf16"]
    assert gate["status"] == "passed" and gate["checked_at"] == "first use"
    assert gate["agreement"] == 1.0 and gate["macro_f1_change"] == 0.0 and gate["num_examples"] == 200
    assert gate["data_file"].endswith(os.path.join("data", "dev.jsonl")) and gate["cpu"] == "test CPU"
    # the recorded result is used from then on: no second check
    bf16_cpu.built_precisions = []
    again = load_predictor(export_copy, precision="bf16")
    assert again.precision == "bf16" and bf16_cpu.built_precisions == ["bf16"]


def test_first_use_gate_that_cannot_write_leaves_the_manifest_whole(export_copy, bf16_cpu, monkeypatch):
    """The first-use gate's record is written atomically: a full disk leaves manifest.json as it was (and no
    temporary file), and the predictor still runs with the gate's result."""
    import errno

    from fastformer import fileio

    before = open(os.path.join(export_copy, MANIFEST_FILE), "rb").read()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    bf16_cpu.perturb = staticmethod(lambda logits: logits * 1.002)
    with monkeypatch.context() as patch:
        patch.setattr(fileio.os, "fsync", disk_full)
        predictor = load_predictor(export_copy)
    assert predictor.precision == "bf16" and "quality gate passed" in predictor.precision_note
    assert open(os.path.join(export_copy, MANIFEST_FILE), "rb").read() == before
    assert not [name for name in os.listdir(export_copy) if name.endswith(".tmp")]


def test_failed_gate_falls_back_to_fp32_with_the_figures(export_copy, bf16_cpu):
    bf16_cpu.perturb = staticmethod(lambda logits: np.roll(logits, 1, axis=-1))  # every rating moves
    with pytest.warns(precisions.PrecisionWarning, match=r"quality gate failed .*identical ratings"):
        predictor = load_predictor(export_copy, precision="auto")
    assert predictor.precision == "fp32"
    gate = _manifest(export_copy)["quality_gate"]["bf16"]
    assert gate["status"] == "failed" and gate["agreement"] < quality_gate.MIN_AGREEMENT
    assert {"macro_f1_fp32", "macro_f1", "macro_f1_change", "max_abs_prob_diff"} <= set(gate)
    with pytest.warns(precisions.PrecisionWarning, match="quality gate failed"):  # read back, not rerun
        assert load_predictor(export_copy, precision="bf16").precision == "fp32"


def test_gate_without_dev_data(export_copy, bf16_cpu, tmp_path):
    shutil.rmtree(os.path.join(os.path.dirname(export_copy), "data"))
    with pytest.warns(precisions.PrecisionWarning, match="no dev split"):
        assert load_predictor(export_copy, precision="bf16").precision == "fp32"
    assert _manifest(export_copy)["quality_gate"]["bf16"]["status"] == "not checked"
    # a dev file given explicitly is used
    data = tmp_path / "my_dev.jsonl"
    data.write_text(json.dumps({"text": "great product , works", "label": 4}) + "\n")
    predictor = load_predictor(export_copy, precision="bf16", precision_data=str(data))
    assert predictor.precision == "bf16"
    assert _manifest(export_copy)["quality_gate"]["bf16"]["num_examples"] == 1


def test_export_records_the_gate(built, bf16_cpu, tmp_path):
    shutil.copytree(built / "model", tmp_path / "model")
    shutil.copytree(built / "data", tmp_path / "data")  # next to the model folder: the default dev split
    manifest = export_model(str(tmp_path / "model"), str(tmp_path / "export"), max_length=48, log=lambda *a: None)
    gate = manifest["quality_gate"]["bf16"]
    assert gate["status"] == "passed" and gate["checked_at"] == "export" and gate["num_examples"] == 200
    assert _manifest(str(tmp_path / "export"))["quality_gate"]["bf16"] == gate


def test_gate_on_a_cpu_without_bf16_says_why(export_copy, monkeypatch):
    monkeypatch.setattr(precisions, "cpu_features", _features(False))
    record = quality_gate.run_quality_gate(export_copy, "bf16", when="export")
    assert record["status"] == "not checked" and "avx512_bf16" in record["reason"]
    assert _manifest(export_copy)["quality_gate"]["bf16"] == record
