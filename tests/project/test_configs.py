"""Every shipped config parses with the real parser and holds sane values; JSON-then-command-line overrides."""

from __future__ import annotations

import glob
import json
import os

import pytest

import fastformer  # noqa: F401  (before paddle)
from fastformer.cli import UserError
from fastformer.configuration import FastformerConfig
from fastformer.training.arguments import SAMPLING_MODES, config_to_argv, parse_args, resolved_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.json")))


def _parse(path, tmp_path, *extra):
    return parse_args([path, "--output_dir", str(tmp_path / "out"), *extra])


def test_the_three_configs_are_shipped():
    assert {os.path.basename(p) for p in CONFIGS} >= {"amazon_electronics.json", "demo.json", "tiny.json"}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_parses_and_is_sane(path, tmp_path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    data, model, training = _parse(path, tmp_path)
    # every key of the file reached an argument (comments start with "_")
    parsed = {**vars(data), **vars(model), **training.to_dict()}
    for key, value in raw.items():
        if key.startswith("_") or key == "output_dir":
            continue
        got = parsed[key]
        got = getattr(got, "value", got)
        if isinstance(value, str):  # '{output_dir}' in a path stands for --output_dir
            value = value.replace("{output_dir}", training.output_dir)
        assert got == value or (isinstance(value, list) and list(got) == value), key
    # sane values
    if data.split_sizes:
        assert len(data.split_sizes) == 3 and sum(data.split_sizes) == data.num_samples
    assert 1 <= data.max_length <= (model.max_position_embeddings or data.max_length)
    assert training.sampling in SAMPLING_MODES
    assert training.save_total_limit is None, "save_total_limit makes the Trainer delete checkpoints"
    assert training.evaluation_strategy.value == training.save_strategy.value == "epoch"
    assert training.load_best_model_at_end and training.metric_for_best_model in ("macro_f1", "adjusted_macro_f1")
    assert training.metric_for_best_model == "macro_f1" or training.logit_adjustment == "dev"
    assert "visualdl" in training.report_to
    assert 0 < training.learning_rate <= 1e-2 and training.num_train_epochs >= 1
    assert 0.0 <= model.hidden_dropout_prob < 1.0
    config = FastformerConfig(**model.config_kwargs(data.max_length))  # validates heads / pooler
    assert config.max_position_embeddings >= data.max_length


def test_paper_config_is_the_paper_setting(tmp_path):
    data, model, training = _parse(os.path.join(ROOT, "configs", "amazon_electronics.json"), tmp_path)
    assert (model.num_hidden_layers, model.hidden_size, model.num_attention_heads, model.intermediate_size) == (2, 256, 16, 256)
    assert model.hidden_dropout_prob == 0.2 and model.pooler_type == "attention"
    assert not model.use_value_projection and not model.share_attention_layers
    assert data.max_length == 512 and data.num_samples == 50000 and list(data.split_sizes) == [40000, 5000, 5000]
    assert data.input_file == "data/reviews_Electronics_5.json.gz" and not data.demo_data and not data.balanced_sample
    assert training.per_device_train_batch_size == 64
    assert training.learning_rate == 1e-3 and training.num_train_epochs == 3
    # AdamW with no weight decay is Adam; no warmup, no clipping. Where the paper is silent (schedule, imbalance),
    # the settings measured best on real reviews: linear decay, natural batches, logit adjustment fitted on dev
    assert training.weight_decay == 0.0 and training.lr_scheduler_type.value == "linear"
    assert training.sampling == "none" and training.logit_adjustment == "dev"
    assert training.metric_for_best_model == "adjusted_macro_f1"
    assert training.warmup_steps == 0 and training.warmup_ratio == 0.0 and training.max_grad_norm == 0.0
    assert training.seed == 42 and data.data_seed == 42


def test_demo_config_generates_its_data(tmp_path):
    data, model, training = _parse(os.path.join(ROOT, "configs", "demo.json"), tmp_path)
    assert data.demo_data and data.demo_num_reviews >= data.num_samples
    assert training.group_by_length


def test_command_line_overrides_the_config(tmp_path):
    path = os.path.join(ROOT, "configs", "amazon_electronics.json")
    data, model, training = _parse(
        path, tmp_path,
        "--learning_rate", "5e-4", "--num_train_epochs", "1", "--hidden_size", "128", "--split_sizes", "8", "1", "1",
        "--num_samples", "10", "--balanced_sample", "--group_by_length", "true", "--sampling", "weighted_loss",
        "--text_fields", "title", "text",
    )
    assert training.learning_rate == 5e-4 and training.num_train_epochs == 1 and model.hidden_size == 128
    assert list(data.split_sizes) == [8, 1, 1] and data.num_samples == 10 and data.balanced_sample
    assert training.group_by_length and training.sampling == "weighted_loss"
    assert list(data.text_fields) == ["title", "text"]
    assert training.output_dir == str(tmp_path / "out")
    # untouched values still come from the config
    assert model.num_attention_heads == 16 and training.per_device_train_batch_size == 64
    assert training.lr_scheduler_type.value == "linear"


def test_flags_without_a_config_use_the_defaults(tmp_path):
    data, model, training = parse_args(["--output_dir", str(tmp_path), "--max_length", "64"])
    assert data.max_length == 64 and model.hidden_size == 256 and training.sampling == "balanced"
    assert model.config_kwargs(data.max_length)["max_position_embeddings"] == 64


def test_bad_configs_and_flags_are_rejected(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"output_dir": str(tmp_path), "hidden_sise": 12}))
    with pytest.raises(UserError, match=r"bad.json: unknown key 'hidden_sise' \(did you mean 'hidden_size'\?\)"):
        parse_args([str(bad)])
    with pytest.raises(UserError, match="unknown argument 'no_such_flag'"):
        parse_args(["--output_dir", str(tmp_path), "--no_such_flag", "1"])
    with pytest.raises(ValueError, match="sampling"):
        parse_args(["--output_dir", str(tmp_path), "--sampling", "oversample"])
    with pytest.raises(ValueError, match="max_length"):
        parse_args(["--output_dir", str(tmp_path), "--max_length", "600", "--max_position_embeddings", "512"])


def test_config_to_argv():
    argv = config_to_argv({"_note": "x", "a": True, "b": False, "c": [1, 2], "d": 0.5, "e": "s", "f": None})
    assert argv == ["--a", "true", "--b", "false", "--c", "1", "2", "--d", "0.5", "--e", "s"]
    with pytest.raises(ValueError):
        config_to_argv({"a": []})
    with pytest.raises(ValueError):
        config_to_argv({"a": {"nested": 1}})


def test_resolved_args_are_json(tmp_path):
    args = _parse(os.path.join(ROOT, "configs", "demo.json"), tmp_path, "--seed", "7")
    resolved = json.loads(json.dumps(resolved_args(*args)))
    assert set(resolved) == {"data", "model", "training"}
    assert resolved["training"]["seed"] == 7 and resolved["training"]["sampling"] == "balanced"
    assert resolved["data"]["max_length"] == 128 and resolved["model"]["hidden_size"] == 256


def test_tiny_config_writes_its_raw_reviews_under_the_output_dir(tmp_path):
    data, _, training = _parse(os.path.join(ROOT, "configs", "tiny.json"), tmp_path)
    assert data.input_file == os.path.join(training.output_dir, "raw", "reviews.json.gz")
    data, _, _ = _parse(os.path.join(ROOT, "configs", "tiny.json"), tmp_path, "--data_dir", "{output_dir}/prepared")
    assert data.data_dir == str(tmp_path / "out" / "prepared")
