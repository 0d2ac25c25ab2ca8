"""train.py's settings: bounded flags refused when parsed (one line naming the flag and its range), and a resume that
must keep the data, model and batching settings of the run it continues (refused in one line, nothing touched)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

import fastformer  # noqa: F401  (before paddle)
from fastformer_data.demo_data import generate_demo_reviews
from fastformer.cli import UserError, run_main
from paddlenlp.trainer import TrainerCallback

from fastformer.training.arguments import parse_args
from fastformer.training.trainer import FastformerTrainer
from tiny_model import tiny_model

import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")


def _error_line(capsys):
    """The message of the one line run_main wrote to stderr ("<prog>: error: <message>")."""
    match = re.fullmatch(r"[^\n]*?: error: ([^\n]*)", capsys.readouterr().err.strip())
    assert match, "not one error line"
    return match.group(1)


# ------------------------------------------------------------------------------------------- bounded flags
@pytest.mark.parametrize("flag, value, allowed", [
    ("learning_rate", "-1", r"> 0, got -1\.0"),
    ("learning_rate", "nan", r"> 0, got nan"),
    ("num_train_epochs", "0", r"> 0 \(or --max_steps given\), got 0\.0"),
    ("hidden_dropout_prob", "1.5", r"in \[0, 1\), got 1\.5"),
    ("word_dropout", "1", r"in \[0, 1\), got 1\.0"),
    ("per_device_eval_batch_size", "0", r"a positive integer, got 0"),
    ("max_length", "0", r"a positive integer, got 0"),
    ("vocab_min_freq", "0", r"a positive integer, got 0"),
    ("weight_decay", "-0.1", r">= 0, got -0\.1"),
    ("adam_beta2", "1", r"in \[0, 1\), got 1\.0"),
    ("warmup_steps", "-5", r">= 0, got -5"),
    ("max_grad_norm", "-1", r">= 0 \(0: no clipping\), got -1\.0"),
    ("num_samples", "0", r"a positive integer, got 0"),
])
def test_bounded_flags_are_refused_when_parsed(flag, value, allowed, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(train.main, [TINY, "--output_dir", str(out), f"--{flag}", value]) == 2
    assert re.fullmatch(rf"--{flag} must be {allowed}", _error_line(capsys))
    assert not out.exists()  # refused before anything was written or prepared


def test_split_sizes_must_add_up_and_epochs_may_be_zero_with_max_steps(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert run_main(train.main, [TINY, "--output_dir", out, "--split_sizes", "300", "50", "60"]) == 2
    assert _error_line(capsys) == "split_sizes (300, 50, 60) must add up to num_samples (400)"
    *_, training_args = parse_args([TINY, "--output_dir", out, "--num_train_epochs", "0", "--max_steps", "3"])
    assert training_args.max_steps == 3  # max_steps decides the length: no epoch count needed


# ------------------------------------------------------------------------------------------------- resuming
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-epoch tiny run (hidden 16), copied by each test that changes it."""
    raw = str(tmp_path_factory.mktemp("raw") / "reviews.json.gz")
    generate_demo_reviews(raw, 400, seed=3)
    out = tmp_path_factory.mktemp("run") / "run"
    results = train.main([TINY, "--output_dir", str(out), "--input_file", raw, "--num_train_epochs", "1"])
    return out, raw, results


def _copy(finished_run, tmp_path):
    out, raw, results = finished_run
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "run", raw, results


def _tree(folder):
    """Every file under `folder` with its SHA-256 and modification time."""
    return {os.path.join(d, f): (hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest(),
                                 os.path.getmtime(os.path.join(d, f)))
            for d, _, files in os.walk(folder) for f in files}


def test_resume_with_other_model_or_data_settings_is_refused_and_touches_nothing(finished_run, tmp_path, capsys):
    out, raw, first = _copy(finished_run, tmp_path)
    before = _tree(out)
    argv = [TINY, "--output_dir", str(out), "--input_file", raw, "--num_train_epochs", "2"]
    assert run_main(train.main, argv + ["--hidden_size", "32", "--data_seed", "7", "--max_length", "48"]) == 2
    error = _error_line(capsys)
    assert re.fullmatch(
        rf"cannot resume from {re.escape(str(out))}/checkpoint-\d+: settings differ from its run's \(.*resolved_args"
        r"\.json\): data_seed 42 -> 7; max_length 64 -> 48; hidden_size 16 -> 32; max_position_embeddings 64 -> 48\. "
        r"Resume with that run's settings, or train anew in another --output_dir; nothing was changed", error), error
    # a batching setting too; max_position_embeddings 64 given explicitly is the run's 0 (= max_length 64): no change
    assert run_main(train.main, argv + ["--per_device_train_batch_size", "16", "--max_position_embeddings", "64"]) == 2
    assert _error_line(capsys).endswith("settings differ from its run's ("
                                        f"{out}/resolved_args.json): per_device_train_batch_size 32 -> 16. Resume with "
                                        "that run's settings, or train anew in another --output_dir; nothing was changed")
    assert _tree(out) == before  # model/, results, resolved_args.json and its history untouched


