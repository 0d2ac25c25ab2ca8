"""Prediction and serving faults: bad input, damaged models and hostile text in predict.py, evaluate.py and
serve.py. One tiny random-weight model (saved, exported, and a copy with NaN weights) per module."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

import fastformer  # noqa: F401
from fastformer import model_folder
from fastformer.cli import run_main
from fastformer.inference.predictor import NonFiniteOutputError, Predictor
from fastformer.inference.loader import load_predictor

import evaluate
import export_model as export_script
import predict
import serve
from tiny_model import saved_tiny_model

CORPUS = ["great product , works perfectly and the battery lasts all day .",
          "stopped working after two days , waste of money .", "the sound is fine but the cable is too short ."]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_serve")
    model_dir, export_dir, nan_dir = str(root / "model"), str(root / "export"), str(root / "nan_model")
    model, tokenizer = saved_tiny_model(model_dir, CORPUS, seed=5)
    assert export_script.main(["--model_dir", model_dir, "--output_dir", export_dir, "--max_length", "48"]) == 0
    positions = model.fastformer.embeddings.position_embeddings.weight.numpy().tobytes()
    # Finite weights that overflow: the layer's output LayerNorm scale at float32's largest value makes its outputs
    # Inf, and the logits NaN (weights that are themselves NaN are refused when the folder loads).
    scale = model.fastformer.layers[0].output.layer_norm.weight
    scale.set_value(np.full(scale.shape, np.finfo("float32").max, dtype="float32"))
    model_folder.save_model_dir(model, tokenizer, nan_dir)  # saved the ordinary way
    return {"root": root, "model": model_dir, "export": export_dir, "nan": nan_dir, "positions": positions}


@pytest.fixture(scope="module")
def inference(folders):
    return load_predictor(folders["export"], batch_size=8, precision="fp32")


def _predict(argv, folders, model="export"):
    return run_main(predict.main, ["--model_dir", folders[model], *argv])


def _jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _error_line(err):
    """The one `<prog>: error: ...` line of a user error (library log lines aside), without a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------ 1. output = input, atomic
def test_output_that_is_the_input_is_refused_under_any_name(folders, tmp_path, monkeypatch, capsys):
    same = tmp_path / "same.txt"
    same.write_text("great product\nbroke after a week\n")
    os.link(same, tmp_path / "hard.txt")
    os.symlink(same, tmp_path / "soft.txt")
    for output in ("same.txt", "hard.txt", "soft.txt", "./sub/../same.txt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        rc = _predict(["--input_file", str(same), "--output", str(tmp_path / output), "--format", "jsonl"], folders)
        assert rc == 2 and "is the input file" in capsys.readouterr().err
    # standard input redirected from the file, and standard output appended to the input (it would read itself)
    with open(same, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        assert _predict(["-", "--output", str(tmp_path / "hard.txt")], folders) == 2
    with open(same, "a") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert _predict(["--input_file", str(same)], folders) == 2
    monkeypatch.undo()
    assert "standard output is the input file" in capsys.readouterr().err
    assert same.read_text() == "great product\nbroke after a week\n"  # nothing lost
    assert _predict(["--input_file", str(same), "--output", str(tmp_path / "out.jsonl")], folders) == 0


def test_interrupted_prediction_keeps_the_old_output(folders, tmp_path, monkeypatch):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("great product\nbroke after a week\nthe sound is fine\nok\n")
    out = tmp_path / "preds.jsonl"
    out.write_text("previous predictions\n")
    calls = []
    real = Predictor.predict

    def predict_then_interrupt(self, texts):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, texts)

    monkeypatch.setattr(predict, "CHUNK", 2)  # two chunks: the first is written before the interrupt
    monkeypatch.setattr(Predictor, "predict", predict_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _predict(["--input_file", str(reviews), "--format", "jsonl", "--output", str(out)], folders)
    assert out.read_text() == "previous predictions\n"
    assert sorted(os.listdir(tmp_path)) == ["preds.jsonl", "reviews.txt"]  # no temporary file left behind


# --------------------------------------------------------------------------------------- 3. non-finite outputs
def _corrupt_export(folders, tmp_path):
    """A damaged export: 4 KB of 0x7f written over model.pdiparams (same size), here over the position
    embeddings."""
    bad = str(tmp_path / "corrupt_export")
    shutil.copytree(folders["export"], bad)
    params = os.path.join(bad, "model.pdiparams")
    with open(params, "r+b") as f:
        offset = f.read().find(folders["positions"])
        assert offset > 0 and len(folders["positions"]) == 4096
        f.seek(offset)
        f.write(b"\x7f" * 4096)
    return bad


def test_corrupted_export_is_a_clear_error_not_nan(folders, tmp_path, capsys):
    folders = dict(folders, corrupt=_corrupt_export(folders, tmp_path))
    out = tmp_path / "out.jsonl"
    rc = _predict(["--format", "jsonl", "--output", str(out), "great product", "waste of money"], folders, "corrupt")
    captured = capsys.readouterr()
    assert rc == 2 and not out.exists() and "NaN" not in captured.out
    _error_line(captured.err)
    rc = _predict(["--format", "jsonl", "great product"], folders, "corrupt")  # to standard output
    assert rc == 2 and "NaN" not in capsys.readouterr().out


def test_nan_weights_give_errors_in_predictor_scripts_and_server(folders, tmp_path, capsys):
    predictor = load_predictor(folders["nan"])
    with pytest.raises(NonFiniteOutputError, match=r"non-finite logits .* for 2 of 2"):
        predictor.predict(["great product", "waste of money"])
    with pytest.raises(NonFiniteOutputError):
        predictor.predict_proba(["great product"])

    reviews = tmp_path / "reviews.txt"
    reviews.write_text("great product\n\nwaste of money\n")
    rc = _predict(["--input_file", str(reviews), "--format", "jsonl"], folders, "nan")
    captured = capsys.readouterr()
    assert rc == 2 and "NaN" not in captured.out and "line(s) 1, 3" in captured.err

    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"text": "great product", "label": 4}) + "\n")
    assert run_main(evaluate.main, ["--model_dir", folders["nan"], "--data_file", str(data),
                                    "--output_dir", str(tmp_path / "eval")]) == 2
    assert "non-finite" in capsys.readouterr().err and not (tmp_path / "eval").exists()

    with TestClient(serve.create_app(predictor)) as client:
        r = client.post("/predict", json={"texts": ["great product"]})
    assert r.status_code == 500 and "non-finite" in r.json()["detail"]
    assert "NaN" not in r.text.replace("(NaN or Inf)", "")


