"""predict.py and the shared writer against hostile outputs and inputs: --output on a symlink, FIFO, device or open
descriptor, or into a model folder; over-long and endless input lines; empty input; abbreviated flags; leftovers of
killed writers; escape characters in file names. One tiny random-weight model folder per module (fp32, so nothing
depends on the CPU's bf16 support)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from types import SimpleNamespace

import pytest

import fastformer  # noqa: F401
from fastformer.cli import UserError, run_main
from fastformer.fileio import atomic_dir, atomic_write, file_sha256

import predict
from tiny_model import saved_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = ["great product , works perfectly and the battery lasts all day .",
          "stopped working after two days , waste of money ."]
REVIEWS = b"Great product!\nStopped working after two days.\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("faults_predict") / "model")
    saved_tiny_model(path, CORPUS, seed=3)
    return path


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_bytes(REVIEWS)
    return str(path)


def _predict(model_dir, *argv):
    return run_main(predict.main, ["--model_dir", model_dir, "--precision", "fp32", "--format", "jsonl", *argv])


def _ratings(text):
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert [r["line"] for r in records] == [1, 2] and all(r["rating"] in range(1, 6) for r in records)
    return records


def _temp_files(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def _one_error_line(err):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------- 1: special files, links, model folders
def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(model_dir, reviews, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "preds.jsonl"
    target.write_text("old\n")
    link = tmp_path / "preds.jsonl"
    os.symlink(os.path.join("real", "preds.jsonl"), link)  # relative, as `ln -s` makes them
    assert _predict(model_dir, "--input_file", reviews, "--output", str(link)) == 0
    assert os.path.islink(link) and os.readlink(link) == os.path.join("real", "preds.jsonl")
    _ratings(target.read_text())
    assert _temp_files(tmp_path) == [] and _temp_files(tmp_path / "real") == []


def test_output_to_a_fifo_is_written_through(model_dir, reviews, tmp_path):
    fifo = str(tmp_path / "preds.fifo")
    os.mkfifo(fifo)
    os.link(fifo, tmp_path / "same.fifo")  # to release the reader below if the FIFO were replaced
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    try:
        assert _predict(model_dir, "--input_file", reviews, "--output", fifo) == 0
        reader.join(timeout=60)
    finally:
        if reader.is_alive():
            os.close(os.open(tmp_path / "same.fifo", os.O_WRONLY | os.O_NONBLOCK))  # EOF for the waiting reader
            reader.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    _ratings(received[0].decode())
    assert _temp_files(tmp_path) == []


def test_output_to_a_character_device_is_written_through(model_dir, reviews, tmp_path):
    if os.geteuid() == 0:  # a twin of /dev/null: a regression must not replace the machine's own
        device = str(tmp_path / "null")
        try:
            os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(*divmod(os.stat("/dev/null").st_rdev, 256)))
        except OSError as exc:
            pytest.skip(f"cannot make a device node here ({exc}); the FIFO and descriptor tests cover writing through")
        assert os.stat(device).st_rdev == os.stat("/dev/null").st_rdev
    else:
        device = "/dev/null"
    assert _predict(model_dir, "--input_file", reviews, "--output", device) == 0
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert _temp_files(os.path.dirname(device)) == []


def test_output_to_an_open_descriptor_is_written_through(model_dir, reviews, tmp_path, capfd):
    """/dev/fd/1, and a link to /proc/self/fd/1 as /dev/stdout is: the predictions go to standard output."""
    link = tmp_path / "stdout"
    os.symlink("/proc/self/fd/1", link)
    for output in ("/dev/fd/1", str(link)):
        assert _predict(model_dir, "--input_file", reviews, "--output", output) == 0
        _ratings(capfd.readouterr().out)
    assert os.readlink(link) == "/proc/self/fd/1"
    assert _temp_files(tmp_path) == []


def test_output_into_a_model_folder_is_refused(model_dir, reviews, tmp_path, capfd):
    before = {name: file_sha256(os.path.join(model_dir, name)) for name in os.listdir(model_dir)}
    other = str(tmp_path / "other_model")
    saved_tiny_model(other, CORPUS, seed=4)
    weights = os.path.join(other, "model.safetensors")
    other_sha = file_sha256(weights)
    for output in (os.path.join(model_dir, "model.safetensors"), os.path.join(model_dir, "preds.jsonl"), weights):
        assert _predict(model_dir, "--input_file", reviews, "--output", output) == 2
        line = _one_error_line(capfd.readouterr().err)
        assert "--output" in line and ("model folder" in line or "model or export folder" in line)
    assert {name: file_sha256(os.path.join(model_dir, name)) for name in os.listdir(model_dir)} == before
    assert file_sha256(weights) == other_sha


def test_shared_writer_keeps_links_and_writes_through_fifos(tmp_path):
    """The same for every script's outputs (evaluate, prepare, ...): they write through `atomic_write`."""
    (tmp_path / "d").mkdir()
    os.symlink("d/real.json", tmp_path / "link.json")  # dangling: the write creates the target
    atomic_write(tmp_path / "link.json", "{}\n")
    assert os.path.islink(tmp_path / "link.json") and (tmp_path / "d" / "real.json").read_text() == "{}\n"
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    atomic_write(fifo, b"abc")
    reader.join(timeout=30)
    assert received == [b"abc"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# -------------------------------------------------------------------------------------- 6: long and endless lines
def test_an_over_long_line_is_an_error_for_its_line_and_the_others_are_predicted(model_dir, tmp_path, capfd):
    path = tmp_path / "long.txt"
    path.write_bytes(b"Great product!\n" + b"a" * (3 << 20) + b"\nStopped working after two days.\n")
    out = tmp_path / "preds.jsonl"
    assert _predict(model_dir, "--input_file", str(path), "--output", str(out)) == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]
    assert records[0]["rating"] and records[2]["rating"] and records[1]["rating"] is None
    assert records[1]["error"] == "line 2: 3,145,728 bytes, longer than the 1,048,576 a line may have; skipped"
    assert "1 with errors" in capfd.readouterr().err


