"""Checkpoint averaging: the mean of the weights of the checkpoints a run saved (--average_checkpoints)."""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Sequence

import numpy as np
import paddle

from ..cli import UserError
from ..model_folder import PICKLE_WEIGHTS_FILE
from .distributed import from_first_process
from .resume import checkpoint_problem, existing_checkpoints

__all__ = ["average_weights", "average_saved_checkpoints"]

logger = logging.getLogger(__name__)


def average_weights(paths: Sequence[str]) -> Dict[str, np.ndarray]:
    """Element-wise mean of the model weights (`model_state.pdparams`) of the checkpoint folders `paths`, summed in
    float64 and returned in each weight's own dtype. Checkpoints are a run's own files (see `checkpoint_problem`)."""
    if not paths:
        raise ValueError("no checkpoint to average")
    total, dtypes = {}, {}
    for path in paths:
        state = paddle.load(os.path.join(path, PICKLE_WEIGHTS_FILE), return_numpy=True)
        if total and set(state) != set(total):
            raise ValueError(f"{path}: its weights are not those of {paths[0]} (different parameter names)")
        for name, value in state.items():
            dtypes.setdefault(name, value.dtype)
            total[name] = total.get(name, 0.0) + np.asarray(value, dtype=np.float64)
    return {name: (value / len(paths)).astype(dtypes[name]) for name, value in total.items()}


def average_saved_checkpoints(trainer) -> List[str]:
    """--average_checkpoints: give the model the mean of the weights of the checkpoints this run saved (every good
    checkpoint-<step> of output_dir up to the last step; a damaged one is skipped with a warning naming it) and
    return their names. The first process averages, every process gets the same weights."""
    args = trainer.args

    def pick_and_average():
        names = []
        for name in existing_checkpoints(args.output_dir, up_to_step=trainer.state.global_step):
            problem = checkpoint_problem(os.path.join(args.output_dir, name))
            if problem:
                logger.warning("--average_checkpoints: skipping %s: %s", os.path.join(args.output_dir, name), problem)
            else:
                names.append(name)
        if not names:
            raise UserError(f"--average_checkpoints: no usable checkpoint in {args.output_dir!r} to average")
        return names, average_weights([os.path.join(args.output_dir, name) for name in names])

    names, weights = from_first_process(args, pick_and_average)
    trainer.model.set_state_dict({name: paddle.to_tensor(value) for name, value in weights.items()})
    logger.info("weights of the model kept: the mean of %d checkpoints (%s)", len(names), ", ".join(names))
    return names
