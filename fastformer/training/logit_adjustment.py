"""--logit_adjustment dev after training: fit tau on the dev predictions and fold it into the classifier bias."""

from __future__ import annotations

import logging

import numpy as np

from ..metrics import classification_metrics, fit_logit_adjustment
from .distributed import from_first_process

__all__ = ["adjust_logits_on_dev"]

logger = logging.getLogger(__name__)


def adjust_logits_on_dev(trainer, dev_dataset, prior) -> dict:
    """Fit the logit adjustment's tau on the dev predictions of the kept model and fold `-tau * prior` into its
    classifier bias (so the saved model, its export and every prediction include it); returns what was done."""
    logits = trainer.predict(dev_dataset).predictions  # every process predicts the whole dev split (no collective)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits

    def fit():
        before = classification_metrics(dev_dataset.labels, np.asarray(logits).argmax(axis=-1))
        return (before, *fit_logit_adjustment(logits, dev_dataset.labels, prior))

    # With several processes the first one fits tau and every process applies it: the same model everywhere.
    before, tau, after = from_first_process(trainer.args, fit)
    model = trainer.model
    bias = model.classifier.bias
    bias.set_value(bias.numpy() - (tau * prior).astype(bias.numpy().dtype))
    adjustment = {"tau": tau, "log_prior": [round(float(p), 6) for p in prior], "fitted_on": "dev",
                  "dev_before": before, "dev_after": after}
    model.config.logit_adjustment = adjustment  # recorded in config.json (already folded into the bias)
    logger.info("logit adjustment fitted on dev: tau %.2f, dev macro-F1 %.4f -> %.4f, accuracy %.4f -> %.4f", tau,
                before["macro_f1"], after["macro_f1"], before["accuracy"], after["accuracy"])
    return adjustment
