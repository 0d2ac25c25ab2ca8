"""`TrainingCurveCallback`: the Trainer's callback that draws training_curve.png into the output folder (train loss
per logging step, dev loss and metrics per epoch, `fastformer.plots.plot_training_curve`)."""

from __future__ import annotations

import logging
import os

from paddlenlp.trainer import TrainerCallback

from ..plots import plot_training_curve

__all__ = ["TrainingCurveCallback", "CURVE_FILE"]

CURVE_FILE = "training_curve.png"
logger = logging.getLogger(__name__)


class TrainingCurveCallback(TrainerCallback):
    """Redraws the curve after each evaluation during training (a long run shows its progress) and at the end of
    training; evaluations after that (the kept model, the test split) leave it as it is. The writing process only."""

    def __init__(self, file_name: str = CURVE_FILE):
        self.file_name = file_name
        self.done = False

    def _draw(self, args, state) -> None:
        if not args.should_save:
            return
        path = os.path.join(args.output_dir, self.file_name)
        title = f"{os.path.basename(os.path.abspath(args.output_dir))}: step {state.global_step}"
        try:
            plot_training_curve(state.log_history, path, title)
        except (OSError, ValueError) as exc:  # a figure is not worth a failed run
            logger.warning("could not write %s: %s", path, exc)

    def on_evaluate(self, args, state, control, **kwargs):
        if not self.done:
            self._draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        if not self.done:
            self._draw(args, state)
            self.done = True
