"""evaluate.py on a tiny trained model: metrics against sklearn, JSON + PNG, data options, the exported model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

import fastformer  # noqa: F401  (before paddle)
from fastformer_data.demo_data import generate_demo_reviews
from fastformer.splits import read_split
from fastformer.inference.loader import load_predictor

import evaluate
import export_model as export_script
import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    raw = str(root / "raw.json.gz")
    generate_demo_reviews(raw, 400, seed=11)
    results = train.main([TINY, "--output_dir", str(root / "run"), "--input_file", raw, "--num_train_epochs", "1",
                          "--disable_tqdm", "true", "--report_to", "none"])
    return root, results


def test_evaluate_writes_json_and_png_with_sklearn_metrics(trained):
    root, train_results = trained
    model_dir = str(root / "run" / "model")
    results = evaluate.main(["--model_dir", model_dir, "--split", "test"])
    out = root / "run" / "eval_test"  # default: next to the model folder
    saved = json.loads((out / "eval_results.json").read_text())
    png = out / "confusion_matrix.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert saved["accuracy"] == results["accuracy"] and saved["backend"] == "dynamic"

    texts, labels = read_split(str(root / "run" / "data" / "test.jsonl"))
    assert saved["num_examples"] == len(texts) == 50 and saved["max_length"] == 64  # the training max_length
    pred = load_predictor(model_dir, max_length=64).predict_proba(texts).argmax(-1)
    assert saved["accuracy"] == pytest.approx(float(np.mean(pred == np.asarray(labels))))
    assert saved["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert saved["confusion_matrix"] == confusion_matrix(labels, pred, labels=range(5)).tolist()
    assert saved["labels"] == ["1", "2", "3", "4", "5"]
    assert {k: v["support"] for k, v in saved["per_class"].items()} == {str(c + 1): labels.count(c) for c in range(5)}
    assert all(0.0 <= v[m] <= 1.0 for v in saved["per_class"].values() for m in ("precision", "recall", "f1"))
    assert "macro avg" in saved["report"]
    # the same model and split as train.py's final test evaluation
    assert saved["macro_f1"] == pytest.approx(train_results["test_macro_f1"], abs=1e-6)
    assert saved["accuracy"] == pytest.approx(train_results["test_accuracy"], abs=1e-6)


def test_evaluate_writes_calibration_and_the_misclassified_examples(trained, tmp_path):
    root, _ = trained
    model_dir, out = str(root / "run" / "model"), tmp_path / "bad"
    results = evaluate.main(["--model_dir", model_dir, "--split", "test", "--output_dir", str(out),
                             "--misclassified_explained", "3", "--explain_method", "gradient"])
    assert (out / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts, labels = read_split(str(root / "run" / "data" / "test.jsonl"))
    p = load_predictor(model_dir, max_length=64).predict_proba(texts)
    wrong = np.flatnonzero(p.argmax(-1) != np.asarray(labels))
    rows = [json.loads(line) for line in (out / "misclassified.jsonl").read_text().splitlines()]
    assert results["misclassified"]["count"] == len(rows) == len(wrong) > 3
    assert sorted(r["line"] - 1 for r in rows) == wrong.tolist()
    losses = [r["loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)  # worst first
    first = rows[0]
    assert first["loss"] == pytest.approx(-np.log(p[first["line"] - 1][labels[first["line"] - 1]]), abs=1e-4)
    assert first["text"] == texts[first["line"] - 1] and first["true_label"] == str(labels[first["line"] - 1] + 1)
    assert first["label"] != first["true_label"] and first["rating"] == int(first["label"])
    assert all(r["top_words"] for r in rows[:3]) and all(r["top_words"] is None for r in rows[3:])
    html = (out / "misclassified.html").read_text()
    assert html.count('class="review"') == len(rows) and "true: " in html
    calibration = results["calibration"]
    assert 0 <= calibration["top_label_ece"] <= 1 and set(calibration["per_class"]) == {"1", "2", "3", "4", "5"}
    assert sum(calibration["per_class"]["5"]["count"]) == len(texts)


def test_evaluate_a_data_file_and_a_data_dir(trained, tmp_path):
    root, _ = trained
    model_dir = str(root / "run" / "model")
    lines = [json.dumps({"text": "great product , works perfectly", "label": 4}),
             json.dumps({"text": "broke after two days , waste of money", "label": 0}),
             json.dumps({"text": "it is ok", "label": 2})]
    data_file = tmp_path / "mine.jsonl"
    data_file.write_text("\n".join(lines) + "\n")
    results = evaluate.main(["--model_dir", model_dir, "--data_file", str(data_file), "--output_dir", str(tmp_path / "a")])
    assert results["num_examples"] == 3 and results["split"] is None
    assert sum(map(sum, results["confusion_matrix"])) == 3
    assert (tmp_path / "a" / "eval_results.json").is_file() and (tmp_path / "a" / "confusion_matrix.png").is_file()

    dev = evaluate.main(["--model_dir", model_dir, "--data_dir", str(root / "run" / "data"), "--split", "dev",
                         "--output_dir", str(tmp_path / "b")])
    assert dev["num_examples"] == 50 and dev["split"] == "dev"

    with pytest.raises(FileNotFoundError):
        evaluate.main(["--model_dir", model_dir, "--data_file", str(tmp_path / "none.jsonl"),
                       "--output_dir", str(tmp_path / "c")])


def test_evaluate_the_exported_model(trained, tmp_path):
    """fp32 (asked for, whatever this CPU offers): the export predicts as the dynamic model, to 1e-5."""
    root, _ = trained
    model_dir, export_dir = str(root / "run" / "model"), str(tmp_path / "export")
    assert export_script.main(["--model_dir", model_dir, "--output_dir", export_dir, "--precision", "fp32"]) == 0
    data_dir = str(root / "run" / "data")
    # fp32 on every CPU: what `--precision auto` picks depends on the CPU (bf16 where it has avx512_bf16)
    exported = evaluate.main(["--model_dir", export_dir, "--data_dir", data_dir, "--output_dir", str(tmp_path / "e"),
                              "--precision", "fp32"])
    dynamic = evaluate.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(tmp_path / "d")])
    assert exported["backend"] == "inference" and exported["max_length"] == 64 and exported["precision"] == "fp32"
    assert exported["num_examples"] == dynamic["num_examples"] and dynamic["max_length"] == 64
    # the same predictions: identical confusion matrices and metrics
    assert exported["confusion_matrix"] == dynamic["confusion_matrix"]
    assert exported["accuracy"] == dynamic["accuracy"] and exported["macro_f1"] == dynamic["macro_f1"]
    # the misclassified examples too, without top words from an export (it holds no gradients)
    assert exported["misclassified"]["count"] == dynamic["misclassified"]["count"]
    assert exported["misclassified"]["explained"] == 0 < dynamic["misclassified"]["explained"]
    # per example, as evaluate.py computes them (Predictor with the same folders)
    texts, _ = read_split(os.path.join(data_dir, "test.jsonl"))
    p_exp = load_predictor(export_dir, precision="fp32").predict_proba(texts)
    p_dyn = load_predictor(model_dir, precision="fp32").predict_proba(texts)
    np.testing.assert_array_equal(p_exp.argmax(-1), p_dyn.argmax(-1))
    np.testing.assert_allclose(p_exp, p_dyn, rtol=0, atol=1e-5)


def _manifest(export_dir):
    with open(os.path.join(export_dir, "manifest.json")) as f:
        return json.load(f)


def test_evaluate_the_exported_model_in_bf16(trained, tmp_path, bf16_cpu):
    """bf16 as it runs where the CPU has it, on any machine (faked CPU report, stand-in bf16 runner): the export's
    quality gate passes on the run's dev split, and `--precision auto` then evaluates in bf16 and says so."""
    root, _ = trained
    model_dir, export_dir, data_dir = str(root / "run" / "model"), str(tmp_path / "export"), str(root / "run" / "data")
    bf16_cpu.perturb = staticmethod(lambda logits: logits * 1.002)  # bf16-sized rounding that keeps every rating
    assert export_script.main(["--model_dir", model_dir, "--output_dir", export_dir]) == 0  # --precision auto
    gate = _manifest(export_dir)["quality_gate"]["bf16"]
    assert gate["status"] == "passed" and gate["checked_at"] == "export" and gate["num_examples"] == 50
    bf16_cpu.built_precisions = []
    reduced = evaluate.main(["--model_dir", export_dir, "--data_dir", data_dir, "--output_dir", str(tmp_path / "b")])
    assert reduced["precision"] == "bf16" and "quality gate passed" in reduced["precision_note"]
    assert bf16_cpu.built_precisions == ["bf16"]  # the gate's record was read, not run again
    fp32 = evaluate.main(["--model_dir", export_dir, "--data_dir", data_dir, "--output_dir", str(tmp_path / "f"),
                          "--precision", "fp32"])
    assert fp32["precision"] == "fp32" and reduced["confusion_matrix"] == fp32["confusion_matrix"]


