"""Training alignment: train.py (Paddle Trainer) against the PyTorch reference training, on the tiny config.

`reproduction/check_training_alignment.py` and `reproduction/train_torch_reference.py`: same data, tokenizer ids, initial weights
and batches. With dropout off the two compute the same function step after step, so their per-step losses differ
only by float32 rounding. Measured here (tiny config, 40 Adam steps, one thread): mean 8.6e-08, max 2.4e-07 per step,
i.e. one or two float32 ulps of a loss near 1.6 (ulp 1.2e-07). The tolerances below (mean 1e-06, max 2e-06) leave a
margin of about 10x over that rounding. Real misalignments, each put into the PyTorch side alone on the same 40 steps,
gave mean / max differences of: Adam epsilon 1e-6 instead of 1e-8 3.4e-05 / 1.3e-04; beta2 0.99 1.4e-04 / 7.3e-04;
dropout left on 3.0e-03 / 1.6e-02; the official random init instead of the converted Paddle weights 2.8e-03 /
1.3e-02; no per-epoch reshuffle 9.9e-03 / 8.5e-02; batches rotated by one 1.3e-02 / 1.0e-01. Padding to the longest
review instead of a multiple of 8 stays at rounding (8.3e-08 / 2.4e-07). Not collected without PyTorch (tests/reproduction/conftest.py).
"""

import json
import os

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs PyTorch (requirements-dev.txt): the reference these tests compare with")

from fastformer_data.demo_data import generate_demo_reviews
from fastformer import encoding, model_folder
from fastformer.tokenizer import FastformerTokenizer
from fastformer.training.arguments import parse_args
from fastformer.training.dataset import EncodedDataset
from fastformer.training.trainer import FastformerTrainer
from reproduction import check_training_alignment as check
from reproduction import train_torch_reference as reference

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")
MEAN_TOL, MAX_TOL = 1e-6, 2e-6  # see the module doc


@pytest.fixture(scope="module")
def base_argv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("align")
    raw = str(folder / "raw" / "reviews.json.gz")
    os.makedirs(os.path.dirname(raw))
    generate_demo_reviews(raw, 400, seed=3)
    return [TINY, "--input_file", raw, "--data_dir", str(folder / "data")], folder


@pytest.fixture(scope="module")
def dropout_off(base_argv):
    argv, folder = base_argv
    argv = [*argv, "--num_train_epochs", "4"]  # 300 training reviews, batch 32: 10 steps an epoch
    return argv, folder / "work", check.run_pair(argv, str(folder / "work" / "dropout_off_seed1"), seed=1,
                                                 dropout_off=True)


def test_dropout_off_step_losses_agree(dropout_off):
    _, _, pair = dropout_off
    p, t = pair["paddle"], pair["pytorch"]
    assert len(p["step_losses"]) == len(t["step_losses"]) == 40
    a = check.loss_alignment(p["step_losses"], t["step_losses"], 40)
    print(f"\n[training alignment] 40 steps, dropout off: mean |loss diff| {a['mean_abs_diff']:.3g}, "
          f"max {a['max_abs_diff']:.3g}")
    assert a["mean_abs_diff"] <= MEAN_TOL and a["max_abs_diff"] <= MAX_TOL
    # the training moved (not a flat curve that agrees trivially) and both kept / evaluated the same epochs
    assert abs(p["step_losses"][0] - p["step_losses"][-1]) > 1e-2
    assert [e["step"] for e in p["epochs"]] == [e["step"] for e in t["epochs"]] == [10, 20, 30, 40]
    assert p["sizes"] == t["sizes"] == {"train": 300, "dev": 50, "test": 50}
    for e_p, e_t in zip(p["epochs"], t["epochs"]):
        assert e_p["dev_loss"] == pytest.approx(e_t["dev_loss"], abs=1e-5)
        assert e_p["dev_accuracy"] == pytest.approx(e_t["dev_accuracy"], abs=1e-9)  # same predictions
    assert p["best_epoch"] == t["best_epoch"]
    assert p["test_accuracy"] == pytest.approx(t["test_accuracy"], abs=1e-9)


