"""train.py: sampler, metrics, weighted loss, and tiny end-to-end runs (train, resume, reproducibility)."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

import fastformer  # noqa: F401  (before paddle)
import paddle
import paddle.nn.functional as F
from fastformer_data.demo_data import generate_demo_reviews
from fastformer import encoding, metrics as metrics_module, model_folder
from fastformer.tokenizer import FastformerTokenizer
from fastformer.metrics import class_weights, classification_metrics, compute_metrics
from fastformer.training.arguments import parse_args
from fastformer.training.dataset import EncodedDataset
from fastformer.training.sampler import EpochBatchSampler
from fastformer.training.trainer import FastformerTrainer

import evaluate
import train
from fastformer.training import resume

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")
# Amazon-like imbalance: 7% / 5% / 8% / 20% / 60%
LABELS = np.repeat(np.arange(5), [70, 50, 80, 200, 600])


# ------------------------------------------------------------------------------------------------------ sampler
def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return [i for batch in sampler for i in batch]


def test_balanced_sampler_draws_every_class_equally_often():
    sampler = EpochBatchSampler(LABELS, batch_size=32, seed=42)
    for epoch in range(3):
        indices = _epoch(sampler, epoch)
        assert len(indices) == len(LABELS)  # epoch size = training-set size
        counts = Counter(LABELS[indices].tolist())
        assert sorted(counts.values()) == [200] * 5
    # per batch the classes are mixed: about 1/5 of each in a 32-example batch (fixed seed, loose bound)
    sampler.set_epoch(0)
    shares = np.array([np.bincount(LABELS[b], minlength=5) / len(b) for b in sampler])
    assert np.allclose(shares.mean(axis=0), 0.2, atol=0.02)
    assert shares.std(axis=0).max() < 0.15


def test_balanced_sampler_covers_large_classes_and_repeats_small_ones_evenly():
    sampler = EpochBatchSampler(LABELS, batch_size=50, seed=1)
    seen = Counter(i for epoch in range(3) for i in _epoch(sampler, epoch))
    big = np.flatnonzero(LABELS == 4)  # 600 examples, 200 per epoch: each exactly once in 3 epochs
    assert all(seen[i] == 1 for i in big)
    small = np.flatnonzero(LABELS == 1)  # 50 examples, 600 draws: each exactly 12 times
    assert all(seen[i] == 12 for i in small)


def test_balanced_sampler_remainder_and_missing_classes():
    labels = np.array([0] * 10 + [2] * 3 + [4] * 4)  # classes 1 and 3 absent, 17 = 3 * 5 + 2
    sampler = EpochBatchSampler(labels, batch_size=4, seed=0)
    for epoch in range(3):
        counts = Counter(labels[_epoch(sampler, epoch)].tolist())
        assert set(counts) == {0, 2, 4} and sum(counts.values()) == 17
        assert max(counts.values()) - min(counts.values()) <= 1
    assert len(sampler) == 5 and len(list(sampler)) == 5


def test_balanced_sampler_rotates_the_remainder_between_classes():
    # 17 = 3 * 5 + 2: each epoch two classes get a sixth draw, a different two each epoch, so that over 3 epochs
    # every class is drawn exactly 17 times
    labels = np.array([0] * 10 + [2] * 3 + [4] * 4)
    sampler = EpochBatchSampler(labels, batch_size=4, seed=0)
    per_epoch = [Counter(labels[_epoch(sampler, epoch)].tolist()) for epoch in range(6)]
    extra = [frozenset(c for c, n in counts.items() if n == 6) for counts in per_epoch]
    assert all(len(e) == 2 for e in extra) and len(set(extra[:3])) == 3
    for start in (0, 3):
        assert sum(per_epoch[start : start + 3], Counter()) == {0: 17, 2: 17, 4: 17}


def test_sampler_is_a_function_of_seed_and_epoch():
    a = EpochBatchSampler(LABELS, batch_size=32, seed=42)
    b = EpochBatchSampler(LABELS, batch_size=32, seed=42)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) == list(a)  # iterating again gives the same epoch
    assert a.epoch_batches(1) != a.epoch_batches(2)
    assert EpochBatchSampler(LABELS, batch_size=32, seed=43).epoch_batches(2) != a.epoch_batches(2)
    assert isinstance(a, paddle.io.DistributedBatchSampler)  # so that PaddleNLP's Trainer calls set_epoch


def test_unbalanced_sampler_is_a_seeded_permutation():
    sampler = EpochBatchSampler(LABELS, batch_size=64, seed=3, balanced=False, drop_last=True)
    indices = _epoch(sampler, 0)
    assert len(indices) == len(LABELS) // 64 * 64 and len(set(indices)) == len(indices)
    assert len(sampler) == len(LABELS) // 64
    assert indices != _epoch(sampler, 1)


def test_group_by_length_keeps_the_sample_and_groups_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=len(LABELS))
    plain = EpochBatchSampler(LABELS, batch_size=16, seed=5)
    grouped = EpochBatchSampler(LABELS, batch_size=16, seed=5, lengths=lengths, group_size=10)
    assert sorted(_epoch(plain, 1)) == sorted(_epoch(grouped, 1))
    padded = lambda s: sum(len(b) * lengths[b].max() for b in s)  # noqa: E731
    assert padded(grouped) < 0.7 * padded(plain)


@pytest.mark.parametrize("sampling", ["balanced", "none", "weighted_loss"])
def test_trainer_draws_training_batches_as_requested(sampling, tmp_path):
    """The Trainer's own training DataLoader: EpochBatchSampler, class-balanced only for --sampling balanced."""
    tokenizer = FastformerTokenizer.build_from_corpus(["good bad ok fine"], min_freq=1)
    model = model_folder.build_model(tokenizer, hidden_size=16, num_attention_heads=4, intermediate_size=16,
                             num_hidden_layers=1, max_position_embeddings=16)
    dataset = EncodedDataset([[2 + i % 4] * (1 + i % 7) for i in range(len(LABELS))], LABELS)
    _, _, args = parse_args([TINY, "--output_dir", str(tmp_path), "--sampling", sampling, "--report_to", "none",
                             "--per_device_train_batch_size", "50"])
    trainer = FastformerTrainer(model=model, args=args, train_dataset=dataset, num_labels=5,
                                data_collator=encoding.DataCollator())
    loader = trainer.get_train_dataloader()
    assert isinstance(loader.batch_sampler, EpochBatchSampler)
    loader.batch_sampler.set_epoch(0)
    drawn = np.concatenate([batch["labels"].numpy().reshape(-1) for batch in loader])
    assert len(drawn) == len(LABELS)
    counts = np.bincount(drawn, minlength=5).tolist()
    if sampling == "balanced":
        assert counts == [200] * 5
    else:  # every example once: the natural distribution
        assert counts == np.bincount(LABELS).tolist()


# ------------------------------------------------------------------------------------------------------ metrics
def test_compute_metrics_equals_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=300)
    logits = rng.normal(size=(300, 5)) + 2 * np.eye(5)[labels] * (rng.random(300) < 0.5)[:, None]
    pred = logits.argmax(-1)

    class EvalPrediction:
        predictions, label_ids = logits, labels

    metrics = compute_metrics(EvalPrediction)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"), abs=1e-12)
    assert classification_metrics(labels, pred) == metrics


def test_class_weights():
    w = class_weights([0, 0, 0, 1, 4], 5)
    np.testing.assert_allclose(w, [5 / 9, 5 / 3, 0, 0, 5 / 3], rtol=1e-6)


def test_weighted_loss_is_class_weighted_cross_entropy(tmp_path):
    tokenizer = FastformerTokenizer.build_from_corpus(["good bad ok fine"], min_freq=1)
    paddle.seed(0)
    model = model_folder.build_model(tokenizer, hidden_size=16, num_attention_heads=4, intermediate_size=16,
                             num_hidden_layers=1, max_position_embeddings=16, hidden_dropout_prob=0.0)
    labels = [0, 0, 0, 1, 4, 4]
    dataset = EncodedDataset([[2, 3], [3], [4, 5, 2], [5], [2, 2], [3, 4]], labels)
    _, _, args = parse_args([TINY, "--output_dir", str(tmp_path), "--sampling", "weighted_loss", "--report_to", "none"])
    trainer = FastformerTrainer(model=model, args=args, train_dataset=dataset, num_labels=5,
                                data_collator=encoding.DataCollator())
    batch = {k: paddle.to_tensor(v) for k, v in encoding.DataCollator()([dataset[i] for i in range(6)]).items()}
    model.train()  # no dropout in this model: the same logits in both calls
    logits = model(batch["input_ids"], batch["attention_mask"]).logits
    loss = trainer.compute_loss(model, dict(batch))
    w = class_weights(labels, 5)
    per = F.cross_entropy(logits, batch["labels"], reduction="none").numpy().reshape(-1)
    assert float(loss) == pytest.approx(float((w[labels] * per).sum() / w[labels].sum()), rel=1e-5)
    # evaluation keeps the plain mean, comparable across sampling modes
    model.eval()
    plain = trainer.compute_loss(model, dict(batch))
    assert float(plain) == pytest.approx(float(per.mean()), rel=1e-5)


