"""`fastformer.env.keep_freed_memory`: a Paddle Inference runner on CPU keeps the memory of its activations between
forward passes instead of page-faulting it in again each time (glibc's mallopt). Each case runs in a fresh process,
since the setting is process-wide; the page faults of a forward pass are counted, not timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import paddle

from fastformer import model_folder
from fastformer.inference.export import export_model
from fastformer.tokenizer import FastformerTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = ["great sound and battery", "broke after a week", "works fine for the price"]

_CHILD = r"""
import json, resource, sys
import numpy as np
from fastformer import env
if sys.argv[2] == "off":
    env._kept.append(False)  # as if it never applied: glibc's defaults
from fastformer.inference.runners import InferenceRunner
runner = InferenceRunner(sys.argv[1] + "/model.json", sys.argv[1] + "/model.pdiparams", num_threads=1)
ids = np.random.default_rng(0).integers(1, 10, (64, 128)).astype("int64")  # activations of 8 MiB each
mask = np.ones_like(ids)
for _ in range(3):
    runner.run(ids, mask)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    runner.run(ids, mask)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
print(json.dumps({"faults": faults, "kept": env._kept[0]}))
"""


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    tokenizer = FastformerTokenizer.build_from_corpus(CORPUS, min_freq=1)
    paddle.seed(3)
    model = model_folder.build_model(tokenizer, hidden_size=256, num_attention_heads=16, intermediate_size=256,
                                     num_hidden_layers=1, max_position_embeddings=128)  # the paper's width
    model_folder.save_model_dir(model, tokenizer, str(root / "model"))
    export_model(str(root / "model"), str(root / "export"), max_length=128, log=lambda *a: None, precision="fp32")
    return str(root / "export")


def _faults(export: str, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS="1", GLOG_minloglevel="2", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", _CHILD, export, mode], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # {"faults": per pass, "kept": applied}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_forward_passes_reuse_their_memory(export_dir):
    kept, default = _faults(export_dir, "on"), _faults(export_dir, "off")
    assert kept["kept"] is True and default["kept"] is False
    assert default["faults"] > 5000  # glibc's defaults: the activations come back from the system each pass
    assert kept["faults"] < default["faults"] / 4


def test_a_users_malloc_settings_are_kept(monkeypatch):
    from fastformer import env

    monkeypatch.setattr(env, "_kept", [])
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert env.keep_freed_memory() is False and env.keep_freed_memory() is False  # decided once