# ------------------------------------------------------------------------------------------------- 5. JSON lines
def test_jsonl_input_with_a_malformed_first_line_is_not_read_as_text(folders, tmp_path, monkeypatch, capsys):
    lines = ['{"text": "great product"', '{"id": 2, "text": "waste of money"}', "plain words"]
    for name, flags in (("reviews.jsonl", []), ("reviews.data", ["--input_format", "jsonl"])):
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        assert _predict(["--input_file", str(path), "--format", "jsonl", *flags], folders) == 1
        captured = capsys.readouterr()
        records = _jsonl(captured.out)
        assert [r["error"] is None for r in records] == [False, True, False]
        assert records[0]["error"].startswith("line 1: not valid JSON") and records[0]["text"] is None
        assert records[1]["id"] == 2 and records[1]["text"] == "waste of money"
        assert records[2]["error"].startswith("line 3:")
        assert "1 predicted, 2 with errors" in captured.err and "JSON lines" in captured.err
    # standard input: a first line starting with "{" is meant as JSON
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode())))
    assert _predict(["--format", "jsonl", "-"], folders) == 1
    assert [r["error"] is None for r in _jsonl(capsys.readouterr().out)] == [False, True, False]
    # a .txt file is one review a line, whatever its first line looks like; --input_format text says so too
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(lines) + "\n")
    assert _predict(["--input_file", str(path), "--format", "jsonl"], folders) == 0
    assert [r["text"] for r in _jsonl(capsys.readouterr().out)] == lines


