"""The training-curve callback (fastformer.training.curve) and tools/plot_training_curve.py."""

import json
import os
from types import SimpleNamespace

import pytest

from fastformer.cli import UserError
from fastformer.training.curve import CURVE_FILE, TrainingCurveCallback
from tools import plot_training_curve

from log_history import HISTORY, PNG


def test_the_callback_draws_during_training_and_stops_at_its_end(tmp_path):
    callback = TrainingCurveCallback()
    args = SimpleNamespace(output_dir=str(tmp_path), should_save=True)
    state = SimpleNamespace(log_history=HISTORY[:3], global_step=10)
    callback.on_evaluate(args, state, None)
    path = tmp_path / CURVE_FILE
    assert path.read_bytes()[:8] == PNG
    state.log_history = HISTORY
    callback.on_train_end(args, state, None)
    drawn = path.read_bytes()
    state.log_history = HISTORY + [{"eval_loss": 9.0, "eval_accuracy": 0.1, "progress_or_epoch": 2.0, "step": 20}]
    callback.on_evaluate(args, state, None)  # the kept model's or the test evaluation: not on the curve
    assert path.read_bytes() == drawn
    other = TrainingCurveCallback()
    os.remove(path)
    other.on_train_end(SimpleNamespace(output_dir=str(tmp_path), should_save=False), state, None)
    assert not path.exists()  # not the writing process



def test_plot_tool(tmp_path, capsys):
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": HISTORY}))
    assert plot_training_curve.main(["--trainer_state", str(state), "--output", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    state.write_text(json.dumps({"log_history": []}))
    with pytest.raises(UserError, match="no loss and no evaluation"):
        plot_training_curve.main(["--trainer_state", str(state), "--output", str(tmp_path / "d.png")])
