"""When the compiled training kernels (fastformer/cpu_ops.py) are built: never for an eval-mode forward (inference needs
no compiler), and once for two checkouts of the same source (the build is keyed by the source, not its path)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EVAL_FORWARD = """
import os, paddle
from tiny_model import tiny_model
from fastformer import cpu_ops
model, tokenizer = tiny_model(["good sound", "bad cable"], seed=1)
model.eval()
ids = paddle.to_tensor([tokenizer("good sound")["input_ids"]])
model(ids).logits.sum().backward()  # gradients on, as an explanation would take them: still no build
print("attempted", cpu_ops._module is not None or cpu_ops._error is not None)
print("cache", sorted(os.listdir(os.environ["FASTFORMER_OPS_CACHE"])))
"""
BUILD = """
from fastformer import cpu_ops
print("available", cpu_ops.available(), cpu_ops.build_dir())
"""


def _python(code: str, cache, pythonpath: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FASTFORMER_OPS_CACHE=str(cache), PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(cache.parent),
                          timeout=900)


def test_an_eval_mode_forward_builds_nothing(tmp_path):
    cache = tmp_path / "ops_cache"
    cache.mkdir()
    done = _python(EVAL_FORWARD, cache, os.pathsep.join([ROOT, TESTS]))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "attempted False" in done.stdout and "cache []" in done.stdout, done.stdout


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler")
def test_two_checkouts_of_the_same_source_share_one_build(tmp_path):
    cache = tmp_path / "ops_cache"
    checkouts = []
    for name in ("checkout_a", "checkout_b"):
        shutil.copytree(os.path.join(ROOT, "fastformer"), tmp_path / name / "fastformer",
                        ignore=shutil.ignore_patterns("__pycache__"))
        checkouts.append(str(tmp_path / name))
    first = _python(BUILD, cache, checkouts[0])
    assert first.returncode == 0 and "available True" in first.stdout, first.stderr[-3000:]
    build = first.stdout.split()[-1]
    built = {os.path.join(folder, f): os.stat(os.path.join(folder, f)).st_mtime_ns
             for folder, _, files in os.walk(build) for f in files if f.endswith((".so", "version.txt"))}
    assert any(f.endswith(".so") for f in built), built
    second = _python(BUILD, cache, checkouts[1])
    assert second.returncode == 0 and second.stdout.split()[-1] == build, second.stderr[-3000:]
    assert "Compiling" not in second.stdout + second.stderr and "ccache" not in first.stderr + second.stderr
    assert {f: os.stat(f).st_mtime_ns for f in built} == built  # not rebuilt
