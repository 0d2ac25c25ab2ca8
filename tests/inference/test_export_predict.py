"""Export -> Paddle Inference parity, Predictor behaviour (order, truncation, bad input, model folders) and predict.py.

One tiny model (built from a made-up corpus, no training, weights re-drawn at a trained model's scale so that the
exported graph's per-head attention pooling differs from a wrong one) is saved and exported once per module.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest

import fastformer  # noqa: F401
import paddle
from fastformer import encoding, model_folder
from fastformer.labels import label_maps, label_to_stars
from fastformer.inference.export import PARITY_TOLERANCE, ExportParityError, export_model, export_onnx
from fastformer.inference.folders import MANIFEST_FILE, detect_backend, find_model_files
from fastformer.inference.loader import load_predictor, predictor_from_args

import export_model as export_script
import predict as predict_script
import reference_numpy
from tiny_model import tiny_model

CORPUS = [
    "great product , works perfectly and the battery lasts all day .",
    "stopped working after two days , waste of money .",
    "the sound is fine but the cable is too short .",
    "i bought this for my office and it is ok .",
    "terrible keyboard , keys stick and the receiver broke .",
]
MAX_POSITIONS = 64
TEXTS = [
    "Great product!",
    "Stopped working after two days, waste of money.",
    "ok",
    "The sound is fine but the cable is too short. I bought this for my office and it is OK, the battery lasts.",
    "Terrible.",
    "works perfectly and the battery lasts all day " * 3,
    "keys stick",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_predict")
    model, tokenizer = tiny_model(CORPUS, seed=7, max_positions=MAX_POSITIONS)
    reference_numpy.realistic_weights(model, seed=7)
    model_dir, export_dir = str(root / "model"), str(root / "export")
    model_folder.save_model_dir(model, tokenizer, model_dir)
    assert export_script.main(["--model_dir", model_dir, "--output_dir", export_dir, "--max_length", "48"]) == 0
    return {"root": root, "model": model_dir, "export": export_dir}


@pytest.fixture(scope="module")
def inference(folders):
    return load_predictor(folders["export"], backend="inference", batch_size=4, precision="fp32")


@pytest.fixture(scope="module")
def dynamic(folders):
    return load_predictor(folders["model"], backend="dynamic", batch_size=4, max_length=48)


# --------------------------------------------------------------------------------------------------------- export
def test_export_folder_and_manifest(folders):
    files = set(os.listdir(folders["export"]))
    assert {"model.json", "model.pdiparams", "config.json", "vocab.txt", MANIFEST_FILE} <= files
    with open(os.path.join(folders["export"], MANIFEST_FILE)) as f:
        manifest = json.load(f)
    assert manifest["input_names"] == ["input_ids", "attention_mask"]
    assert manifest["model_file"] == "model.json" and manifest["params_file"] == "model.pdiparams"
    assert manifest["max_length"] == 48 and manifest["labels"] == ["1", "2", "3", "4", "5"]
    assert manifest["paddle_version"] == paddle.__version__ and manifest["paddlenlp_version"]
    parity = manifest["parity"]
    assert 0 <= parity["max_abs_logits_diff"] <= PARITY_TOLERANCE
    assert len(set(parity["token_lengths"])) > 3 and max(parity["token_lengths"]) == 48  # varied, one truncated


def test_exported_graph_has_no_dropout(folders):
    # eval-mode dropout is the identity: it must not cost a copy of every activation in the served graph
    from fastformer.inference.export import _op_names

    ops = _op_names(os.path.join(folders["export"], "model.json"))
    assert "matmul" in ops and "layer_norm" in ops  # the parser sees the program's operators
    assert "dropout" not in ops


def test_inference_matches_dynamic_model(inference, dynamic):
    assert inference.backend == "inference" and dynamic.backend == "dynamic"
    p_inf, p_dyn = inference.predict_proba(TEXTS), dynamic.predict_proba(TEXTS)
    assert p_inf.shape == (len(TEXTS), 5) and p_inf.dtype == np.float32
    np.testing.assert_allclose(p_inf.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(p_inf - p_dyn).max() <= 1e-5
    # logits straight from the dynamic model on one padded batch
    model, tokenizer = model_folder.load_model_dir(dynamic.model_dir)
    ids, mask = encoding.pad_batch(encoding.encode_texts(tokenizer, TEXTS, 48))
    ref = model(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)[0].numpy()
    assert np.abs(inference._runner.run(ids, mask) - ref).max() <= PARITY_TOLERANCE
    assert inference.labels == dynamic.labels == ["1", "2", "3", "4", "5"]


def test_exported_model_matches_the_numpy_reference(folders, inference):
    """The served graph (per-head pooling, Paddle Inference with oneDNN) against the paper's equations in numpy."""
    model, tokenizer = model_folder.load_model_dir(folders["model"])
    ids, mask = encoding.pad_batch(encoding.encode_texts(tokenizer, TEXTS, 48))
    expected = reference_numpy.logits({k: v.numpy() for k, v in model.state_dict().items()}, model.config, ids, mask)
    assert np.abs(inference._runner.run(ids, mask) - expected).max() <= PARITY_TOLERANCE