def test_line_reading_keeps_memory_bounded(tmp_path, monkeypatch):
    path = tmp_path / "long.txt"
    path.write_bytes(b"first\n" + b"x" * (16 << 20) + b"\nthird")
    tracemalloc.start()
    try:
        with open(path, "rb") as f:
            lines = list(predict.iter_lines(f))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(n, t) for n, t, _ in lines] == [(1, "first"), (2, None), (3, "third")]
    assert "longer than the 1,048,576" in lines[1][2] and peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB"
    # the cap is prepare's (fastformer_data.reader.MAX_LINE_BYTES), read when called
    monkeypatch.setattr(predict, "MAX_LINE_BYTES", 4)
    with open(path, "rb") as f:
        assert [t for _, t, _ in predict.iter_lines(f)][0::2] == [None, None]


ENDLESS = r"""
import resource, sys
import predict
from fastformer.cli import run_main
from fastformer.inference.loader import load_predictor  # (the libraries are loaded before the limit)
size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))
sys.exit(run_main(predict.main, sys.argv[1:]))
"""


def test_dev_zero_input_ends_quickly_in_bounded_memory(model_dir, tmp_path):
    """/dev/zero has no line end: one error for line 1, then the input ends (1 GiB of address space is plenty)."""
    out = tmp_path / "preds.jsonl"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", ENDLESS, "--model_dir", model_dir, "--precision", "fp32",
                           "--format", "jsonl", "--input_file", "/dev/zero", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1 and records[0]["rating"] is None
    assert records[0]["error"].startswith("line 1: no line end within 268,435,457 bytes")
    assert "0 predicted, 1 with errors" in proc.stderr
    print(f"/dev/zero: {seconds:.1f} s with the model load")


# ------------------------------------------------------------------------- 8: abbreviations, empty input
@pytest.mark.parametrize("module, argv, abbreviated", [
    ("predict", ["--model_dir", "m", "--input_f", "x.txt"], "--input_f"),
    ("evaluate", ["--model_dir", "m", "--data_f", "x.jsonl"], "--data_f"),
    ("export_model", ["--model_dir", "m", "--output_dir", "o", "--max_len", "8"], "--max_len"),
    ("serve", ["--model_dir", "m", "--po", "8001"], "--po"),
    ("fastformer_data.prepare", ["--input_file", "in.json", "--output_dir", "o", "--num_s", "10"], "--num_s"),
    ("fastformer_data.demo_data", ["--output", "o.json", "--num_rev", "1"], "--num_rev"),
    ("fastformer_data.word_vectors", ["--data_dir", "d", "--output", "v.txt", "--min_c", "1"], "--min_c"),
])
def test_abbreviated_flags_are_refused(module, argv, abbreviated, tmp_path, monkeypatch, capsys):
    import importlib

    monkeypatch.chdir(tmp_path)  # nothing a mistaken run could write lands in the repository
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(argv)
    assert exit_.value.code == 2 and f"unrecognized arguments: {abbreviated}" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_train_flags_are_not_abbreviated():
    from fastformer.training.arguments import parse_args

    with pytest.raises(UserError, match="unknown argument 'learning_rat'"):
        parse_args([os.path.join(ROOT, "configs", "tiny.json"), "--learning_rat", "0.1"])


def test_empty_input_is_an_error(model_dir, tmp_path, monkeypatch, capfd):
    import io

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "preds.jsonl"
    assert _predict(model_dir, "--input_file", str(empty), "--output", str(out)) == 2
    assert "empty.txt' is empty: no line to predict" in _one_error_line(capfd.readouterr().err)
    assert not out.exists()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8"))
    assert _predict(model_dir, "-") == 2
    captured = capfd.readouterr()
    assert captured.out == "" and "standard input is empty" in _one_error_line(captured.err)


# ------------------------------------------------------------------------------- 9: leftovers, escaped names
HOLDER = r"""
import sys, time
from fastformer.fileio import atomic_dir, atomic_open
kind, path = sys.argv[1:]
with (atomic_open(path, "wb") if kind == "file" else atomic_dir(path)) as f:
    if kind == "file":
        f.write(b"x" * (1 << 20))
        f.flush()
    print("writing", flush=True)
    time.sleep(300)
"""


