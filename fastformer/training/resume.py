"""Resuming a run: which checkpoint (checked for damage), and whether this run's settings and model may continue it."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Dict, List, Optional

import paddle
from paddlenlp.trainer.trainer import OPTIMIZER_NAME, TRAINER_STATE_NAME
from paddlenlp.trainer.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..cli import UserError
from ..fileio import ChecksumError, check_checksums, read_checksums, remove_leftovers
from ..model_folder import PICKLE_WEIGHTS_FILE
from ..weight_files import tensors_problem
from .arguments import RESOLVED_ARGS

__all__ = [
    "RESUME_FIXED_TRAINING",
    "resume_conflicts",
    "weights_problem",
    "existing_checkpoints",
    "checkpoint_problem",
    "find_checkpoint",
    "check_resume",
    "check_checkpoint_weights",
]

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-\d+")
_STAGING_RE = re.compile(rf"^\.{PREFIX_CHECKPOINT_DIR}-\d+\..*\.tmp$")  # FastformerTrainer._save_checkpoint's


# Training settings a resumed run keeps from the run that wrote its checkpoint (with every data and model setting):
# they fix which batches the steps already done stand for, the optimizer state's meaning and which checkpoint is best.
# The rest may change on resume (recorded per run in resolved_args_history.jsonl): the number of epochs or steps, the
# optimizer's hyper-parameters (learning rate and schedule, warmup, weight decay, Adam betas and epsilon, gradient
# clipping, word dropout), evaluation, logging, saving and what is done after training.
RESUME_FIXED_TRAINING = ("seed", "per_device_train_batch_size", "gradient_accumulation_steps", "dataloader_drop_last",
                         "sampling", "group_by_length", "optim", "metric_for_best_model", "greater_is_better", "fp16",
                         "bf16")


def _effective_model(args: dict) -> dict:
    """The "model" section of resolved args with max_position_embeddings 0 read as the data's max_length."""
    model = dict(args.get("model", {}))
    if not model.get("max_position_embeddings"):
        model["max_position_embeddings"] = args.get("data", {}).get("max_length")
    return model


def resume_conflicts(old: dict, new: dict) -> List[str]:
    """"name old -> new" for each setting that a resumed run must keep and that differs between the resolved args
    `old` (of the run that wrote the checkpoint) and `new`: every data and model setting and `RESUME_FIXED_TRAINING`.
    Settings absent from either (an older record) are not compared."""
    pairs = [(old.get("data", {}), new.get("data", {}), None), (_effective_model(old), _effective_model(new), None),
             (old.get("training", {}), new.get("training", {}), RESUME_FIXED_TRAINING)]
    conflicts = []
    for before, after, names in pairs:
        for name in (names or before):
            if name in before and name in after and before[name] != after[name]:
                conflicts.append(f"{name} {json.dumps(before[name])} -> {json.dumps(after[name])}")
    return conflicts


def weights_problem(state_dict: Dict[str, Any], model) -> Optional[str]:
    """Why the weights `state_dict` ({name: array or tensor}) cannot be loaded into `model` as they are (names
    missing or extra, shapes that differ), or None."""
    return tensors_problem({name: value.shape for name, value in state_dict.items()},
                           {name: value.shape for name, value in model.state_dict().items()})


_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def existing_checkpoints(output_dir: str, up_to_step: Optional[int] = None) -> List[str]:
    """The checkpoint-<step> folders in `output_dir`, by step (only those of steps <= `up_to_step` when given)."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir)
             if (m := _CHECKPOINT_RE.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    return [name for step, name in sorted(found) if up_to_step is None or step <= up_to_step]


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the checkpoint folder `path` cannot be resumed from, or None when it can.

    It must hold the model weights, the optimizer state and trainer_state.json. A checkpoint written by
    `FastformerTrainer` is then checked against its checksums.json (every file present with its SHA-256); an older
    one without it must have a readable trainer_state.json, and its weights and optimizer state must load.
    Checkpoints are the user's own files (the optimizer state is a pickle): they are trusted, only checked for damage.
    """
    required = (PICKLE_WEIGHTS_FILE, OPTIMIZER_NAME, TRAINER_STATE_NAME)
    missing = [name for name in required if not os.path.isfile(os.path.join(path, name))]
    if missing:
        return f"incomplete, no {', '.join(missing)}"
    try:
        digests = read_checksums(path)
        if digests is not None:
            check_checksums(path, digests)
            return None
    except ChecksumError as exc:
        return str(exc)
    try:
        with open(os.path.join(path, TRAINER_STATE_NAME), encoding="utf-8") as f:
            json.load(f)
        for name in (PICKLE_WEIGHTS_FILE, OPTIMIZER_NAME):
            paddle.load(os.path.join(path, name))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises, the checkpoint is unusable
        return f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return None


