"""Classification metrics, the logit adjustment fitted on dev, and class weights (numpy and scikit-learn only)."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = ["classification_metrics", "compute_metrics", "ADJUSTMENT_TAUS", "log_prior", "fit_logit_adjustment",
           "AdjustedMetrics", "class_weights"]


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> Dict[str, float]:
    """Accuracy and macro-F1 (`sklearn.metrics.f1_score(average="macro")`, over the classes seen in either)."""
    from sklearn.metrics import accuracy_score, f1_score  # here: ~1 s of import that prediction does not need
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def _logits_and_labels(eval_pred) -> Tuple[np.ndarray, np.ndarray]:
    logits = eval_pred.predictions
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    labels = eval_pred.label_ids
    if isinstance(labels, (tuple, list)):
        labels = labels[0]
    return np.asarray(logits), np.asarray(labels)


def compute_metrics(eval_pred) -> Dict[str, float]:
    """`compute_metrics` of the Trainer: logits -> argmax -> `classification_metrics`."""
    logits, labels = _logits_and_labels(eval_pred)
    return classification_metrics(labels, logits.argmax(axis=-1))


ADJUSTMENT_TAUS = np.round(np.arange(-1.0, 2.0 + 1e-9, 0.05), 2)  # the values of tau tried on dev


def log_prior(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """log of the class frequencies of `labels` (a class never seen counts as half an example)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    counts[counts == 0] = 0.5
    return np.log(counts / counts.sum())


def fit_logit_adjustment(logits: np.ndarray, labels: Sequence[int], prior: np.ndarray) -> Tuple[float, Dict[str, float]]:
    """The tau whose adjusted logits `logits - tau * prior` (prior: `log_prior` of the training labels) give the best
    macro-F1 on (logits, labels), and those metrics. Ties go to the smallest |tau| (0: no change).

    Logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment") with the one strength fitted on
    held-out data: tau 1 turns a model of the natural distribution into one for balanced classes, tau < 0 moves a
    model trained on balanced batches back towards the natural distribution (higher accuracy)."""
    logits = np.asarray(logits, dtype=np.float64)
    best = None
    for tau in sorted(ADJUSTMENT_TAUS, key=abs):
        metrics = classification_metrics(labels, (logits - tau * prior).argmax(axis=-1))
        if best is None or metrics["macro_f1"] > best[1]["macro_f1"]:
            best = (float(tau), metrics)
    return best


class AdjustedMetrics:
    """`compute_metrics` that also reports, for `logit_adjustment dev`, the metrics after the adjustment fitted on
    these very predictions (`adjusted_macro_f1`, `adjusted_accuracy`, `adjustment_tau`): use it for dev only, where
    it lets the best epoch be chosen by what the adjusted model will score; never for test."""

    def __init__(self, prior: np.ndarray):
        self.prior = prior

    def __call__(self, eval_pred) -> Dict[str, float]:
        logits, labels = _logits_and_labels(eval_pred)
        metrics = classification_metrics(labels, logits.argmax(axis=-1))
        tau, adjusted = fit_logit_adjustment(logits, labels, self.prior)
        metrics.update({f"adjusted_{k}": v for k, v in adjusted.items()}, adjustment_tau=tau)
        return metrics


def class_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """n / (C * n_c) for the classes present (sklearn's "balanced"); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)