def _parity_batches(tokenizer, max_length=48):
    """The batches `check_parity` feeds: all PARITY_TEXTS padded together, then each alone."""
    from fastformer.inference.export import PARITY_TEXTS

    ids = encoding.encode_texts(tokenizer, PARITY_TEXTS, max_length)
    return [encoding.pad_batch(ids, tokenizer.pad_token_id)] + [encoding.pad_batch([seq], tokenizer.pad_token_id) for seq in ids]


def test_parity_check_measures_a_real_mismatch(folders):
    """check_parity reports the true logits difference between the exported graph and a dynamic model whose
    parameters were perturbed after the export (not a figure that is small whatever the outputs)."""
    from fastformer.inference.export import check_parity

    model, tokenizer = model_folder.load_model_dir(folders["model"])
    model_file, params_file = find_model_files(folders["export"])
    files = [os.path.join(folders["export"], f) for f in (model_file, params_file)]
    exact = check_parity(model, tokenizer, *files, max_length=48)
    assert exact["max_abs_logits_diff"] <= PARITY_TOLERANCE
    batches = _parity_batches(tokenizer)

    def dynamic_logits():
        with paddle.no_grad():
            return [model(paddle.to_tensor(i), paddle.to_tensor(m), return_dict=False)[0].numpy() for i, m in batches]

    before = dynamic_logits()
    weight = model.fastformer.layers[0].attention.query.weight
    rng = np.random.default_rng(0)
    weight.set_value(weight + paddle.to_tensor(rng.normal(0, 1e-3, weight.shape).astype("float32")))
    after = dynamic_logits()
    moved = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    drifted = check_parity(model, tokenizer, *files, max_length=48)
    assert moved > 10 * PARITY_TOLERANCE
    assert abs(drifted["max_abs_logits_diff"] - moved) <= 2 * PARITY_TOLERANCE
    assert all(abs(d - moved) <= 2 * PARITY_TOLERANCE for d in drifted["by_backend"].values())


def test_parity_failure_is_loud_and_leaves_no_manifest(folders, tmp_path, monkeypatch):
    # The dynamic model drifts from the graph just saved (parameters perturbed right after paddle.jit.save): a real
    # mismatch, caught at the default tolerance.
    save = paddle.jit.save

    def save_then_drift(layer, path, *args, **kwargs):
        save(layer, path, *args, **kwargs)
        for param in layer.parameters():
            param.set_value(param + 1e-3)

    monkeypatch.setattr(paddle.jit, "save", save_then_drift)
    out = str(tmp_path / "bad_export")
    with pytest.raises(ExportParityError, match="does not match"):
        export_model(folders["model"], out, log=lambda *a: None)
    assert os.listdir(tmp_path) == []  # neither the export nor its staging folder
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(out)


