"""Faults in what training writes and reads (model folders, checkpoints, configs, raw data): no code run from
model files, damaged weight files, checkpoints, one-line user errors, atomic demo data and capped line length.
A tiny random-weight model, no training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

import fastformer  # noqa: F401  (before paddle)
import paddle
from fastformer_data import demo_data as demo_module
from fastformer_data.demo_data import generate_demo_reviews
from fastformer_data import prepare as prepare_module
from fastformer_data.reader import MAX_LINE_BYTES, ReviewReader
from fastformer import encoding, model_folder
from fastformer.cli import UserError, run_main
from fastformer.inference.export import export_model
from fastformer.fileio import CHECKSUMS_FILE, ChecksumError
from fastformer.inference.folders import MANIFEST_FILE
from fastformer.inference.loader import load_predictor
from fastformer.tokenizer import FastformerTokenizer
from fastformer.training.arguments import parse_args
from fastformer.training.dataset import EncodedDataset
from fastformer.training.resume import checkpoint_problem
from fastformer.training.trainer import FastformerTrainer

import export_model as export_script
import train
from fastformer.training import resume

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")
CORPUS = ["great sound and battery", "broke after a week", "ok for the price", "terrible cable , do not buy"]


class _RunsCode:
    """Unpickling this creates a folder: the proof that code from a file ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _tiny_model():
    tokenizer = FastformerTokenizer.build_from_corpus(CORPUS, min_freq=1)
    paddle.seed(3)
    model = model_folder.build_model(tokenizer, hidden_size=8, num_attention_heads=2, intermediate_size=8,
                             num_hidden_layers=1, max_position_embeddings=32)
    return model, tokenizer


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_train")
    model, tokenizer = _tiny_model()
    model_dir, export_dir = str(root / "model"), str(root / "export")
    model_folder.save_model_dir(model, tokenizer, model_dir)
    export_model(model_dir, export_dir, log=lambda *a: None, parity_texts=["great sound", "broke after a week , bad"])
    return {"model": model_dir, "export": export_dir}


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one_line_error(capsys, pattern):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(r"\S+: error: ", err), err
    assert re.search(pattern, err), err


# -------------------------------------------------------------------------------- 2: no code from model files
def test_model_folders_load_without_unpickling_and_pickle_needs_allow_pickle(folders, tmp_path, caplog):
    files = set(os.listdir(folders["model"]))
    assert {"model.safetensors", CHECKSUMS_FILE, "config.json", "vocab.txt"} <= files
    assert "model_state.pdparams" not in files
    marker = tmp_path / "code_ran"

    # a folder whose weights are a crafted pickle is refused, and nothing from it runs
    crafted = tmp_path / "crafted"
    shutil.copytree(folders["model"], crafted)
    os.remove(crafted / "model.safetensors")
    os.remove(crafted / CHECKSUMS_FILE)
    with open(crafted / "model_state.pdparams", "wb") as f:
        pickle.dump({"embeddings": _RunsCode(str(marker))}, f)
    with pytest.raises(UserError, match=r"model_state\.pdparams: pickle-format weights.*--allow_pickle"):
        model_folder.load_model_dir(str(crafted))
    with pytest.raises(UserError, match="--allow_pickle"):
        load_predictor(str(crafted))
    assert not marker.exists()

    # next to model.safetensors a crafted pickle is never opened
    both = tmp_path / "both"
    shutil.copytree(folders["model"], both)
    shutil.copy(crafted / "model_state.pdparams", both / "model_state.pdparams")
    reference, _ = model_folder.load_model_dir(folders["model"])
    loaded, _ = model_folder.load_model_dir(str(both))
    assert not marker.exists()

    # a genuine pickle-format folder (older versions of the project) loads with allow_pickle, with a warning
    legacy = tmp_path / "legacy"
    shutil.copytree(folders["model"], legacy)
    for name in ("model.safetensors", CHECKSUMS_FILE):
        os.remove(legacy / name)
    reference.save_pretrained(str(legacy))  # PaddleNLP's default: model_state.pdparams (pickle)
    assert (legacy / "model_state.pdparams").is_file()
    with caplog.at_level(logging.WARNING, logger="fastformer.model_folder"):
        old, _ = model_folder.load_model_dir(str(legacy), allow_pickle=True)
    assert any("pickle-format weights" in r.getMessage() and "legacy" in r.getMessage() for r in caplog.records)
    for model in (loaded, old):
        want, got = reference.state_dict(), model.state_dict()
        assert want.keys() == got.keys() and all(np.array_equal(want[k].numpy(), got[k].numpy()) for k in want)


