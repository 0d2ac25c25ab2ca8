"""Model and export folders received from others: config.json checked against the allowed values and the weights'
shapes before anything is built (bounded memory and time, one line, exit 2), and every weight finite."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastformer  # noqa: F401  (before paddle)
from fastformer import model_folder
from fastformer.cli import UserError
from fastformer.configuration import FastformerConfig
from fastformer.inference.export import export_model
from fastformer.inference.graph import export_graph
from fastformer.fileio import file_sha256, write_checksums
from fastformer.inference.folders import MANIFEST_FILE
from fastformer.inference.loader import load_predictor
from fastformer.weight_files import check_finite, pdiparams_tensors, safetensors_tensors
from tiny_model import saved_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = ["great sound and battery", "broke after a week", "ok for the price", "terrible cable , do not buy"]
MEMORY_LIMIT = 4 << 30  # address space of a probed script: predicting with the tiny model needs under 2 GiB


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("received")
    model, _ = saved_tiny_model(str(root / "model"), CORPUS, seed=5)
    export_model(str(root / "model"), str(root / "export"), log=lambda *a: None, precision="fp32",
                 parity_texts=["great sound", "broke after a week , bad"])
    graph = export_graph(model)  # the tensors the export holds: the exported network's
    return {"model": str(root / "model"), "export": str(root / "export"),
            "shapes": {name: tuple(value.shape) for name, value in graph.state_dict().items()}}


def _copy_with_config(source, target, **changes):
    shutil.copytree(source, target)
    path = os.path.join(target, "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config.update(changes)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return str(target)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _child(args, timeout=300):
    """`python ARGS` from the repository root with at most MEMORY_LIMIT of address space, one thread, a time limit."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limit_memory)


def _predict(model_dir):
    """predict.py on one text, in a bounded child: (exit status, its error line, stdout). Besides that line, stderr
    holds only the warnings of the libraries' imports, never a traceback."""
    proc = _child(["predict.py", "--model_dir", model_dir, "--precision", "fp32", "--num_threads", "1", "great sound"])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("predict.py: error: ")]
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr[-3000:]
    return proc.returncode, errors[0], proc.stdout


# Hostile config values, and what the one-line error must say. 1e8 is a float in JSON: not a size at all.
PROBES = {
    "num_hidden_layers": (100000, r"num_hidden_layers 100000 does not fit"),
    "vocab_size": (1e8, r"vocab_size must be a positive integer, got 100000000\.0"),
    "vocab_size_int": (10**8, r"vocab_size 100000000 (does not fit|differs from the manifest)"),
    "hidden_size": (10**6, r"hidden_size 1000000 does not fit|with hidden_size 1000000\) does not fit"),
    "max_position_embeddings": (10**9, r"max_position_embeddings 1000000000 (does not fit|differs from the manifest)"),
    "hidden_act": ("os.system", r"hidden_act must be one of \(.*'gelu'.*\), got 'os\.system'"),
}

# Loads every probed folder in one child (one Paddle start), each with a direct call: the error or what loaded.
_LOAD_ALL = """
import json, sys
import fastformer
from fastformer.cli import UserError
from fastformer.inference.loader import load_predictor
results = {}
for folder in sys.argv[1:]:
    try:
        load_predictor(folder, precision="fp32", num_threads=1)
        results[folder] = "loaded"
    except UserError as exc:
        results[folder] = "UserError: " + str(exc)
    except BaseException as exc:
        results[folder] = type(exc).__name__ + ": " + str(exc)[:300]
print("RESULTS " + json.dumps(results))
"""


def test_config_is_checked_before_anything_is_built(folders, tmp_path):
    """Every probe on both folder kinds, in a child bounded to MEMORY_LIMIT of address space and a time limit (the
    probes took 13-14.5 GB and minutes unchecked): a one-line UserError naming config.json and the field."""
    probed = {}
    for kind in ("model", "export"):
        for probe, (value, pattern) in PROBES.items():
            folder = _copy_with_config(folders[kind], tmp_path / f"{kind}_{probe}", **{probe.replace("_int", ""): value})
            probed[folder] = pattern
    proc = _child(["-c", _LOAD_ALL, *probed], timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.split("RESULTS ", 1)[1])
    for folder, pattern in probed.items():
        message = results[folder]
        assert message.startswith(f"UserError: {folder}/config.json: ") and "\n" not in message, (folder, message)
        assert re.search(pattern, message), (folder, message)
    # the scripts: exit 2 and that one line
    folder = str(tmp_path / "model_num_hidden_layers")
    status, error, _ = _predict(folder)
    assert status == 2 and re.fullmatch(rf"predict\.py: error: {re.escape(folder)}/config\.json: num_hidden_layers "
                                        r"100000 does not fit .*model\.safetensors, which holds 1 layer\(s\)", error)


def test_config_must_describe_the_weights_tensor_for_tensor(folders, tmp_path):
    # a flag that adds tensors the file does not hold (the value projection would start random)
    folder = _copy_with_config(folders["model"], tmp_path / "value", use_value_projection=True)
    with pytest.raises(UserError, match=r"model\.safetensors: its tensors are not those of the model config\.json "
                                        r"describes \(2 tensor\(s\) missing, e\.g\. "
                                        r"fastformer\.layers\.0\.attention\.value\.bias\)"):
        model_folder.load_model_dir(folder)
    # more labels than the classifier has
    labels = {str(i): str(i + 1) for i in range(6)}
    for kind in ("model", "export"):
        folder = _copy_with_config(folders[kind], tmp_path / f"labels_{kind}", id2label=labels,
                                   label2id={v: int(k) for k, v in labels.items()})
        with pytest.raises(UserError, match=r"config\.json: num_labels 6 .*does not fit"):
            load_predictor(folder, precision="fp32")
    # a config.json far larger than any config is not read
    folder = _copy_with_config(folders["model"], tmp_path / "huge", padding="x" * (2 << 20))
    with pytest.raises(UserError, match=r"config\.json: \d+ bytes, not a model config"):
        model_folder.load_model_dir(folder)