def test_weighted_loss_and_plain_batches_agree(base_argv):
    argv, folder = base_argv
    argv = [*argv, "--num_train_epochs", "1", "--sampling", "weighted_loss", "--group_by_length", "false"]
    pair = check.run_pair(argv, str(folder / "work" / "weighted"), seed=5, dropout_off=True)
    a = check.loss_alignment(pair["paddle"]["step_losses"], pair["pytorch"]["step_losses"], 10)
    assert a["steps"] == 10 and a["mean_abs_diff"] <= MEAN_TOL and a["max_abs_diff"] <= MAX_TOL


def test_dropout_is_on_in_both_frameworks(base_argv, dropout_off):
    # Same seed, weights and first batch as the dropout-off run: with dropout 0.2 each framework's first loss moves
    # away from the dropout-off one (and the two differ: each framework draws its own masks).
    argv, folder = base_argv
    _, _, off = dropout_off
    pair = check.run_pair([*argv, "--num_train_epochs", "1"], str(folder / "work" / "dropout_on"), seed=1)
    first = {fw: pair[fw]["step_losses"][0] for fw in pair}
    assert abs(first["paddle"] - off["paddle"]["step_losses"][0]) > 1e-4
    assert abs(first["pytorch"] - off["pytorch"]["step_losses"][0]) > 1e-4
    assert abs(first["paddle"] - first["pytorch"]) > 1e-4
    for record in pair.values():
        assert 0.0 <= record["test_macro_f1"] <= 1.0 and len(record["epochs"]) == 1


def test_shared_dropout_masks_make_dropout_runs_agree(base_argv, tmp_path, capsys):
    # Dropout 0.2 with the same masks in both frameworks (the Paddle kernel's, seeded per step and call): the step
    # losses agree as with dropout off (measured: mean 7e-08 over 40 steps), so dropout's placement and scaling match
    # the official model's. A placement that differs (the FFN output's dropout left out on the PyTorch side) is
    # outside the tolerance (measured: 7.9e-06, 100x the shared-mask difference; small because this tiny model's
    # loss barely depends on one dropout early in training).
    argv, folder = base_argv
    argv = [*argv, "--num_train_epochs", "4"]
    out = tmp_path / "shared.json"
    rc = check.main([*argv, "--name", "tiny_shared", "--seeds", "1", "--align_steps", "0", "--dropout_masks",
                     "shared", "--work_dir", str(folder / "work"), "--output", str(out)])
    result = json.loads(out.read_text())
    row = result["seeds"][0]
    p, t = row["paddle"], row["pytorch"]
    assert (folder / "work" / "shared_masks_seed1" / "paddle").is_dir()
    assert p["mask_draws"] == t["mask_draws"] and set(p["mask_draws"].values()) == {3}  # embeddings + 2 sub-layers
    assert len(p["mask_draws"]) == 40 and p["dropout_masks"] == t["dropout_masks"] == "shared"
    assert row["loss"]["steps"] == 40 and row["loss"]["mean_abs_diff"] <= MEAN_TOL
    assert row["loss"]["max_abs_diff"] <= MAX_TOL
    assert p["test_accuracy"] == pytest.approx(t["test_accuracy"], abs=1e-9)
    assert rc == 0 and result["targets"]["mean_test_macro_f1_diff"]["passed"]
    assert "dropout on, shared masks, seed 1" in capsys.readouterr().out

    # the check can fail: the same masks with one dropout of the reference removed
    from reproduction.torch_reference import Model

    def without_ffn_dropout(self, *a, **k):
        original_init(self, *a, **k)
        self.fastformer_model.encoders[0].output.dropout = torch.nn.Identity()

    original_init = Model.__init__
    Model.__init__ = without_ffn_dropout
    try:
        data_args, model_args, training_args = parse_args([*argv, "--output_dir", str(tmp_path / "x"), "--seed", "1",
                                                           *check.RUN_FLAGS])
        record = reference.train_reference(data_args, model_args, training_args,
                                           str(folder / "work" / "shared_masks_seed1" / "paddle"),
                                           masks=reference.SharedDropoutMasks(1))
    finally:
        Model.__init__ = original_init
    assert set(record["mask_draws"].values()) == {2}
    a = check.loss_alignment(p["step_losses"], record["step_losses"], 40)
    print(f"\n[training alignment] shared masks, 40 steps: mean |loss diff| {row['loss']['mean_abs_diff']:.3g}; "
          f"one dropout left out: {a['mean_abs_diff']:.3g}")
    assert a["mean_abs_diff"] > 5 * MEAN_TOL and a["mean_abs_diff"] > 30 * row["loss"]["mean_abs_diff"]