def test_converter_reads_torch_checkpoints_with_weights_only(folders, tmp_path):
    torch = pytest.importorskip("torch")
    from fastformer import convert

    marker = tmp_path / "code_ran"
    crafted = tmp_path / "crafted.pt"
    torch.save({"word_embedding.weight": torch.zeros(3, 2), "extra": _RunsCode(str(marker))}, crafted)
    with pytest.raises(UserError, match=r"crafted\.pt: holds more than tensors.*--allow_pickle"):
        convert.main(["--torch_checkpoint", str(crafted), "--output_dir", str(tmp_path / "out"),
                      "--tokenizer_dir", folders["model"]])
    assert not marker.exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ 3: damaged weight files
def test_weight_files_are_recorded_and_checked_on_load(folders, tmp_path):
    export = folders["export"]
    with open(os.path.join(export, MANIFEST_FILE), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["sha256"] == {name: _sha256(os.path.join(export, name))
                                  for name in ("model.json", "model.pdiparams")}
    with open(os.path.join(folders["model"], CHECKSUMS_FILE), encoding="utf-8") as f:
        assert json.load(f) == {"sha256": {"model.safetensors": _sha256(os.path.join(folders["model"],
                                                                                     "model.safetensors"))}}
    # model.pdiparams is Paddle's tensor format, not a pickle: per tensor a uint32 version, a uint64 LoD level, a
    # uint32 version and the size of a TensorDesc protobuf; read by Paddle Inference's C++ loader
    data = open(os.path.join(export, "model.pdiparams"), "rb").read()
    assert not data.startswith(b"\x80") and struct.unpack("<IQIi", data[:20])[:3] == (0, 0, 0)
    assert not any(name.endswith(".info") for name in os.listdir(export))

    # the same size, some bytes overwritten: refused before loading, naming the file
    damaged = tmp_path / "export"
    shutil.copytree(export, damaged)
    size = os.path.getsize(damaged / "model.pdiparams")
    with open(damaged / "model.pdiparams", "r+b") as f:
        f.seek(size // 2)
        f.write(b"\x7f" * 256)
    assert os.path.getsize(damaged / "model.pdiparams") == size
    with pytest.raises(ChecksumError, match=r"model\.pdiparams: SHA-256 .* recorded in manifest\.json"):
        load_predictor(str(damaged))
    model_dir = tmp_path / "model"
    shutil.copytree(folders["model"], model_dir)
    with open(model_dir / "model.safetensors", "r+b") as f:
        f.seek(-64, os.SEEK_END)
        f.write(b"\x7f" * 64)
    with pytest.raises(ChecksumError, match=r"model\.safetensors: SHA-256 .* recorded in checksums\.json"):
        model_folder.load_model_dir(str(model_dir))
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        load_predictor(str(model_dir))


# ---------------------------------------------------------------------------------------- 4: checkpoints
def _trainer(output_dir):
    model, tokenizer = _tiny_model()
    _, _, args = parse_args([TINY, "--output_dir", str(output_dir), "--report_to", "none"])
    trainer = FastformerTrainer(model=model, args=args, train_dataset=EncodedDataset([[2, 3], [3], [4, 5]], [0, 1, 4]),
                                tokenizer=tokenizer, data_collator=encoding.DataCollator(), num_labels=5)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    return trainer


def test_checkpoints_are_atomic_and_resume_skips_damaged_ones(tmp_path, monkeypatch, caplog):
    trainer = _trainer(tmp_path)
    trainer.state.global_step = 10
    trainer._save_checkpoint(trainer.model)
    good = tmp_path / "checkpoint-10"
    with open(good / CHECKSUMS_FILE, encoding="utf-8") as f:
        recorded = json.load(f)["sha256"]
    assert {"model_state.pdparams", "optimizer.pdopt", "trainer_state.json", "rng_state.pth"} <= set(recorded)
    assert checkpoint_problem(str(good)) is None

    # a save that dies half-way (here while writing the optimizer state) leaves no checkpoint-20 behind
    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    trainer.state.global_step = 20
    with monkeypatch.context() as m:
        m.setattr(trainer, "_save_ckpt_func", dies)
        with pytest.raises(KeyboardInterrupt):
            trainer._save_checkpoint(trainer.model)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10"]

    # damaged last checkpoints (older ones without checksums.json too) are skipped with a warning naming them
    shutil.copytree(good, tmp_path / "checkpoint-20")
    with open(tmp_path / "checkpoint-20" / "model_state.pdparams", "r+b") as f:
        f.truncate(os.path.getsize(good / "model_state.pdparams") // 2)
    shutil.copytree(good, tmp_path / "checkpoint-30")
    os.remove(tmp_path / "checkpoint-30" / "optimizer.pdopt")
    shutil.copytree(tmp_path / "checkpoint-20", tmp_path / "checkpoint-40")
    os.remove(tmp_path / "checkpoint-40" / CHECKSUMS_FILE)
    shutil.copytree(good, tmp_path / ".checkpoint-50.x1y2.tmp")  # a kill -9 while saving leaves this
    args = SimpleNamespace(output_dir=str(tmp_path), overwrite_output_dir=False, resume_from_checkpoint=None)
    with caplog.at_level(logging.WARNING, logger="fastformer.training.resume"):
        assert resume.find_checkpoint(args) == str(good)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-40: unreadable" in messages and "checkpoint-30: incomplete, no optimizer.pdopt" in messages
    assert "checkpoint-20/model_state.pdparams: SHA-256" in messages and ".checkpoint-50.x1y2.tmp" in messages
    with pytest.raises(UserError, match=r"checkpoint-20'? cannot be resumed from: .*model_state\.pdparams"):
        resume.find_checkpoint(SimpleNamespace(**{**vars(args), "resume_from_checkpoint": str(tmp_path / "checkpoint-20")}))

    # the run resumed from checkpoint-10 (a new process) saves checkpoint-20 again: the damaged one is kept, renamed
    trainer = _trainer(tmp_path)
    trainer.state.global_step = 20
    trainer._save_checkpoint(trainer.model)
    assert checkpoint_problem(str(tmp_path / "checkpoint-20")) is None
    kept = [name for name in os.listdir(tmp_path) if name.startswith("checkpoint-20.replaced-")]
    assert len(kept) == 1 and checkpoint_problem(str(tmp_path / kept[0])) is not None


# ------------------------------------------------------------------------------------ 6: one-line errors
@pytest.mark.parametrize("case", ["missing", "malformed", "not_object", "prefix_key", "prefix_flag", "negative_batch",
                                  "heads", "output_dir_file", "input_dir"])
def test_training_user_errors_are_one_line(case, tmp_path, capsys):
    out = tmp_path / "out"
    config = tmp_path / "config.json"
    args = [TINY, "--output_dir", str(out)]
    if case == "missing":
        args, pattern = [str(tmp_path / "nope.json")], r"config file '.*nope\.json' does not exist"
    elif case == "malformed":
        config.write_text('{"learning_rate": 0.1,\n')
        args, pattern = [str(config)], r"config\.json' is not valid JSON: .* line 2"
    elif case == "not_object":
        config.write_text("[1, 2]")
        args, pattern = [str(config)], r"config\.json: a config must be a JSON object"
    elif case == "prefix_key":
        config.write_text(json.dumps({"output_dir": str(out), "learning_rat": 0.1}))
        args, pattern = [str(config)], r"config\.json: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"
    elif case == "prefix_flag":
        args, pattern = args + ["--learning_rat", "0.1"], r"unknown argument 'learning_rat'"
    elif case == "negative_batch":
        args, pattern = args + ["--per_device_train_batch_size", "-8"], r"--per_device_train_batch_size must be"
    elif case == "heads":
        args, pattern = args + ["--hidden_size", "18"], r"--hidden_size \(18\) must be a multiple of"
    elif case == "output_dir_file":
        out.write_text("a file")
        pattern = r"--output_dir '.*out' is a file"
    else:
        args, pattern = args + ["--input_file", str(tmp_path)], r"--input_file '.*' is a folder"
    assert run_main(train.main, args) == 2
    _one_line_error(capsys, pattern)
    if case != "input_dir":
        assert not out.is_dir()  # refused before anything was written or prepared


def test_export_output_dir_that_is_a_file(folders, tmp_path, capsys):
    target = tmp_path / "export"
    target.write_text("a file")
    assert run_main(export_script.main, ["--model_dir", folders["model"], "--output_dir", str(target)]) == 2
    _one_line_error(capsys, r"--output_dir '.*export' is a file")
    assert target.read_text() == "a file"


def test_bad_raw_input_is_one_line_naming_the_file(tmp_path, capsys):
    good = tmp_path / "reviews.json.gz"
    generate_demo_reviews(str(good), 300, seed=2)
    data = good.read_bytes()
    (tmp_path / "truncated.json.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.json.gz").write_bytes(data[:2000] + bytes(200) + data[2200:])
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "all_bad.json").write_bytes(b"not json\n{\"comment\": 1}\n[1]\n")
    cases = {
        "truncated.json.gz": r"truncated\.json\.gz: truncated or corrupt gzip data near byte \d+ of \d+ after line "
                             r"\d+ \(EOFError.*counted up to there: \d+ usable",
        "corrupt.json.gz": r"corrupt\.json\.gz: truncated or corrupt gzip data near byte \d+",
        "empty.json": r"no usable review: .*empty\.json: the file is empty",
        "all_bad.json": r"no usable review: .*all_bad\.json: skipped 3 of 3 lines: unparseable 2 \(lines 1, 3\); "
                        r"unknown_format 1",
        "": r"input file '.*' is a folder",
    }
    for name, pattern in cases.items():
        argv = ["--input_file", str(tmp_path / name), "--output_dir", str(tmp_path / f"out_{name}"), "--no_progress"]
        assert run_main(prepare_module.main, argv) == 2, name
        _one_line_error(capsys, pattern)
    # what was read before the damage stays counted
    reader = ReviewReader(str(tmp_path / "truncated.json.gz"), show_progress=False)
    with pytest.raises(UserError):
        list(reader)
    assert 0 < reader.stats()["usable"] == reader.stats()["lines_read"] < 300


def test_a_script_exits_2_with_one_line(tmp_path):
    """A script itself (not only its main()): one line on stderr, exit status 2 (the data pipeline: no paddle to load)."""
    proc = subprocess.run([sys.executable, "-m", "fastformer_data.prepare", "--input_file", str(tmp_path),
                           "--output_dir", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"prepare.py: error: input file {str(tmp_path)!r} is a folder, not a review file"


# ------------------------------------------------------------------------- 10: atomic demo data, line cap
def test_demo_data_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "demo" / "reviews.json.gz"
    calls = {"n": 0}
    record = demo_module._record

    def dies_half_way(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt
        return record(*args, **kwargs)

    monkeypatch.setattr(demo_module, "_record", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        generate_demo_reviews(str(path), 100, seed=1)
    assert os.listdir(path.parent) == []  # no partial file that a later run would read
    monkeypatch.undo()
    assert generate_demo_reviews(str(path), 100, seed=1)["num_reviews"] == 100 and path.is_file()


def test_long_lines_are_skipped_as_too_long_in_bounded_memory(tmp_path):
    assert MAX_LINE_BYTES == 1 << 20
    path = tmp_path / "long.json"
    good = [json.dumps({"reviewText": f"review {i} is fine", "overall": 4.0}).encode() for i in range(2)]
    with open(path, "wb") as f:
        f.write(good[0] + b"\n" + b'{"reviewText": "' + b"a" * (12 << 20) + b'", "overall": 5.0}\n' + good[1] + b"\n")
    reader = ReviewReader(str(path), show_progress=False)
    tracemalloc.start()
    try:
        reviews = list(reader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.line for r in reviews] == [1, 3]
    assert reader.stats()["skipped"] == {"too_long": {"count": 1, "first_lines": [2]}}
    assert peak < 4 * MAX_LINE_BYTES, f"peak {peak / 2**20:.1f} MiB while reading a 12 MiB line"
    # the limit can be set; a line of exactly the limit (newline not counted) is read
    assert [r.line for r in ReviewReader(str(path), show_progress=False, max_line_bytes=len(good[0]))] == [1, 3]
    assert [r.line for r in ReviewReader(str(path), show_progress=False, max_line_bytes=len(good[0]) - 1)] == []