def test_evaluate_the_exported_model_in_bf16_on_this_cpu(trained, tmp_path, monkeypatch):
    """Real oneDNN bf16 where this CPU computes it: the gate decides what auto runs, and bf16 stays close to fp32.
    (Without the fused operator, which on a model this small outruns both: test_fused.py, test_backends.py.)"""
    from fastformer.inference import fused, precision

    monkeypatch.setattr(fused, "_state", {"error": "left out of this test"})
    supported, why = precision.bf16_support()
    if not supported:
        pytest.skip(f"real bf16 needs avx512_bf16 ({why}); test_evaluate_the_exported_model_in_bf16 covers the path")
    root, _ = trained
    model_dir, export_dir, data_dir = str(root / "run" / "model"), str(tmp_path / "export"), str(root / "run" / "data")
    assert export_script.main(["--model_dir", model_dir, "--output_dir", export_dir]) == 0
    gate = _manifest(export_dir)["quality_gate"]["bf16"]
    assert gate["status"] in ("passed", "failed") and gate["max_abs_prob_diff"] < 0.02
    auto = evaluate.main(["--model_dir", export_dir, "--data_dir", data_dir, "--output_dir", str(tmp_path / "a")])
    assert auto["precision"] == ("bf16" if gate["status"] == "passed" else "fp32")
    texts, _ = read_split(os.path.join(data_dir, "test.jsonl"))
    bf16 = load_predictor(export_dir, precision="bf16", quality_gate=False)
    assert bf16.precision == "bf16"
    assert np.abs(bf16.predict_proba(texts) - load_predictor(export_dir, precision="fp32").predict_proba(texts)).max() < 0.02