@pytest.mark.parametrize("changes, pattern", [
    ({"vocab_size": 1e8}, r"vocab_size must be a positive integer"),
    ({"num_hidden_layers": 0}, r"num_hidden_layers must be a positive integer"),
    ({"hidden_act": "os.system"}, r"hidden_act must be one of"),
    ({"hidden_dropout_prob": 1.5}, r"hidden_dropout_prob must be a number in \[0, 1\)"),
    ({"layer_norm_eps": -1.0}, r"layer_norm_eps must be a positive number"),
    ({"use_value_projection": "yes"}, r"use_value_projection must be true or false"),
    ({"pad_token_id": 40, "vocab_size": 30}, r"pad_token_id must be a token id in \[0, vocab_size = 30\)"),
    ({"num_labels": 0}, r"num_labels must be a positive integer"),
    ({"hidden_size": 18, "num_attention_heads": 4}, r"hidden_size \(18\) must be a multiple of num_attention_heads"),
])
def test_config_rejects_values_it_cannot_describe_a_model_with(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        FastformerConfig(**changes)


# ------------------------------------------------------------------------------------------------ finite weights
def _poison_model(source, target, name):
    """A copy of model folder `source` whose tensor `name` holds one NaN, its checksum recomputed."""
    shutil.copytree(source, target)
    path = os.path.join(target, model_folder.WEIGHTS_FILE)
    with open(path, "r+b") as f:
        f.seek(safetensors_tensors(path)[name].offset + 4)
        f.write(np.float32("nan").tobytes())
    write_checksums(str(target), [model_folder.WEIGHTS_FILE])
    return str(target)


def _poison_export(source, target, shape):
    """A copy of export folder `source` whose first tensor of `shape` holds one Inf, the manifest's SHA-256 redone."""
    shutil.copytree(source, target)
    params = os.path.join(target, "model.pdiparams")
    tensor = next(t for t in pdiparams_tensors(params) if t.shape == shape)
    with open(params, "r+b") as f:
        f.seek(tensor.offset)
        f.write(np.float32("inf").tobytes())
    manifest_path = os.path.join(target, MANIFEST_FILE)
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["sha256"]["model.pdiparams"] = file_sha256(params)
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return str(target)


@pytest.mark.parametrize("name", ["fastformer.pooler.att_fc1.weight", "fastformer.pooler.att_fc2.weight"])
def test_model_folder_with_non_finite_weights_is_refused(folders, tmp_path, name):
    folder = _poison_model(folders["model"], tmp_path / "nan", name)
    with pytest.raises(UserError, match=rf"model\.safetensors: tensor {name} \[16, \d+\] holds 1 non-finite"):
        load_predictor(folder, precision="fp32")
    status, error, stdout = _predict(folder)
    assert status == 2 and name in error and not stdout.strip()  # no rating


def test_export_with_non_finite_weights_is_refused(folders, tmp_path):
    folder = _poison_export(folders["export"], tmp_path / "inf", (16, 1))  # att_fc2's weight
    with pytest.raises(UserError, match=r"model\.pdiparams: tensor \S+ \[16, 1\] holds 1 non-finite"):
        load_predictor(folder, precision="fp32")
    status, error, stdout = _predict(folder)
    assert status == 2 and "model.pdiparams: tensor" in error and not stdout.strip()


def test_pdiparams_reader_finds_every_tensor_of_the_export(folders):
    export = folders["export"]
    tensors = pdiparams_tensors(os.path.join(export, "model.pdiparams"), os.path.join(export, "model.json"))
    assert sorted(t.shape for t in tensors) == sorted(folders["shapes"].values())
    assert all(not t.name.startswith("tensor ") for t in tensors)  # named from the program
    last = tensors[-1]
    assert last.offset + last.nbytes == os.path.getsize(os.path.join(export, "model.pdiparams"))
    check_finite(os.path.join(export, "model.pdiparams"), tensors)  # the good export passes


def test_weight_file_readers_refuse_damaged_headers(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(UserError, match=r"bad\.safetensors: not a safetensors file \(header length"):
        safetensors_tensors(str(bad))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4000000]}}).encode()
    bad.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(UserError, match=r"tensor 'w' of shape \(1000, 1000\) .*does not fit its byte range"):
        safetensors_tensors(str(bad))
    params = tmp_path / "bad.pdiparams"
    params.write_bytes(struct.pack("<IQIi", 0, 0, 0, 5) + b"\x08\x05\x10\xe8\x07" + bytes(8))  # FP32 [1000]: 8 bytes
    with pytest.raises(UserError, match=r"bad\.pdiparams: not a Paddle params file: tensor 0 .*needs 4000 bytes"):
        pdiparams_tensors(str(params))


def test_bf16_non_finite_values_are_found(tmp_path):
    values = np.array([0x3F80, 0x7FC0, 0x4000], dtype="<u2")  # bf16 1.0, NaN, 2.0
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + values.tobytes())
    with pytest.raises(UserError, match=r"tensor w \[3\] holds 1 non-finite"):
        check_finite(str(path), list(safetensors_tensors(str(path)).values()))