def _holder(kind, path):
    """A process in the middle of writing `path`: it holds its temporary file or folder until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "writing\n"
    return proc


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)  # (reaped: a zombie still counts as alive)
    proc.stdout.close()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_killed_writers_leftover_is_removed_by_the_next_write_and_a_live_ones_is_kept(kind, tmp_path):
    target = tmp_path / ("out.json" if kind == "file" else "model")
    killed = _holder(kind, target)
    _kill(killed)
    leftover = _temp_files(tmp_path)
    assert len(leftover) == 1 and leftover[0].startswith(f".{target.name}.")
    live = _holder(kind, target)
    try:
        mine = set(_temp_files(tmp_path)) - set(leftover)
        assert len(mine) == 1
        (tmp_path / ".unrelated.tmp").write_text("not ours")
        (tmp_path / f".{target.name}.x1y2.tmp").write_text("no owner in the name")
        if kind == "file":
            atomic_write(target, "new\n")
            assert target.read_text() == "new\n"
        else:
            with atomic_dir(target) as staging:
                (open(os.path.join(staging, "a.txt"), "w")).close()
            assert os.listdir(target) == ["a.txt"]
        assert set(_temp_files(tmp_path)) == mine | {".unrelated.tmp", f".{target.name}.x1y2.tmp"}
    finally:
        _kill(live)
    assert f"-{killed.pid}." in leftover[0] and f"-{live.pid}." in mine.pop()  # the owner's process id in the name


def test_train_removes_the_staging_folders_of_killed_checkpoint_saves(tmp_path, caplog):
    """The next run (find_checkpoint) removes a killed save's staging folder, never a live one's nor a checkpoint."""
    import logging

    from fastformer.training import resume

    killed = _holder("dir", tmp_path / "checkpoint-20")
    _kill(killed)
    live = _holder("dir", tmp_path / "checkpoint-30")
    try:
        (tmp_path / "checkpoint-10").mkdir()
        staging = {name: name.split(".")[1] for name in _temp_files(tmp_path)}
        assert sorted(staging.values()) == ["checkpoint-20", "checkpoint-30"]
        args = SimpleNamespace(output_dir=str(tmp_path), overwrite_output_dir=False, resume_from_checkpoint=None)
        with caplog.at_level(logging.INFO, logger="fastformer.training.resume"):
            resume.find_checkpoint(args)
        assert [staging[name] for name in _temp_files(tmp_path)] == ["checkpoint-30"]
        assert os.path.isdir(tmp_path / "checkpoint-10")
        assert any("removed the staging folders" in r.getMessage() for r in caplog.records)
    finally:
        _kill(live)
    from fastformer.fileio import remove_leftovers

    assert remove_leftovers(str(tmp_path), re.compile(r"checkpoint-\d+")) != []  # now dead: the next run removes it


def test_checkpoint_staging_names_its_owner(tmp_path, monkeypatch):
    from fastformer import encoding
    from fastformer.training.arguments import parse_args
    from fastformer.training.dataset import EncodedDataset
    from fastformer.training.trainer import FastformerTrainer
    from tiny_model import tiny_model

    model, tokenizer = tiny_model(CORPUS, seed=3)
    _, _, args = parse_args([os.path.join(ROOT, "configs", "tiny.json"), "--output_dir", str(tmp_path),
                             "--report_to", "none"])
    trainer = FastformerTrainer(model=model, args=args, train_dataset=EncodedDataset([[2, 3], [3]], [0, 4]),
                                tokenizer=tokenizer, data_collator=encoding.DataCollator(), num_labels=5)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    trainer.state.global_step = 10
    seen = []

    def dies(*args, **kwargs):
        seen.extend(_temp_files(tmp_path))
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_ckpt_func", dies)
    with pytest.raises(KeyboardInterrupt):
        trainer._save_checkpoint(trainer.model)
    assert len(seen) == 1 and re.fullmatch(rf"\.checkpoint-10\.[\w-]+-{os.getpid()}\.\w+\.tmp", seen[0])
    assert _temp_files(tmp_path) == []


def test_escape_characters_in_names_are_printed_escaped(model_dir, tmp_path, capfd):
    path = tmp_path / "a\x1b[31mb.txt"
    path.write_bytes(REVIEWS)
    out = tmp_path / "out\x1b]0;x\x07.jsonl"
    assert _predict(model_dir, "--input_file", str(path), "--output", str(out)) == 0
    err = capfd.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "a\\x1b[31mb.txt (one review per line): 2 predicted" in err and "out\\x1b]0;x\\x07.jsonl" in err

    def fails(argv):
        raise UserError(f"cannot read {tmp_path}/b\x1b[2Jc\u202e.txt")

    assert run_main(fails) == 2
    line = _one_error_line(capfd.readouterr().err)
    assert "\x1b" not in line and "\u202e" not in line and "b\\x1b[2Jc\\u202e.txt" in line