# -------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("raw") / "reviews.json.gz")
    generate_demo_reviews(path, 400, seed=3)
    return path


def _run(raw_file, output_dir, *extra):
    return train.main([TINY, "--output_dir", str(output_dir), "--input_file", raw_file, "--disable_tqdm", "true",
                       *extra])


@pytest.fixture(scope="module")
def one_epoch(raw_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = _run(raw_file, out, "--num_train_epochs", "1", "--learning_rate", "0.002")
    return out, results


def _weights(path):
    """Weights of a model folder (model.safetensors) or a checkpoint (model_state.pdparams) as numpy arrays."""
    if os.path.isfile(os.path.join(path, model_folder.WEIGHTS_FILE)):
        from safetensors.numpy import load_file

        return load_file(os.path.join(path, model_folder.WEIGHTS_FILE))
    return paddle.load(os.path.join(path, "model_state.pdparams"), return_numpy=True)


def test_training_writes_a_complete_output_folder(one_epoch):
    out, results = one_epoch
    steps = -(-300 // 32)  # 300 training reviews, batch 32
    assert results["global_step"] == steps and os.path.isdir(out / f"checkpoint-{steps}")
    model_dir = out / "model"
    model_folder.check_model_dir(str(model_dir))
    model, tokenizer = model_folder.load_model_dir(str(model_dir))
    assert model.config.id2label == {0: "1", 1: "2", 2: "3", 3: "4", 4: "5"} or \
        {int(k): v for k, v in model.config.id2label.items()} == {0: "1", 1: "2", 2: "3", 3: "4", 4: "5"}
    assert model.config.hidden_size == 16 and model.config.max_position_embeddings == 64
    assert len(tokenizer) == model.config.vocab_size == results["vocab_size"]

    # resolved arguments, with the command-line overrides
    for path in (out / "resolved_args.json", model_dir / "training_args.json"):
        resolved = json.loads(path.read_text())
        assert resolved["training"]["learning_rate"] == 0.002 and resolved["training"]["num_train_epochs"] == 1
        assert resolved["model"]["hidden_size"] == 16 and resolved["data"]["max_length"] == 64

    # results: dev and test metrics, throughput
    saved_results = json.loads((out / "test_results.json").read_text())
    for key in ("dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1"):
        assert 0.0 <= saved_results[key] <= 1.0
    assert saved_results["sizes"] == {"train": 300, "dev": 50, "test": 50}
    assert saved_results["train_real_tokens"] > 0
    assert saved_results["train_padded_tokens"] >= saved_results["train_real_tokens"]
    assert saved_results["train_real_tokens_per_second"] > 0
    assert json.loads((out / "train_results.json").read_text())["train_real_tokens_per_second"] > 0
    # prepared data and VisualDL logs
    assert all(os.path.isfile(out / "data" / f) for f in ("train.jsonl", "dev.jsonl", "test.jsonl", "stats.json"))
    logs = [f for _, _, files in os.walk(out / "runs") for f in files]
    assert any("vdlrecords" in f for f in logs)
    # the training curve, drawn from the log history
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_from_the_last_checkpoint_and_matches_an_uninterrupted_run(one_epoch, raw_file, tmp_path):
    out, first = one_epoch
    steps = first["global_step"]
    resumed = _run(raw_file, out, "--num_train_epochs", "2", "--learning_rate", "0.002")
    assert resumed["resumed_from"].endswith(f"checkpoint-{steps}")
    assert resumed["global_step"] == 2 * steps
    assert resumed["train_samples_seen"] == 300  # only the second epoch was trained
    assert os.path.isdir(out / f"checkpoint-{steps}") and os.path.isdir(out / f"checkpoint-{2 * steps}")
    state = json.loads((out / f"checkpoint-{2 * steps}" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "eval_macro_f1" in e] == [steps, 2 * steps]

    # the same two epochs without the interruption give the same weights (sampler and RNG state restored)
    straight = tmp_path / "straight"
    _run(raw_file, straight, "--num_train_epochs", "2", "--learning_rate", "0.002")
    a, b = _weights(out / f"checkpoint-{2 * steps}"), _weights(straight / f"checkpoint-{2 * steps}")
    assert all(np.array_equal(a[k], b[k]) for k in a)

    # the two-epoch run keeps the checkpoint with the best dev macro-F1 in model/
    _assert_best_model_kept(straight)

    # each run's arguments are kept: resolved_args.json is the latest, the history has one line per run
    history = [json.loads(line) for line in (out / "resolved_args_history.jsonl").read_text().splitlines()]
    assert [h["args"]["training"]["num_train_epochs"] for h in history] == [1, 2]
    assert history[0]["resumed_from"] is None and history[1]["resumed_from"].endswith(f"checkpoint-{steps}")
    assert "--num_train_epochs" in history[1]["argv"] and all(h["time"] for h in history)
    assert json.loads((out / "resolved_args.json").read_text()) == history[-1]["args"]

    # --overwrite_output_dir on a folder with checkpoints is an error naming them; nothing is deleted or written
    before = _tree(out)
    with pytest.raises(FileExistsError, match=rf"checkpoint-{steps}, checkpoint-{2 * steps}\).*new --output_dir"):
        _run(raw_file, out, "--num_train_epochs", "1", "--learning_rate", "0.002", "--overwrite_output_dir")
    assert _tree(out) == before


def _tree(folder):
    """Every file under `folder` with its size and modification time."""
    return {os.path.join(d, f): (os.path.getsize(os.path.join(d, f)), os.path.getmtime(os.path.join(d, f)))
            for d, _, files in os.walk(folder) for f in files}


def _assert_best_model_kept(out):
    """model/ holds the weights of state.best_model_checkpoint, the evaluated checkpoint with the highest dev macro-F1
    (the first one on a tie); returns (best step, last step)."""
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [(e["eval_macro_f1"], -e["step"]) for e in state["log_history"] if "eval_macro_f1" in e]
    assert len(evals) >= 2
    best_step, last_step = -max(evals)[1], -evals[-1][1]
    assert os.path.basename(state["best_model_checkpoint"].rstrip("/")) == f"checkpoint-{best_step}"
    saved, best = _weights(out / "model"), _weights(out / f"checkpoint-{best_step}")
    assert saved.keys() == best.keys() and all(np.array_equal(best[k], saved[k]) for k in best)
    results = json.loads((out / "test_results.json").read_text())
    assert results["best_checkpoint"] == state["best_model_checkpoint"] and results["dev_step"] == best_step
    return best_step, last_step


def test_best_checkpoint_not_the_last_is_the_model_kept(raw_file, tmp_path, monkeypatch):
    # Dev macro-F1 forced down after the first epoch (test metrics untouched), so best (epoch 1) != last (epoch 2).
    dev_f1 = iter([0.9, 0.1])

    def metrics(eval_pred):  # the first two calls are the dev evaluations after each epoch, the third is test
        result = compute_metrics(eval_pred)
        result["macro_f1"] = next(dev_f1, result["macro_f1"])
        return result

    monkeypatch.setattr(metrics_module, "compute_metrics", metrics)  # train.main imports it when it runs
    results = _run(raw_file, tmp_path, "--num_train_epochs", "2", "--learning_rate", "0.002",
                   "--max_length", "32", "--max_position_embeddings", "64")
    best_step, last_step = _assert_best_model_kept(tmp_path)
    assert best_step == results["global_step"] // 2 and last_step == results["global_step"]
    assert results["dev_macro_f1"] == 0.9
    saved, last = _weights(tmp_path / "model"), _weights(tmp_path / f"checkpoint-{last_step}")
    assert not all(np.array_equal(last[k], saved[k]) for k in last)  # the last epoch's weights were not kept
    # model/ records the truncation length of training (not max_position_embeddings)
    assert json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())["model_max_length"] == 32
    assert json.loads((tmp_path / "model" / "config.json").read_text())["max_position_embeddings"] == 64


def _complete_checkpoint(path):
    """A checkpoint folder that passes training.checkpoint_problem (its files listed in checksums.json)."""
    from fastformer.fileio import write_checksums

    path.mkdir()
    paddle.save({"w": paddle.zeros([2])}, str(path / "model_state.pdparams"))
    paddle.save({}, str(path / "optimizer.pdopt"))
    (path / "trainer_state.json").write_text("{}")
    write_checksums(str(path), ["model_state.pdparams", "optimizer.pdopt", "trainer_state.json"])


def test_find_checkpoint_and_overwrite_output_dir(tmp_path):
    from types import SimpleNamespace

    for name in ("checkpoint-10", "checkpoint-5"):
        _complete_checkpoint(tmp_path / name)
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-20").write_text("a file, not a checkpoint")
    def args(output_dir, overwrite=False, resume=None):
        return SimpleNamespace(output_dir=str(output_dir), overwrite_output_dir=overwrite, resume_from_checkpoint=resume)

    assert resume.existing_checkpoints(str(tmp_path)) == ["checkpoint-5", "checkpoint-10"]
    assert resume.find_checkpoint(args(tmp_path)).endswith("checkpoint-10")  # resumes from the last one
    with pytest.raises(FileExistsError, match=r"\(checkpoint-5, checkpoint-10\).*new --output_dir"):
        resume.find_checkpoint(args(tmp_path, overwrite=True))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10", "checkpoint-20", "checkpoint-5", "checkpoint-x"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resume.find_checkpoint(args(empty, overwrite=True)) is None  # no checkpoints: a fresh start is fine
    assert resume.find_checkpoint(args(empty)) is None
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        resume.find_checkpoint(args(empty, resume=str(tmp_path / "nope")))


def test_missing_raw_file_without_demo_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        train.main([TINY, "--output_dir", str(tmp_path), "--input_file", str(tmp_path / "nope.json.gz"),
                    "--demo_data", "false"])


def test_fit_logit_adjustment_picks_the_best_tau_on_the_given_predictions():
    from fastformer.metrics import fit_logit_adjustment, log_prior

    prior = log_prior([0] * 90 + [1] * 10, 2)
    # a model of the natural distribution: class 1 is under-predicted until its logit is raised
    rng = np.random.default_rng(0)
    labels = np.array([0] * 50 + [1] * 50)
    logits = np.stack([np.zeros(100), rng.normal(-1.5, 1.0, 100) + 2.0 * labels], axis=1)
    tau, metrics = fit_logit_adjustment(logits, labels, prior)
    plain = compute_metrics(type("P", (), {"predictions": logits, "label_ids": labels}))
    assert tau > 0 and metrics["macro_f1"] > plain["macro_f1"]
    # no gain possible (perfect logits): tau stays 0
    assert fit_logit_adjustment(np.stack([1 - labels, labels], 1) * 10.0, labels, prior)[0] == 0.0


def test_logit_adjustment_is_fitted_on_dev_and_folded_into_the_saved_model(raw_file, tmp_path):
    from fastformer.model_folder import load_model_dir

    out = tmp_path / "adj"
    results = _run(raw_file, out, "--num_train_epochs", "1", "--learning_rate", "0.002", "--logit_adjustment", "dev",
                   "--metric_for_best_model", "adjusted_macro_f1")
    adjustment = results["logit_adjustment"]
    tau, prior = adjustment["tau"], np.array(adjustment["log_prior"])
    assert adjustment["dev_after"]["macro_f1"] >= adjustment["dev_before"]["macro_f1"]
    checkpoint = _weights(results["best_checkpoint"])["classifier.bias"]
    saved = _weights(out / "model")["classifier.bias"]
    np.testing.assert_allclose(saved, checkpoint - tau * prior, rtol=1e-5, atol=1e-6)
    model, _ = load_model_dir(str(out / "model"))
    assert model.config.logit_adjustment["tau"] == tau
    assert results["dev_adjusted_macro_f1"] == pytest.approx(adjustment["dev_after"]["macro_f1"])  # epoch chosen by it
    with pytest.raises(ValueError, match="logit_adjustment"):
        _run(raw_file, tmp_path / "bad", "--metric_for_best_model", "adjusted_macro_f1")


def test_average_checkpoints_keeps_the_mean_of_the_saved_weights(raw_file, tmp_path):
    out = tmp_path / "avg"
    plain = _run(raw_file, out, "--num_train_epochs", "2", "--learning_rate", "0.002")
    steps = plain["global_step"]
    names = [f"checkpoint-{steps // 2}", f"checkpoint-{steps}"]
    # the same finished run again with --average_checkpoints: it resumes at its end, trains nothing, averages
    results = _run(raw_file, out, "--num_train_epochs", "2", "--learning_rate", "0.002",
                   "--average_checkpoints", "true")
    assert results["resumed_from"].endswith(names[-1]) and results["train_samples_seen"] == 0
    assert results["averaged_checkpoints"] == names
    first, last, saved = _weights(out / names[0]), _weights(out / names[1]), _weights(out / "model")
    assert saved.keys() == first.keys()
    for name in first:
        np.testing.assert_allclose(saved[name], (first[name] + last[name]) / 2, rtol=1e-6, atol=1e-7)
    assert not all(np.array_equal(saved[k], last[k]) for k in last)
    # the dev metrics reported are those of the kept (averaged) model
    dev = evaluate.main(["--model_dir", str(out / "model"), "--split", "dev", "--output_dir", str(tmp_path / "ev")])
    assert results["dev_macro_f1"] == pytest.approx(dev["macro_f1"]) and results["dev_step"] == steps
    with pytest.raises(ValueError, match="--average_checkpoints.*save_strategy"):
        _run(raw_file, tmp_path / "bad", "--average_checkpoints", "true", "--save_strategy", "no",
             "--load_best_model_at_end", "false")


def test_word_dropout_replaces_real_tokens_only_at_the_asked_rate():
    from fastformer.training.dataset import drop_words

    paddle.seed(0)
    ids = np.arange(2, 2 + 400 * 50, dtype="int64").reshape(400, 50)
    mask = np.ones_like(ids)
    mask[:, 40:] = 0
    ids[:, 40:] = 0
    out = drop_words(ids, mask, 0.2, unk_id=1).numpy()
    dropped = out != ids
    assert (out[dropped] == 1).all() and not dropped[:, 40:].any()  # padding untouched
    assert abs(dropped[:, :40].mean() - 0.2) < 0.01
    assert not (drop_words(ids, mask, 0.0, unk_id=1).numpy() != ids).any()


def test_init_from_copies_the_encoder_and_keeps_a_fresh_classifier(one_epoch, raw_file, tmp_path):
    from fastformer.model_folder import build_model, init_encoder, load_model_dir

    source_dir = one_epoch[0] / "model"
    source, tokenizer = load_model_dir(str(source_dir))
    config = {k: getattr(source.config, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                     "intermediate_size", "max_position_embeddings")}
    model = build_model(tokenizer, **config)
    init_encoder(model, str(source_dir))
    theirs, ours = source.state_dict(), model.state_dict()
    for name in ours:
        same = np.array_equal(ours[name].numpy(), theirs[name].numpy())
        assert same == name.startswith("fastformer."), name
    with pytest.raises(ValueError, match="hidden_size"):
        init_encoder(build_model(tokenizer, **dict(config, hidden_size=32)), str(source_dir))
    # a training run with --init_from takes that vocabulary; --word_dropout trains
    results = _run(raw_file, tmp_path / "init", "--num_train_epochs", "1", "--word_dropout", "0.1",
                   "--init_from", str(source_dir))
    assert results["vocab_size"] == len(tokenizer)


def test_the_closing_line_prints_rounded_metrics(raw_file, tmp_path, caplog):
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="train"):
        _run(raw_file, tmp_path, "--num_train_epochs", "1", "--max_steps", "2")
    (line,) = [r.getMessage() for r in caplog.records if "test macro-F1" in r.getMessage()]
    assert re.fullmatch(r"dev macro-F1 \d\.\d{4} accuracy \d\.\d{4} \| test macro-F1 \d\.\d{4} accuracy \d\.\d{4} "
                        r"\| model in .+", line), line