def test_failed_reexport_keeps_the_old_export(folders, inference, tmp_path, monkeypatch, capsys):
    """A re-export that fails midway (the disk full when the manifest is written) leaves the previous export
    complete and loadable, byte for byte, and no staging folder behind."""
    from fastformer.inference import export as export_module
    from fastformer.cli import run_main

    out = tmp_path / "export"
    shutil.copytree(folders["export"], out)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}

    def disk_full(path, obj, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(export_module, "write_json", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        export_model(folders["model"], str(out), max_length=48, log=lambda *a: None, precision="fp32")
    assert run_main(export_script.main, ["--model_dir", folders["model"], "--output_dir", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["export"]
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    np.testing.assert_array_equal(load_predictor(str(out), precision="fp32").predict_proba(TEXTS),
                                  inference.predict_proba(TEXTS))
    monkeypatch.undo()
    # a re-export that succeeds replaces the folder whole (the old one had no other files: it is not kept) ...
    export_model(folders["model"], str(out), max_length=48, log=lambda *a: None, precision="fp32")
    assert os.listdir(tmp_path) == ["export"] and set(os.listdir(out)) == set(before)
    # ... and keeps an old folder that holds other files, renamed, saying so
    (out / "notes.txt").write_text("mine")
    logged = []
    export_model(folders["model"], str(out), max_length=48, log=logged.append, precision="fp32")
    (kept,) = [name for name in os.listdir(tmp_path) if name != "export"]
    assert kept.startswith("export.replaced-") and (tmp_path / kept / "notes.txt").read_text() == "mine"
    assert set(os.listdir(out)) == set(before) and f"kept as {tmp_path / kept}" in logged[-1]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="no paddle2onnx for Python 3.13 (docs/python_versions.md)")
def test_onnx_export_matches_the_model(folders, tmp_path):
    export = folders["export"]
    with open(os.path.join(export, MANIFEST_FILE)) as f:
        max_length = json.load(f)["max_length"]
    model, tokenizer = model_folder.load_model_dir(folders["model"])
    ids, mask = encoding.pad_batch(encoding.encode_texts(tokenizer, TEXTS, max_length))
    ref = model(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)[0].numpy()
    save = str(tmp_path / "model.onnx")
    result = export_onnx(os.path.join(export, "model.json"), os.path.join(export, "model.pdiparams"), save,
                         check_inputs=[ids, mask], reference_logits=ref)
    # paddle2onnx 2.1.0 converts the exported graph, and onnx's reference evaluator reproduces the logits.
    assert result["status"] == "ok", result
    assert result["max_abs_logits_diff"] <= 1e-5
    assert os.path.isfile(save)


# ------------------------------------------------------------------------------------------------------ predictor
def test_order_preserved_under_length_sorting(inference):
    batched = inference.predict_proba(TEXTS)  # batch_size 4: sorted by length, two batches
    one_by_one = np.concatenate([inference.predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    results = inference.predict(TEXTS)
    assert [r["label"] for r in results] == [inference.labels[int(p.argmax())] for p in one_by_one]
    assert all(r["rating"] == int(r["label"]) and r["error"] is None for r in results)


def test_overlong_text_is_truncated_and_flagged(folders):
    predictor = load_predictor(folders["export"], max_length=8, precision="fp32")
    long_text = " ".join(["great"] * 20)
    short, long = predictor.predict(["great product", long_text])
    assert short["truncated_tokens"] == 0 and long["truncated_tokens"] == 12
    exact = predictor.predict([" ".join(["great"] * 8)])[0]
    assert exact["truncated_tokens"] == 0
    # what is kept is the first max_length tokens
    np.testing.assert_allclose(predictor.predict_proba([long_text]), predictor.predict_proba([" ".join(["great"] * 8)]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="max_length"):
        load_predictor(folders["export"], max_length=MAX_POSITIONS + 1)


def test_bad_items_get_errors_and_others_are_predicted(inference):
    results = inference.predict(["Great product!", "", "   \t", 5, "Terrible."])
    assert [r["error"] is None for r in results] == [True, False, False, False, True]
    assert results[1]["error"] == "empty text" and "whitespace" in results[2]["error"]
    assert "string" in results[3]["error"] and results[3]["probabilities"] is None
    assert results[0]["probabilities"] is not None and abs(sum(results[0]["probabilities"].values()) - 1) < 1e-5
    assert inference.predict([]) == []
    with pytest.raises(ValueError, match=r"indices \[1\]"):
        inference.predict_proba(["fine", " "])


def test_missing_or_incomplete_model_folder(folders, tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(missing, backend="dynamic")
    broken = str(tmp_path / "broken_export")
    shutil.copytree(folders["export"], broken)
    os.remove(os.path.join(broken, "model.pdiparams"))
    with pytest.raises(FileNotFoundError, match="model.pdiparams"):
        load_predictor(broken)
    os.remove(os.path.join(broken, "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        load_predictor(broken, backend="inference")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="neither an export"):
        load_predictor(str(empty))
    with pytest.raises(FileNotFoundError, match="model_state.pdparams"):
        load_predictor(str(empty), backend="dynamic")
    with pytest.raises(ValueError, match="backend"):
        load_predictor(folders["export"], backend="onnx")


def test_model_file_detection(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither"):
        detect_backend(str(tmp_path))
    (tmp_path / "model.pdmodel").write_bytes(b"")
    assert find_model_files(str(tmp_path)) == ("model.pdmodel", "model.pdiparams")  # legacy program
    (tmp_path / "model.json").write_text("{}")
    assert find_model_files(str(tmp_path)) == ("model.json", "model.pdiparams")  # Paddle 3 PIR preferred
    assert find_model_files(str(tmp_path), {"model_file": "x.pdmodel", "params_file": "x.pdiparams"}) == (
        "x.pdmodel", "x.pdiparams")
    assert detect_backend(str(tmp_path)) == "inference"


def test_gpu_without_cuda_is_a_clear_error(folders):
    if paddle.device.is_compiled_with_cuda():
        pytest.skip("this Paddle has CUDA")
    with pytest.raises(RuntimeError, match="CPU-only"):
        load_predictor(folders["export"], device="gpu")


# ------------------------------------------------------------------------------------------------------ predict.py
def _jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_file_with_bad_lines(folders, inference, tmp_path, capsys):
    lines = [b"Great product!", b"", b"   ", b"broken \xff\xfe bytes", "caf\u00e9 was fine, works".encode(),
             b"Terrible."]
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    out = tmp_path / "out.jsonl"
    rc = predict_script.main(["--model_dir", folders["export"], "--input_file", str(path), "--format", "jsonl",
                              "--output", str(out), "--batch_size", "2", "--precision", "fp32"])
    assert rc == 1  # some lines failed: status 1, after every good line was written
    records = _jsonl(out.read_text(encoding="utf-8"))
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5, 6]
    errors = {r["line"]: r["error"] for r in records if r["error"]}
    assert set(errors) == {2, 3, 4}
    assert all(errors[n].startswith(f"line {n}:") for n in errors) and "UTF-8" in errors[4]
    good = [r for r in records if not r["error"]]
    expected = inference.predict([r["text"] for r in good])
    assert [r["text"] for r in good] == ["Great product!", "caf\u00e9 was fine, works", "Terrible."]
    for record, want in zip(good, expected):
        assert record["rating"] == want["rating"]
        assert abs(record["probabilities"]["1"] - want["probabilities"]["1"]) < 1e-5
    assert "3 predicted, 3 with errors" in capsys.readouterr().err


def test_predict_jsonl_input_from_stdin(folders, monkeypatch, capsys):
    data = b"\n".join([
        b'{"id": "a", "text": "Great product!"}',
        b'{"id": "b", "text": 3}',
        b"{not json",
        b'{"id": "d"}',
        b'{"id": "e", "text": ""}',
        b'{"id": "f", "text": "Stopped working after two days."}',
    ]) + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert predict_script.main(["--model_dir", folders["export"], "--format", "jsonl", "-"]) == 1  # bad lines
    records = _jsonl(capsys.readouterr().out)
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0]["id"] == "a" and records[5]["id"] == "f"
    assert records[0]["error"] is None and records[5]["error"] is None and records[0]["rating"] in range(1, 6)
    assert "not a string" in records[1]["error"] and "JSON" in records[2]["error"]
    assert "'text'" in records[3]["error"] and "empty" in records[4]["error"]


def test_predict_text_arguments_table_and_jsonl(folders, inference, capsys):
    texts = ["Great sound, works perfectly.", "Broke after a week."]
    assert predict_script.main(["--model_dir", folders["export"], "--precision", "fp32", *texts]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["#", "rating", "conf", "trunc", "unk", "text"] and len(table) == 4
    want = inference.predict(texts)
    assert table[2].split()[:2] == ["0", str(want[0]["rating"])] and texts[1] in table[3]
    assert predict_script.main(["--model_dir", folders["model"], "--backend", "dynamic", "--format", "jsonl",
                                "--max_length", "48", *texts]) == 0
    records = _jsonl(capsys.readouterr().out)
    assert [r["index"] for r in records] == [0, 1] and [r["rating"] for r in records] == [w["rating"] for w in want]


def test_predict_errors_are_clear(folders, tmp_path, capsys):
    from fastformer.cli import run_main

    assert run_main(predict_script.main, ["--model_dir", str(tmp_path / "nope"), "hello"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_main(predict_script.main, ["--model_dir", folders["export"], "--input_file",
                                          str(tmp_path / "none.txt")]) == 2
    assert "none.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict_script.main(["--model_dir", folders["export"]])  # no input at all
    with pytest.raises(SystemExit):
        predict_script.main(["--model_dir", folders["export"], "--batch_size", "0", "hi"])
    with pytest.raises(SystemExit):
        predict_script.main(["--help"])
    assert "Exit status" in capsys.readouterr().out


def test_predictor_flags_are_shared(folders):
    import argparse

    import evaluate
    import serve
    from fastformer.inference.args import add_predictor_args

    flags = {"--backend", "--device", "--num_threads", "--batch_size", "--max_length", "--no_onednn"}
    parser = add_predictor_args(argparse.ArgumentParser())
    assert flags <= set(parser._option_string_actions)
    argv = ["--model_dir", folders["export"], "--batch_size", "3", "--max_length", "16", "--no_onednn"]
    for args in (predict_script.parse_args(argv + ["hi"]), evaluate.parse_args(argv), serve.parse_args(argv)):
        predictor = predictor_from_args(args)
        assert (predictor.batch_size, predictor.max_length, predictor.enable_mkldnn) == (3, 16, False)


def test_truncation_length_is_recorded_in_the_model_folder(folders, tmp_path):
    model, tokenizer = model_folder.load_model_dir(folders["model"])
    assert tokenizer.model_max_length == MAX_POSITIONS  # saved without max_length: max_position_embeddings
    trained = str(tmp_path / "trained")
    model_folder.save_model_dir(model, tokenizer, trained, max_length=24)
    assert tokenizer.model_max_length == MAX_POSITIONS  # the caller's tokenizer is left as it was
    with open(os.path.join(trained, "tokenizer_config.json")) as f:
        assert json.load(f)["model_max_length"] == 24
    assert model_folder.load_model_dir(trained)[1].model_max_length == 24
    assert load_predictor(trained).max_length == 24 and load_predictor(trained, max_length=40).max_length == 40
    export = str(tmp_path / "export")
    manifest = export_model(trained, export, log=lambda *a: None)
    assert manifest["max_length"] == 24 and load_predictor(export).max_length == 24
    with open(os.path.join(export, "tokenizer_config.json")) as f:
        assert json.load(f)["model_max_length"] == 24
    with pytest.raises(ValueError, match="max_length"):
        model_folder.save_model_dir(model, tokenizer, str(tmp_path / "bad"), max_length=MAX_POSITIONS + 1)
    # a folder without the tokenizer config is incomplete (a cased tokenizer would reload lower-casing)
    os.remove(os.path.join(trained, "tokenizer_config.json"))
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json"):
        model_folder.load_model_dir(trained)


def test_label_to_stars():
    assert label_to_stars(label_maps()[0]) == [1, 2, 3, 4, 5]
    assert label_to_stars(["1", "2", "3"]) == [1, 2, 3]
    with pytest.raises(ValueError, match="not star ratings"):
        label_to_stars({0: "negative", 1: "positive"})
    with pytest.raises(ValueError, match="LABEL_0"):
        label_to_stars(["LABEL_0", "1"])


def test_line_reader_detects_jsonl_after_blank_lines_and_keeps_numbers():
    data = b"\xef\xbb\xbf\n  \n" + b'{"text": "fine"}\r\n' + b"plain text line\n" + b"\x80\n"
    records, jsonl = predict_script.parse_records(predict_script.read_lines(data))
    assert jsonl and [r["line"] for r in records] == [1, 2, 3, 4, 5]
    assert [bool(r["error"]) for r in records] == [True, True, False, True, True]
    assert records[2]["text"] == "fine" and "JSON" in records[3]["error"] and "UTF-8" in records[4]["error"]
    records, jsonl = predict_script.parse_records(predict_script.read_lines(b"a review\n{\"text\": \"x\"}"))
    assert not jsonl and [r["text"] for r in records] == ["a review", '{"text": "x"}']
