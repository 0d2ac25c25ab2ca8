"""Start-up: every script answers --help without importing paddle, PaddleNLP, scikit-learn or PyTorch (checked with
`python -X importtime`, which lists every module a process imports); train.py's stored help is the live parser's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastformer.training import stored_help

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = ("train.py", "evaluate.py", "export_model.py", "predict.py", "serve.py")
HEAVY = ("paddle", "paddlenlp", "sklearn", "torch")


def imported_modules(stderr: str) -> set:
    """Module names of `-X importtime` lines: 'import time: self | cumulative |   name'."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_does_not_import_paddle(script):
    done = subprocess.run([sys.executable, "-X", "importtime", script, "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {script}")
    modules = imported_modules(done.stderr)
    assert "fastformer" in modules  # the check sees the imports
    assert not {m for m in modules if m.split(".")[0] in HEAVY}, sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_stored_train_help_is_the_live_parsers(monkeypatch):
    monkeypatch.setenv("COLUMNS", str(stored_help.WIDTH))
    from fastformer.training.arguments import build_parser

    live = build_parser(prog=stored_help.PROG).format_help()
    assert stored_help.stored_help(stored_help.PROG) == live, "run: python -m tools.train_help"


def test_train_help_with_a_config_and_flags_is_the_stored_text():
    done = subprocess.run([sys.executable, "train.py", "configs/tiny.json", "--learning_rate", "1", "-h"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0 and done.stdout == stored_help.stored_help("train.py")


def test_asks_for_help_reads_argv_as_argparse_does():
    assert stored_help.asks_for_help(["--help"]) and stored_help.asks_for_help(["c.json", "--x", "1", "-h"])
    assert not stored_help.asks_for_help(["c.json", "--output_dir", "out"])
    assert not stored_help.asks_for_help(["--", "--help"])  # after '--' it is a value


QUIET_IMPORTS = """
import ctypes, os
import fastformer.training  # a training process: sets the thread counts
import paddle, paddlenlp.transformers, paddlenlp.trainer
paddle.matmul(paddle.ones([64, 64]), paddle.ones([64, 64]))
iomp = ctypes.CDLL(os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so"))
print(os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"], iomp.omp_get_max_threads())
"""


def test_a_training_process_loads_paddle_without_third_party_warnings_and_with_its_threads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PADDLE_LOCAL_SIZE")}
    done = subprocess.run([sys.executable, "-c", QUIET_IMPORTS], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for message in ("No ccache found", "distutils", "PyTorch version", "OMP_NUM_THREADS set to", "Warning"):
        assert message not in done.stderr, done.stderr[-2000:]
    cores = str(os.cpu_count() or 1)
    assert done.stdout.split() == [cores, cores, cores]  # paddle alone would leave OpenMP at 1 thread