def test_resume_without_a_record_checks_the_checkpoint_weights(finished_run, tmp_path, capsys):
    out, raw, _ = _copy(finished_run, tmp_path)
    os.remove(out / "resolved_args.json")  # e.g. a folder of an older version
    before = _tree(out)
    assert run_main(train.main, [TINY, "--output_dir", str(out), "--input_file", raw, "--hidden_size", "32"]) == 2
    error = _error_line(capsys)
    assert re.fullmatch(r"cannot resume from .*checkpoint-\d+: its weights do not fit the model of these settings \(\d+ "
                        r"tensor shape\(s\) differ, e\.g\. fastformer\.embeddings\.word_embeddings\.weight \[\d+, 16\] "
                        r"there, \[\d+, 32\] here\); nothing was changed", error), error
    assert _tree(out) == before


def test_trainer_never_skips_a_checkpoint_tensor_of_another_shape(tmp_path):
    from fastformer.training.resume import weights_problem

    model, tokenizer = tiny_model(["great sound", "bad cable"], seed=1)
    other, _ = tiny_model(["great sound", "bad cable"], seed=1, max_positions=32)
    trainer = FastformerTrainer(model=model, args=parse_args([TINY, "--output_dir", str(tmp_path)])[2],
                                tokenizer=tokenizer)
    state = {k: v.numpy() for k, v in other.state_dict().items()}
    with pytest.raises(UserError, match=r"the checkpoint's weights do not fit the model built: 1 tensor shape\(s\) "
                                        r"differ, e\.g\. fastformer\.embeddings\.position_embeddings\.weight \[32, 16\] "
                                        r"there, \[64, 16\] here"):
        trainer._set_state_dict_in_model(state)
    del state["classifier.bias"]
    assert weights_problem(state, other) == "1 tensor(s) missing, e.g. classifier.bias"
    trainer._set_state_dict_in_model({k: v.numpy() for k, v in model.state_dict().items()})  # the same model loads


class _RateOfEachStep(TrainerCallback):
    """The learning rate each optimizer step uses, by step number (1-based)."""

    def __init__(self):
        self.rates = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates[state.global_step + 1] = optimizer.get_lr()


def test_resume_may_extend_the_run_and_change_the_learning_rate(finished_run, tmp_path):
    out, raw, first = _copy(finished_run, tmp_path)
    steps = first["global_step"]
    rates = _RateOfEachStep()
    resumed = train.main([TINY, "--output_dir", str(out), "--input_file", raw, "--num_train_epochs", "2",
                          "--learning_rate", "0.0005"], callbacks=[rates])
    assert resumed["resumed_from"].endswith(f"checkpoint-{steps}") and resumed["global_step"] == 2 * steps
    assert rates.rates == {step: 0.0005 for step in range(steps + 1, 2 * steps + 1)}  # from the first step resumed
    history = [json.loads(line) for line in (out / "resolved_args_history.jsonl").read_text().splitlines()]
    assert [h["args"]["training"]["learning_rate"] for h in history] == [0.001, 0.0005]


def test_resume_conflicts_compare_the_model_as_built():
    from fastformer.training.resume import resume_conflicts

    old = {"data": {"max_length": 64, "input_file": "a"}, "model": {"hidden_size": 16, "max_position_embeddings": 0},
           "training": {"seed": 42, "learning_rate": 1e-3, "num_train_epochs": 1}}
    same = json.loads(json.dumps(old))
    same["model"]["max_position_embeddings"] = 64  # what 0 meant
    same["training"].update(learning_rate=5e-4, num_train_epochs=3)  # may change on resume
    assert resume_conflicts(old, same) == []
    other = json.loads(json.dumps(same))
    other["training"]["seed"] = 1
    other["data"]["input_file"] = "b"
    assert resume_conflicts(old, other) == ['input_file "a" -> "b"', "seed 42 -> 1"]
