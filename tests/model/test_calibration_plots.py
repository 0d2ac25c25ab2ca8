"""fastformer.calibration (reliability bins, ECE, misclassified order) and fastformer.plots (training curve,
reliability diagram)."""

import numpy as np
import pytest

from fastformer import calibration, plots

from log_history import HISTORY, PNG


def test_reliability_bins_by_hand():
    probabilities = np.array([[0.05, 0.95], [0.15, 0.85], [0.9, 0.1], [0.95, 0.05]])
    rel = calibration.reliability_bins(probabilities, [1, 0, 0, 1], cls=1, bins=2)
    assert rel["count"] == [2, 2] and rel["edges"] == [0.0, 0.5, 1.0]
    assert rel["mean_probability"] == pytest.approx([0.075, 0.9]) and rel["observed"] == [0.5, 0.5]
    empty = calibration.reliability_bins(probabilities, [1, 0, 0, 1], cls=1, bins=4)
    assert empty["count"] == [2, 0, 0, 2] and empty["observed"][1] is None



def test_expected_calibration_error_tells_calibrated_from_overconfident():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20000, 3))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in p])  # drawn from p: calibrated by construction
    calibrated = calibration.calibration_summary(p, labels, ["a", "b", "c"])
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(-1, keepdims=True)  # same ranking, overconfident
    overconfident = calibration.calibration_summary(sharp, labels, ["a", "b", "c"])
    assert calibrated["top_label_ece"] < 0.02 and max(c["ece"] for c in calibrated["per_class"].values()) < 0.02
    assert overconfident["top_label_ece"] > 0.1 and set(overconfident["per_class"]) == {"a", "b", "c"}



def test_misclassified_worst_first():
    p = np.array([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.3, 0.7]])
    # wrong: 1 (p(true)=0.1), 2 (0.3), 3 (0.2), 4 (0.3); right: 0
    assert calibration.misclassified(p, [0, 0, 0, 1, 0]) == [1, 3, 2, 4]


def test_training_curve_points_and_png(tmp_path):
    points = plots.curve_points(HISTORY)
    assert points["step"] == [5, 10, 15] and points["loss"] == [1.5, 1.2, 0.9]
    assert points["epoch"] == [1.0, 2.0] and points["macro_f1"] == [0.3, 0.4]
    assert points["adjusted_macro_f1"] == [0.35, None] and points["eval_loss"] == [1.3, 1.1]
    path = tmp_path / "curve.png"
    assert plots.plot_training_curve(HISTORY, str(path), "run")
    assert path.read_bytes()[:8] == PNG
    assert not plots.plot_training_curve([{"train_loss": 1.0, "step": 3}], str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()



def test_reliability_png(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5), size=200)
    summary = calibration.calibration_summary(p, rng.integers(0, 5, 200), list("12345"))
    plots.plot_reliability(summary, str(tmp_path / "r.png"), "test")
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG
