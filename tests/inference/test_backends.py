"""Backend choice (fastformer/inference/loader.py): `--backend paddle|onnxruntime|auto`. ONNX Runtime is optional: its
absence is one line, never an install; where it is asked for or weighed it is held to the quality gate against
Paddle Inference fp32, and "auto" takes it only when the gate passed and measured it faster on this CPU.

The project's environment has no onnxruntime, so most tests stand a recording runner in for it (Paddle Inference fp32
logits, changed by the test where the gate must fail) and set the speeds the gate measures; the tests at the end run
the real ONNX Runtime on an `--onnx` export where it is installed, comparing fp32 with fp32."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import fastformer  # noqa: F401
from fastformer.cli import run_main
from fastformer.inference import gate as quality_gate
from fastformer.inference import loader, runners
from fastformer.inference import precision as precisions
from fastformer.inference import predictor as predictor_module
from fastformer.inference.export import export_model
from fastformer.inference.folders import MANIFEST_FILE, ONNX_FILE
from fastformer.inference.loader import load_predictor
from fastformer.inference.quantize import INT8_FILE

import fake_cpu
import predict as predict_script
from tiny_model import saved_tiny_model

CORPUS = [
    "great product , works perfectly and the battery lasts all day .",
    "stopped working after two days , waste of money .",
    "the sound is fine but the cable is too short .",
    "terrible keyboard , keys stick and the receiver broke .",
]
TEXTS = ["great product , works perfectly", "waste of money , the cable broke", "fine"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """<root>/model, <root>/export (fp32, no gate, no model.onnx), <root>/data/dev.jsonl (120 reviews)."""
    root = tmp_path_factory.mktemp("backends")
    saved_tiny_model(str(root / "model"), CORPUS, seed=5)
    export_model(str(root / "model"), str(root / "export"), max_length=48, log=lambda *a: None, precision="fp32")
    rng = np.random.default_rng(1)
    words = " ".join(CORPUS).split()
    os.makedirs(root / "data")
    with open(root / "data" / "dev.jsonl", "w", encoding="utf-8") as f:
        for _ in range(120):
            f.write(json.dumps({"text": " ".join(rng.choice(words, size=int(rng.integers(3, 25)))),
                                "label": int(rng.integers(0, 5))}) + "\n")
    return root


class StandInOrt(runners.InferenceRunner):
    """Stands in for ONNX Runtime: Paddle Inference fp32 on the export, logits changed by `perturb` (fp32) or
    `perturb_int8` (int8, the file model.int8.onnx)."""

    perturb = staticmethod(lambda logits: logits)
    perturb_int8 = staticmethod(lambda logits: logits)
    built = 0

    def __init__(self, onnx_file, num_threads=None, precision="fp32"):
        folder = os.path.dirname(onnx_file)
        assert os.path.basename(onnx_file) == (INT8_FILE if precision == "int8" else ONNX_FILE)
        super().__init__(os.path.join(folder, "model.json"), os.path.join(folder, "model.pdiparams"),
                         num_threads=num_threads)
        self.precision = precision
        StandInOrt.built += 1

    def run(self, input_ids, attention_mask):
        change = self.perturb_int8 if self.precision == "int8" else self.perturb
        return change(super().run(input_ids, attention_mask))


@pytest.fixture
def ort(built, tmp_path, monkeypatch):
    """An export copy with a model.onnx, onnxruntime "installed" (the stand-in runner), a CPU without bf16, and the
    speed the gate measures set by the test (`ort.speedup`)."""
    shutil.copytree(built / "export", tmp_path / "export")
    shutil.copytree(built / "data", tmp_path / "data")
    for name in (ONNX_FILE, INT8_FILE):
        (tmp_path / "export" / name).write_bytes(b"stand-in")
    for module in (runners, quality_gate, loader):
        monkeypatch.setattr(module, "onnxruntime_missing", lambda: None)
    monkeypatch.setattr(predictor_module, "OrtRunner", StandInOrt)
    monkeypatch.setattr(precisions, "cpu_features", lambda: fake_cpu.report("avx2"))  # no VNNI: no int8 (see below)
    monkeypatch.setattr(StandInOrt, "perturb", staticmethod(lambda logits: logits))
    monkeypatch.setattr(StandInOrt, "perturb_int8", staticmethod(lambda logits: logits))
    monkeypatch.setattr(StandInOrt, "built", 0)
    state = type("Ort", (), {"speedup": 2.0, "speedup_int8": 3.0, "speedup_fused": 0.5, "speedup_fused_single": 0.5,
                             "export": str(tmp_path / "export")})()
    paired = quality_gate._predict_paired

    def timed(reference, candidate, texts, chunk):
        ref, cand, speed = paired(reference, candidate, texts, chunk)
        if candidate.backend == "fused":  # the export's fused program (where the operator builds)
            at_batch, single = state.speedup_fused, state.speedup_fused_single
        else:
            at_batch = single = state.speedup_int8 if candidate.precision == "int8" else state.speedup
        return ref, cand, dict(speed, speedup=at_batch, speedup_dev_split=at_batch, speedup_batch_1=single)

    monkeypatch.setattr(quality_gate, "_predict_paired", timed)
    monkeypatch.setattr(quality_gate, "SETTLE_S", 0.0)
    return state


def _gate(export_dir):
    with open(os.path.join(export_dir, MANIFEST_FILE)) as f:
        return json.load(f).get("quality_gate", {})


def test_auto_takes_onnxruntime_where_it_passed_and_is_faster(ort):
    predictor = load_predictor(ort.export)
    assert (predictor.backend, predictor.precision) == ("onnxruntime", "fp32")
    assert "2.00x Paddle Inference fp32" in predictor.precision_note
    record = _gate(ort.export)["onnxruntime"]
    assert record["status"] == "passed" and record["speedup"] == 2.0 and record["agreement"] == 1.0
    assert record["backend"] == "onnxruntime" and record["checked_at"] == "first use"
    built = StandInOrt.built
    again = load_predictor(ort.export)  # the record decides from then on: no second gate
    assert again.backend == "onnxruntime" and StandInOrt.built == built + 1
    reference = load_predictor(ort.export, backend="paddle", precision="fp32")
    assert reference.backend == "inference"
    np.testing.assert_allclose(predictor.predict_proba(TEXTS), reference.predict_proba(TEXTS), rtol=0, atol=1e-6)


def test_auto_runs_small_batches_on_the_engine_fastest_on_single_reviews(ort):
    if quality_gate.candidate_support("fused", ort.export)[0] is False:
        pytest.skip(f"no fused program here: {quality_gate.candidate_support('fused', ort.export)[1]}")
    ort.speedup_fused_single = 3.0  # ONNX Runtime 2.0x at the batch size and on single reviews, fused 0.5x / 3.0x
    predictor = load_predictor(ort.export, batch_size=16)
    assert (predictor.backend, predictor.precision) == ("onnxruntime", "fp32")
    small = predictor.info()["small_batches"]
    assert (small["backend"], small["precision"]) == ("fused", "fp32")
    assert small["max_rows"] == predictor_module.SMALL_BATCH_ROWS == 4
    assert "3.00x Paddle Inference fp32 on single reviews" in small["note"]
    record = _gate(ort.export)["fused"]
    assert record["status"] == "passed" and record["speedup_batch_1"] == 3.0 and record["backend"] == "fused"
    ran = []
    for name, runner in (("main", predictor._runner), ("small", predictor._small_runner)):
        original = runner.run
        runner.run = lambda ids, mask, _name=name, _run=original: ran.append((_name, len(ids))) or _run(ids, mask)
    reference = load_predictor(ort.export, backend="paddle", precision="fp32", batch_size=16)
    many = (TEXTS * 10)[:20]
    np.testing.assert_allclose(predictor.predict_proba(many), reference.predict_proba(many), rtol=0, atol=1e-5)
    np.testing.assert_allclose(predictor.predict_proba(TEXTS[:1]), reference.predict_proba(TEXTS[:1]), rtol=0,
                               atol=1e-5)
    assert ran == [("main", 16), ("small", 4), ("small", 1)]  # 20 texts: 16 rows, then 4; then 1 text


def test_one_engine_where_the_fastest_is_also_fastest_on_single_reviews(ort):
    ort.speedup_fused_single = 1.5  # ONNX Runtime 2.0x on both
    predictor = load_predictor(ort.export)
    assert predictor.backend == "onnxruntime" and predictor.info()["small_batches"] is None


def test_auto_keeps_paddle_where_onnxruntime_is_not_faster(ort):
    ort.speedup = 0.8
    predictor = load_predictor(ort.export)
    assert predictor.backend == "inference" and _gate(ort.export)["onnxruntime"]["status"] == "passed"


def test_a_failed_gate_keeps_paddle_and_an_explicit_request_warns(ort):
    StandInOrt.perturb = staticmethod(lambda logits: np.roll(logits, 1, axis=-1))  # every rating moves
    assert load_predictor(ort.export).backend == "inference"
    assert _gate(ort.export)["onnxruntime"]["status"] == "failed"
    with pytest.warns(precisions.PrecisionWarning, match="onnxruntime not used.*quality gate failed"):
        asked = load_predictor(ort.export, backend="onnxruntime")
    assert (asked.backend, asked.precision) == ("inference", "fp32")


def test_a_gate_on_another_cpu_is_measured_again_for_auto(ort):
    load_predictor(ort.export)
    with open(os.path.join(ort.export, MANIFEST_FILE)) as f:
        manifest = json.load(f)
    manifest["quality_gate"]["onnxruntime"]["cpu_flags"] = ["sse4_2"]
    with open(os.path.join(ort.export, MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    ort.speedup = 0.5
    assert load_predictor(ort.export).backend == "inference"
    assert _gate(ort.export)["onnxruntime"]["cpu_flags"] == fake_cpu.report("avx2")["flags"]


def test_without_a_dev_split_onnxruntime_is_not_used(ort, tmp_path):
    shutil.rmtree(tmp_path / "data")
    assert load_predictor(ort.export).backend == "inference"
    assert "no dev split" in _gate(ort.export)["onnxruntime"]["reason"]


def test_onnxruntime_needs_an_export_with_model_onnx(ort, built):
    os.remove(os.path.join(ort.export, ONNX_FILE))
    assert load_predictor(ort.export).backend == "inference"  # auto: nothing to weigh
    with pytest.raises(ValueError, match=r"no model.onnx .*export_model.py --onnx"):
        load_predictor(ort.export, backend="onnxruntime", precision="fp32", quality_gate=False)
    with pytest.raises(ValueError, match="trained model folder"):
        load_predictor(str(built / "model"), backend="onnxruntime")
    with pytest.raises(ValueError, match="bf16 is a Paddle Inference precision"):
        load_predictor(ort.export, backend="onnxruntime", precision="bf16")


def test_absent_onnxruntime_is_one_line_and_auto_runs_paddle(built, tmp_path, monkeypatch, capsys):
    for module in (runners, quality_gate, loader):
        monkeypatch.setattr(module, "onnxruntime_missing", lambda: runners.ONNXRUNTIME_MISSING)
    shutil.copytree(built / "export", tmp_path / "export")
    (tmp_path / "export" / ONNX_FILE).write_bytes(b"stand-in")
    assert load_predictor(str(tmp_path / "export")).backend == "inference"
    code = run_main(predict_script.main, ["--model_dir", str(tmp_path / "export"), "--backend", "onnxruntime", "fine"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "onnxruntime is not installed" in err
    assert "Traceback" not in err


def test_paddle_is_the_inference_backend(built):
    predictor = load_predictor(str(built / "export"), backend="paddle", precision="fp32")
    assert predictor.backend == "inference" and predictor.info()["backend"] == "inference"


def test_int8_where_the_cpu_has_vnni_and_it_passed_and_is_fastest(ort, monkeypatch):
    monkeypatch.setattr(precisions, "cpu_features", lambda: fake_cpu.report("avx512"))  # VNNI, no bf16
    StandInOrt.perturb_int8 = staticmethod(lambda logits: logits * 1.001)  # rounding that changes no rating
    predictor = load_predictor(ort.export)
    assert (predictor.backend, predictor.precision) == ("onnxruntime", "int8")
    gates = _gate(ort.export)
    assert gates["onnxruntime-int8"]["status"] == "passed" and gates["onnxruntime"]["status"] == "passed"
    assert load_predictor(ort.export, precision="fp32").precision == "fp32"  # fp32 asked for: int8 never weighed
    ort.speedup_int8 = 1.5  # slower than ONNX Runtime fp32 (2.0) on a CPU measured again: fp32 is taken
    with open(os.path.join(ort.export, MANIFEST_FILE)) as f:
        manifest = json.load(f)
    for record in manifest["quality_gate"].values():
        record["cpu_flags"] = ["sse4_2"]
    with open(os.path.join(ort.export, MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    assert (load_predictor(ort.export).backend, load_predictor(ort.export).precision) == ("onnxruntime", "fp32")


def test_int8_that_fails_the_gate_is_not_used(ort, monkeypatch):
    monkeypatch.setattr(precisions, "cpu_features", lambda: fake_cpu.report("avx512"))
    StandInOrt.perturb_int8 = staticmethod(lambda logits: np.roll(logits, 1, axis=-1))
    assert load_predictor(ort.export).precision == "fp32"  # ONNX Runtime fp32, the faster one that passed
    assert _gate(ort.export)["onnxruntime-int8"]["status"] == "failed"
    with pytest.warns(precisions.PrecisionWarning, match="onnxruntime not used.*onnxruntime-int8 quality gate failed"):
        asked = load_predictor(ort.export, precision="int8")
    assert (asked.backend, asked.precision) == ("inference", "fp32")


def test_int8_without_vnni_is_not_weighed_and_asking_says_why(ort):
    assert load_predictor(ort.export).precision == "fp32"  # the avx2 CPU of the fixture
    assert "onnxruntime-int8" not in _gate(ort.export)
    with pytest.warns(precisions.PrecisionWarning, match="no VNNI"):
        assert load_predictor(ort.export, backend="onnxruntime", precision="int8").backend == "inference"


# ------------------------------------------------------------------------------ the real ONNX Runtime, where installed
@pytest.fixture(scope="module")
def onnx_export(built, tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime is optional (benchmarks/requirements.txt)")
    pytest.importorskip("paddle2onnx", reason="paddle2onnx writes model.onnx")
    root = tmp_path_factory.mktemp("onnx_export")
    shutil.copytree(built / "model", root / "model")
    shutil.copytree(built / "data", root / "data")
    manifest = export_model(str(root / "model"), str(root / "export"), max_length=48, onnx=True, log=lambda *a: None,
                            precision="fp32")
    assert manifest["onnx"]["status"] == "ok", manifest["onnx"]
    return str(root / "export")


def test_onnxruntime_gives_the_fp32_ratings(onnx_export):
    ort_predictor = load_predictor(onnx_export, backend="onnxruntime", quality_gate=False)
    paddle_predictor = load_predictor(onnx_export, backend="paddle", precision="fp32")
    assert ort_predictor.backend == "onnxruntime"
    np.testing.assert_allclose(ort_predictor.predict_proba(TEXTS), paddle_predictor.predict_proba(TEXTS), rtol=0,
                               atol=1e-5)


def test_onnxruntime_gate_on_the_real_runtime(onnx_export):
    record = quality_gate.run_quality_gate(onnx_export, "onnxruntime", when="export")
    assert record["status"] == "passed" and record["agreement"] == 1.0 and record["speedup"] > 0


def test_the_export_writes_int8_and_onnxruntime_runs_it(onnx_export):
    with open(os.path.join(onnx_export, MANIFEST_FILE)) as f:
        int8 = json.load(f)["onnx"]["int8"]
    if int8["status"] != "ok":
        pytest.skip(int8["reason"])
    assert int8["file"] == INT8_FILE and int8["quantized_matmuls"] > 0
    predictor = load_predictor(onnx_export, backend="onnxruntime", precision="int8", quality_gate=False)
    assert (predictor.backend, predictor.precision) == ("onnxruntime", "int8")
    reference = load_predictor(onnx_export, backend="paddle", precision="fp32").predict_proba(TEXTS)
    assert np.abs(predictor.predict_proba(TEXTS) - reference).max() < 0.05  # int8 rounding, not another model


def test_a_changed_model_onnx_is_refused(onnx_export, tmp_path):
    damaged = tmp_path / "export"
    shutil.copytree(onnx_export, damaged)
    with open(damaged / ONNX_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="SHA-256"):
        load_predictor(str(damaged), backend="onnxruntime", quality_gate=False)


def test_auto_weighs_full_batches_and_the_dev_split_as_it_comes():
    # the geometric mean: 4x on full batches but 1x on the mixed-length split counts as 2x
    assert loader.batch_speed({"speedup": 4.0, "speedup_dev_split": 1.0}) == 2.0
    assert loader.batch_speed({"speedup": 1.5}) == 1.5  # a record without the split's speed
