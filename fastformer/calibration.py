"""Probability calibration of a classifier (numpy only): per-class reliability bins and expected calibration errors,
and the misclassified examples ordered worst first."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

__all__ = ["reliability_bins", "calibration_summary", "misclassified"]


def reliability_bins(probabilities: np.ndarray, labels: Sequence[int], cls: int, bins: int = 10) -> Dict[str, list]:
    """One-vs-rest reliability of class `cls`: the predicted p(cls) cut into `bins` equal-width bins; per bin the
    number of examples, their mean p(cls) and the share that truly are `cls` (None for an empty bin)."""
    p = np.asarray(probabilities, dtype=np.float64)[:, cls]
    hit = np.asarray(labels).reshape(-1) == cls
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts, confidence, observed = [], [], []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        counts.append(n)
        confidence.append(float(p[inside].mean()) if n else None)
        observed.append(float(hit[inside].mean()) if n else None)
    return {"edges": np.linspace(0, 1, bins + 1).tolist(), "count": counts, "mean_probability": confidence,
            "observed": observed}


def _ece(bins: Dict[str, list]) -> float:
    total = sum(bins["count"])
    return float(sum(n * abs(c - o) for n, c, o in zip(bins["count"], bins["mean_probability"], bins["observed"])
                     if n) / total) if total else 0.0


def calibration_summary(probabilities: np.ndarray, labels: Sequence[int], names: Sequence[str],
                        bins: int = 10) -> Dict[str, object]:
    """Per class: its reliability bins and expected calibration error (ECE, the count-weighted mean |p - observed|
    over bins); overall: the ECE of the predicted class's probability against accuracy."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    per_class = {}
    for c, name in enumerate(names):
        rel = reliability_bins(probabilities, labels, c, bins)
        per_class[str(name)] = {"ece": _ece(rel), **rel}
    top = probabilities.max(-1)
    correct = probabilities.argmax(-1) == labels
    index = np.minimum((top * bins).astype(int), bins - 1)
    top_bins = {"count": [], "mean_probability": [], "observed": []}
    for b in range(bins):
        inside = index == b
        top_bins["count"].append(int(inside.sum()))
        top_bins["mean_probability"].append(float(top[inside].mean()) if inside.any() else None)
        top_bins["observed"].append(float(correct[inside].mean()) if inside.any() else None)
    return {"bins": bins, "top_label_ece": _ece(top_bins), "per_class": per_class}


def misclassified(probabilities: np.ndarray, labels: Sequence[int]) -> List[int]:
    """Indices of the examples whose predicted class is not their label, worst first: by decreasing loss
    (-log p(true class)), then by input order."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    wrong = np.flatnonzero(probabilities.argmax(-1) != labels)
    loss = -np.log(np.maximum(probabilities[wrong, labels[wrong]], 1e-300))
    return [int(i) for i in wrong[np.lexsort((wrong, -loss))]]