# ------------------------------------------------------------------------------------- 6. one-line user errors
def test_bad_paths_and_ports_are_one_line_errors(folders, tmp_path, capsys):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("great product\n")
    cases = [
        (["--input_file", str(tmp_path)], "is a directory"),
        (["--input_file", str(tmp_path / "none.txt")], "does not exist"),
        (["--input_file", str(reviews), "--output", str(tmp_path / "missing" / "out.jsonl")], "does not exist"),
        (["--input_file", str(reviews), "--output", str(tmp_path)], "is a directory"),
    ]
    for argv, words in cases:
        assert _predict(argv, folders) == 2
        err = _error_line(capsys.readouterr().err)
        assert words in err and "--" in err
    assert _predict(["hi"], dict(folders, export=str(tmp_path / "no_model"))) == 2
    assert "does not exist" in capsys.readouterr().err

    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"text": "great product", "label": 4}) + "\n")
    assert run_main(evaluate.main, ["--model_dir", folders["model"], "--data_file", str(data),
                                    "--output_dir", str(reviews)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert run_main(evaluate.main, ["--model_dir", folders["model"], "--data_file", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        assert run_main(serve.main, ["--model_dir", folders["export"], "--port", str(port)]) == 2
        err = _error_line(capsys.readouterr().err)
        assert f"--port {port}" in err and "in use" in err
    finally:
        busy.close()
    for port in ("70000", "-1", "http"):
        with pytest.raises(SystemExit) as exit_:
            serve.parse_args(["--model_dir", folders["export"], "--port", port])
        assert exit_.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_closed_standard_output_ends_quietly(folders, monkeypatch, capsys):
    read, write = os.pipe()
    os.close(read)  # `predict.py ... | head -1` after head has exited
    with io.TextIOWrapper(os.fdopen(write, "wb")) as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert _predict(["great product"] * 50, folders) == 1
        monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "error" not in err  # quiet


# ------------------------------------------------------------------------------------------------------ 7. server
def test_server_refuses_nesting_and_other_content_types_and_hides_docs(inference):
    with TestClient(serve.create_app(inference, max_body_bytes=200_000)) as client:
        r = client.post("/predict", content=b"[" * 100_000, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]
        r = client.post("/predict", content=b'{"texts": ["' + b"[" * 100_000 + b'"]}',
                        headers={"content-type": "application/json"})
        assert r.status_code == 200  # brackets inside a string are text
        for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}):
            r = client.post("/predict", content=b'{"texts": ["great"]}', headers=headers)
            assert r.status_code == 415 and "application/json" in r.json()["detail"]
        r = client.post("/predict", content=b'{"texts": ["great"]}',
                        headers={"content-type": "application/json; charset=utf-8"})
        assert r.status_code == 200
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200
    with TestClient(serve.create_app(inference, docs=True)) as client:
        assert client.get("/docs").status_code == 200


def test_few_input_shapes_reach_the_model(inference):
    seen = set()
    runner = inference._runner

    class Spy:
        def run(self, input_ids, attention_mask):
            seen.add(input_ids.shape)
            return runner.run(input_ids, attention_mask)

    words = " ".join(CORPUS).split() * 2
    texts = [" ".join(words[:n]) for n in range(1, 49)]
    inference._runner = Spy()
    try:
        for size in (1, 3, 6, 9):  # requests of 1 to 9 texts of 1..48 tokens, batch size 8
            for start in range(0, len(texts), size):
                inference.predict(texts[start:start + size])
        batched = inference.predict_proba(texts[:5])
    finally:
        inference._runner = runner
    assert seen <= {(rows, length) for rows in (1, 2, 4, 8) for length in (16, 32, 48)}  # at most 12 shapes
    one_by_one = np.concatenate([inference.predict_proba([t]) for t in texts[:5]])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)  # padding rows and tokens change nothing


# ------------------------------------------------------------------------------------------- 8. terminal escapes
def test_table_escapes_control_and_bidi_characters(folders, capsys):
    texts = ["\x1b[31mred\x1b[0m great product", "abc\u202edcba \u2066x\u2069 \x07\x9b ok", "caf\u00e9 \U0001F600"]
    assert _predict(texts, folders) == 0
    table = capsys.readouterr().out
    assert not any(ch in table for ch in "\x1b\u202e\u2066\u2069\x07\x9b")
    assert "\\x1b[31mred\\x1b[0m great product" in table and "abc\\u202edcba \\u2066x\\u2069 \\x07\\x9b ok" in table
    assert "caf\u00e9 \U0001F600" in table  # ordinary non-ASCII text is shown as it is


# ---------------------------------------------------------------------------------------------- 9. unknown words
def test_unknown_token_share_is_reported_and_mostly_unknown_text_flagged(folders, inference, capsys):
    texts = ["\u8fd9\u4e2a\u4ea7\u54c1\u5f88\u597d", "\U0001F600 \U0001F44D\U0001F44D", "great product , xyzzy",
             "great battery"]
    results = inference.predict(texts)
    assert [r["unk_share"] for r in results] == [1.0, 1.0, 0.25, 0.0]
    assert [bool(r["warning"]) for r in results] == [True, True, False, False]
    assert "unknown" in results[0]["warning"] and results[0]["rating"] in range(1, 6)
    assert inference.predict([""])[0]["unk_share"] is None

    assert _predict(["--format", "jsonl", *texts], folders) == 0
    captured = capsys.readouterr()
    records = _jsonl(captured.out)
    assert [r["unk_share"] for r in records] == [1.0, 1.0, 0.25, 0.0] and records[1]["warning"]
    assert "2 mostly unknown" in captured.err
    assert _predict(texts, folders) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["#", "rating", "conf", "trunc", "unk", "text"]
    assert table[2].split()[4] == "100%" and "mostly unknown" in table[2]
    assert table[4].split()[4] == "25%" and "mostly unknown" not in table[4]

    with TestClient(serve.create_app(inference)) as client:
        preds = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert [p["unk_share"] for p in preds] == [1.0, 1.0, 0.25, 0.0] and preds[0]["warning"] and not preds[3]["warning"]