def find_checkpoint(training_args) -> Optional[str]:
    """The checkpoint to resume from: the one named by --resume_from_checkpoint (a UserError when it is damaged),
    else the newest good one in output_dir (unless --overwrite_output_dir), else None. A damaged or incomplete
    checkpoint (`checkpoint_problem`) is skipped with a warning naming it; no checkpoint is deleted (the staging
    folders of killed saves are removed first: they never were checkpoints).

    --overwrite_output_dir on a folder that already holds checkpoints is an error (FileExistsError naming them): the
    new run would write over some of them and leave the higher-numbered ones, so a later plain run would resume from
    the old run. Nothing is ever deleted; the user picks a new --output_dir or moves the checkpoints away.
    """
    # The staging folders of saves that were killed are this script's own half-written copies, never a checkpoint
    # (none was renamed to checkpoint-<step>): removing them is not deleting a checkpoint. Those of a writer that
    # still runs, or of another host, are left alone.
    removed = remove_leftovers(training_args.output_dir, _CHECKPOINT_NAME)
    if removed:
        logger.info("removed the staging folders of interrupted checkpoint saves in %s: %s", training_args.output_dir,
                    ", ".join(removed))
    if training_args.overwrite_output_dir:
        stale = existing_checkpoints(training_args.output_dir)
        if stale:
            raise FileExistsError(
                f"--overwrite_output_dir: {training_args.output_dir!r} already holds checkpoints of an earlier run "
                f"({', '.join(stale)}); a fresh run would mix its checkpoints with them. Pick a new --output_dir, or "
                "move those checkpoint folders away (nothing is deleted); without --overwrite_output_dir the run "
                "resumes from the last one."
            )
    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not os.path.isdir(explicit):
            raise FileNotFoundError(f"--resume_from_checkpoint {explicit!r} is not a folder")
        problem = checkpoint_problem(explicit)
        if problem:
            raise UserError(f"--resume_from_checkpoint {explicit!r} cannot be resumed from: {problem}")
        return explicit
    if training_args.overwrite_output_dir or not os.path.isdir(training_args.output_dir):
        return None
    output_dir = training_args.output_dir
    interrupted = sorted(name for name in os.listdir(output_dir) if _STAGING_RE.match(name))
    if interrupted:
        logger.warning("%s holds staging folders of checkpoint saves (%s) whose writer may still run (or ran on "
                       "another host, or an older version): never used as checkpoints", output_dir,
                       ", ".join(interrupted))
    for name in reversed(existing_checkpoints(output_dir)):  # the newest good one
        path = os.path.join(output_dir, name)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping checkpoint %s: %s", path, problem)
    if existing_checkpoints(output_dir):
        logger.warning("no usable checkpoint in %s: training starts from the beginning", output_dir)
    return None


def check_resume(checkpoint: Optional[str], all_args: dict) -> Optional[str]:
    """`checkpoint`, or a `UserError` (nothing written yet) when this run's data, model or batching settings differ from
    those of the run that wrote it, recorded in the resolved_args.json of the checkpoint's folder
    (`training.resume_conflicts`): the old and new value of each. Epochs, steps, the optimizer's hyper-parameters,
    evaluation, logging and saving may change. Without the record, `check_checkpoint_weights` still applies."""
    if not checkpoint:
        return checkpoint
    record = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), RESOLVED_ARGS)
    if not os.path.isfile(record):
        logger.warning("%s: no %s beside it, its settings are not compared with this run's", checkpoint, RESOLVED_ARGS)
        return checkpoint
    try:
        with open(record, encoding="utf-8") as f:
            old = json.load(f)
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot check that {checkpoint} may be resumed with these settings: {record} is unreadable "
                        f"({exc})") from None
    conflicts = resume_conflicts(old, all_args)
    if conflicts:
        raise UserError(
            f"cannot resume from {checkpoint}: settings differ from its run's ({record}): {'; '.join(conflicts)}. "
            "Resume with that run's settings, or train anew in another --output_dir; nothing was changed"
        )
    return checkpoint


def check_checkpoint_weights(checkpoint: str, model) -> None:
    """A `UserError` when the weights of `checkpoint` are not exactly the tensors of `model` (names and shapes)."""
    state = paddle.load(os.path.join(checkpoint, PICKLE_WEIGHTS_FILE), return_numpy=True)  # the run's own file
    problem = weights_problem(state, model)
    if problem:
        raise UserError(f"cannot resume from {checkpoint}: its weights do not fit the model of these settings "
                        f"({problem}); nothing was changed")