def test_ulp_control_trains_paddle_again_from_nudged_weights(base_argv, tmp_path):
    # --ulp_control: the first seed's Paddle run again, every initial weight one float32 ulp up; reads the finished
    # same-mask runs of the test above (trains them if run alone) and trains only the nudged Paddle run.
    argv, folder = base_argv
    argv = [*argv, "--num_train_epochs", "4"]
    out = tmp_path / "control.json"
    check.main([*argv, "--name", "tiny_control", "--seeds", "1", "--align_steps", "0", "--dropout_masks", "shared",
                "--ulp_control", "--work_dir", str(folder / "work"), "--output", str(out)])
    control = json.loads(out.read_text())["ulp_control"]
    nudged_dir = folder / "work" / "shared_masks_seed1_ulp_control"
    assert (nudged_dir / "paddle.json").is_file() and not (nudged_dir / "pytorch.json").exists()
    assert control["seed"] == 1 and control["nudged_paddle"]["mask_draws"]["0"] == 3
    against_itself = control["paddle_vs_nudged_paddle"]
    assert against_itself["steps"] == 40 and 0 < against_itself["mean_abs_diff"] < 1e-5  # moved, by rounding only
    assert control["paddle_vs_pytorch"]["mean_abs_diff"] < 1e-5


def test_float64_same_mask_runs_agree_to_the_log_resolution(base_argv, tmp_path, capsys):
    # --dtype float64 (the rounding control): both frameworks train in float64 with the same masks. Rounding is ~1e9
    # times smaller than in float32, so what is left of the per-step difference is PaddleNLP rounding each logged
    # loss to 8 decimals (measured: mean 2.9e-09, max 5.0e-09 over 40 steps; the same runs in float32: mean 7e-08).
    argv, folder = base_argv
    argv = [*argv, "--num_train_epochs", "4"]
    out = tmp_path / "float64.json"
    rc = check.main([*argv, "--name", "tiny_float64", "--seeds", "1", "--align_steps", "0", "--dropout_masks",
                     "shared", "--dtype", "float64", "--work_dir", str(folder / "work"), "--output", str(out)])
    result = json.loads(out.read_text())
    row = result["seeds"][0]
    p, t = row["paddle"], row["pytorch"]
    run_dir = folder / "work" / "float64_shared_masks_seed1"
    assert rc == 0 and result["settings"]["dtype"] == p["dtype"] == t["dtype"] == "float64"
    from safetensors.numpy import load_file

    initial_dir = str(run_dir / "paddle" / reference.INITIAL_MODEL)
    initial = load_file(os.path.join(initial_dir, model_folder.model_weights_file(initial_dir)))
    assert {str(v.dtype) for v in initial.values()} == {"float64"}
    assert p["mask_draws"] == t["mask_draws"] and set(p["mask_draws"].values()) == {3}
    assert row["loss"]["steps"] == 40 and row["loss"]["max_abs_diff"] <= 1e-8
    assert [e["dev_macro_f1"] for e in p["epochs"]] == [e["dev_macro_f1"] for e in t["epochs"]]
    assert p["test_macro_f1"] == t["test_macro_f1"] and "float64" in capsys.readouterr().out
    # a run folder of one precision is not read back for another
    with pytest.raises(ValueError, match="trained in float64, not float32"):
        check.run_pair(argv, str(run_dir), seed=1, shared_masks=True)
    rc = reference.main([*argv, "--output_dir", str(run_dir / "paddle"), "--seed", "1", *check.RUN_FLAGS,
                         "--paddle_run_dir", str(run_dir / "paddle"), "--output_json", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "initial weights are float64, not float32" in err and not (tmp_path / "x.json").exists()


def test_report_json_and_png_from_finished_runs(dropout_off, tmp_path, capsys):
    argv, work, pair = dropout_off
    out = tmp_path / "results.json"
    rc = check.main([*argv, "--name", "tiny", "--seeds", "--align_steps", "40", "--work_dir", str(work),
                     "--output", str(out)])
    assert rc == 0  # the finished dropout-off run is read back, not trained again; its target is met
    result = json.loads(out.read_text())
    assert result["dropout_off"]["loss"]["steps"] == 40
    assert result["dropout_off"]["paddle"]["step_losses"] == pair["paddle"]["step_losses"]
    assert result["targets"]["dropout_off_mean_abs_loss_diff"]["passed"] is True
    assert result["cpu_settings"]["OMP_NUM_THREADS"] and result["command"].startswith("python -m reproduction.")
    png = tmp_path / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "dropout off, seed 1, first 40 steps" in capsys.readouterr().out


def test_to_torch_state_dict_inverts_the_converter():
    from fastformer.convert import convert_state_dict, to_torch_state_dict
    from reproduction.torch_reference import Model, TorchFastformerConfig

    torch.manual_seed(0)
    official = {k: v.numpy() for k, v in Model(TorchFastformerConfig(
        vocab_size=50, hidden_size=16, num_attention_heads=4, intermediate_size=24, max_position_embeddings=8,
        num_labels=5)).state_dict().items()}
    back = to_torch_state_dict(convert_state_dict(official), official.keys())
    assert back.keys() == official.keys() and all(np.array_equal(back[k], official[k]) for k in official)
    assert back["dense_linear.weight"].shape == (5, 16)  # [out, in] again (Paddle keeps [in, out])
    extra = dict(convert_state_dict(official), **{"fastformer.layers.0.attention.value.weight": np.zeros((16, 16))})
    with pytest.raises(ValueError, match="no official parameter for: fastformer.layers.0.attention.value.weight"):
        to_torch_state_dict(extra, official.keys())


def test_reference_batches_are_the_trainers(tmp_path):
    labels = np.repeat(np.arange(5), [7, 5, 8, 20, 60])
    rng = np.random.default_rng(0)
    dataset = EncodedDataset([list(range(1, n + 1)) for n in rng.integers(1, 40, size=len(labels))], labels)
    tokenizer = FastformerTokenizer.build_from_corpus(["good bad ok fine"], min_freq=1)
    model = model_folder.build_model(tokenizer, hidden_size=16, num_attention_heads=4, intermediate_size=16,
                             num_hidden_layers=1, max_position_embeddings=64)
    for extra in ([], ["--sampling", "none", "--dataloader_drop_last", "true"], ["--group_by_length", "false"]):
        _, _, args = parse_args([TINY, "--output_dir", str(tmp_path), "--report_to", "none", "--seed", "7", *extra])
        trainer = FastformerTrainer(model=model, args=args, train_dataset=dataset, num_labels=5,
                                    data_collator=encoding.DataCollator())
        expected = trainer.get_train_dataloader().batch_sampler  # what the Trainer iterates
        ours = reference.train_sampler(dataset, args)
        for epoch in range(3):
            assert ours.epoch_batches(epoch) == expected.epoch_batches(epoch)


@pytest.mark.parametrize("flags, named", [
    (["--pooler_type", "mean"], "--pooler_type"),
    (["--max_grad_norm", "1.0"], "--max_grad_norm"),
    (["--lr_scheduler_type", "linear"], "--lr_scheduler_type"),
    (["--weight_decay", "0.01"], "--weight_decay"),
    (["--num_train_epochs", "1.5"], "--num_train_epochs"),
    (["--recompute", "true"], "--recompute"),  # any option not listed as implemented, at a non-default value
])
def test_reference_refuses_what_it_does_not_implement(flags, named, tmp_path, capsys):
    rc = reference.main([TINY, *flags, "--output_dir", str(tmp_path), "--paddle_run_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: the PyTorch reference does not implement") and named in err
    assert len(err.strip().splitlines()) == 1


def test_reference_refuses_a_recipe_other_than_the_paddle_runs(dropout_off, capsys):
    argv, work, _ = dropout_off
    paddle_dir = str(work / "dropout_off_seed1" / "paddle")
    rc = reference.main([*argv, "--output_dir", paddle_dir, "--seed", "1", *check.RUN_FLAGS,
                         "--hidden_dropout_prob", "0", "--learning_rate", "0.002", "--paddle_run_dir", paddle_dir])
    err = capsys.readouterr().err
    assert rc == 2 and "recipe differs from the Paddle run" in err and "--learning_rate: here 0.002" in err
