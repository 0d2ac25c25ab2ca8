"""Your own labelled data end to end: a 3-label CSV trained with configs/tiny.json, evaluated and predicted with its
label names; a TSV with two text columns; the errors (missing column, unknown label, stray flags) in one line."""

from __future__ import annotations

import csv
import json
import os
import random
import re

import pytest

import fastformer  # noqa: F401  (before paddle)
from fastformer.cli import run_main

import evaluate
import predict
import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "tiny.json")
NAMES = ["negative", "neutral", "positive"]
WORDS = {"negative": ["terrible", "broken", "awful", "refund"], "neutral": ["okay", "average", "fine", "decent"],
         "positive": ["great", "excellent", "love", "perfect"]}


def write_table(path, header, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def rows(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = NAMES[i % 3]
        out.append((f"the item is {rng.choice(WORDS[name])} and {rng.choice(WORDS[name])}", name))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on a 3-label CSV (dev drawn from train), with a CSV test file."""
    work = tmp_path_factory.mktemp("own")
    train_csv = write_table(work / "train.csv", ["text", "label"], rows(240, 0))
    test_csv = write_table(work / "test.csv", ["text", "label"], rows(30, 1))
    results = train.main([TINY, "--train_file", train_csv, "--test_file", test_csv, "--output_dir",
                          str(work / "run"), "--num_train_epochs", "4"])
    return work, results


def test_csv_trains_with_its_label_names(trained):
    work, results = trained
    with open(os.path.join(results["model_dir"], "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert (work / "run" / "data" / "label.txt").read_text() == "negative\nneutral\npositive\n"
    assert results["sizes"] == {"train": 216, "dev": 24, "test": 30}
    assert results["test_accuracy"] > 0.6  # the words tell the labels apart: a model that learnt nothing is at 1/3


def test_evaluate_reports_per_label_name(trained, tmp_path):
    work, results = trained
    res = evaluate.main(["--model_dir", results["model_dir"], "--precision", "fp32"])  # the run's own test split
    assert list(res["per_class"]) == NAMES and res["num_examples"] == 30
    again = evaluate.main(["--model_dir", results["model_dir"], "--data_file", str(work / "test.csv"),
                           "--output_dir", str(tmp_path / "ev"), "--precision", "fp32"])
    assert again["accuracy"] == res["accuracy"] and again["confusion_matrix"] == res["confusion_matrix"]


def test_predict_answers_with_label_names_and_passes_columns_through(trained, tmp_path):
    work, results = trained
    src = write_table(tmp_path / "new.csv", ["id", "text", "label"],
                      [("a1", "the item is great and love", "positive"), ("a2", "", "negative")])
    out = tmp_path / "out.csv"
    status = predict.main(["--model_dir", results["model_dir"], "--input_file", src, "--output", str(out),
                           "--precision", "fp32"])
    assert status == 1  # the empty text is an error for its row; the other row is predicted
    with open(out, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:3] == ["id", "text", "input_label"]  # a clashing input column is renamed
    assert "rating" not in table[0] and [f"prob_{n}" in table[0] for n in NAMES] == [True] * 3
    assert table[0]["id"] == "a1" and table[0]["label"] in NAMES and table[0]["error"] == ""
    assert table[1]["id"] == "a2" and table[1]["label"] == "" and "line 3: empty text" in table[1]["error"]
    jsonl = tmp_path / "out.jsonl"
    predict.main(["--model_dir", results["model_dir"], "--output", str(jsonl), "--precision", "fp32",
                  "the item is awful and broken"])
    record = json.loads(jsonl.read_text())
    assert "rating" not in record and set(record["probabilities"]) == set(NAMES) and record["label"] in NAMES


def test_tsv_with_two_text_columns_and_a_dev_file(tmp_path):
    data = [(f"title {i}", body, label) for i, (body, label) in enumerate(rows(120, 2))]
    train_tsv = write_table(tmp_path / "train.tsv", ["title", "body", "label"], data[:90], "\t")
    dev_tsv = write_table(tmp_path / "dev.tsv", ["title", "body", "label"], data[90:], "\t")
    labels = tmp_path / "label.txt"
    labels.write_text("positive\nneutral\nnegative\n")
    results = train.main([TINY, "--train_file", train_tsv, "--dev_file", dev_tsv, "--text_column", "title", "body",
                          "--label_file", str(labels), "--output_dir", str(tmp_path / "run"), "--num_train_epochs",
                          "1"])
    assert results["sizes"] == {"train": 90, "dev": 30, "test": 0} and "test_accuracy" not in results
    first = json.loads((tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()[0])
    assert first == {"text": f"title 0. {data[0][1]}", "label": 2}  # "negative" is the label file's third
    with open(os.path.join(results["model_dir"], "config.json"), encoding="utf-8") as f:
        assert json.load(f)["id2label"] == {"0": "positive", "1": "neutral", "2": "negative"}
    out = tmp_path / "preds.tsv"
    assert predict.main(["--model_dir", results["model_dir"], "--input_file", dev_tsv, "--text_column", "title",
                         "body", "--output", str(out), "--precision", "fp32"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    assert len(table) == 30 and table[0]["title"] == "title 90" and table[0]["input_label"] == data[90][2]


def test_errors_are_one_line_naming_file_line_and_column(tmp_path, capsys):
    good = write_table(tmp_path / "train.csv", ["text", "label"], rows(30, 3))
    no_label = write_table(tmp_path / "nolabel.csv", ["text", "stars"], [("fine", "5")])
    odd_dev = write_table(tmp_path / "dev.csv", ["text", "label"], [("fine", "neutral"), ("what", "mixed")])
    cases = [
        ([TINY, "--train_file", no_label], r"nolabel\.csv, line 1: no column 'label' \(the header has text, stars\)"),
        ([TINY, "--train_file", good, "--dev_file", odd_dev],
         r"dev\.csv, line 3, column 'label': label 'mixed' is not one of the labels of the training file"),
        ([TINY, "--dev_file", odd_dev], r"--dev_file go\(es\) with --train_file"),
        ([TINY, "--train_file", good, "--dev_share", "1.5"], r"--dev_share must be in \(0, 1\)"),
        ([TINY, "--train_file", str(tmp_path / "missing.csv")], r"--train_file .*missing\.csv' does not exist"),
    ]
    for argv, message in cases:
        out = tmp_path / f"run{len(message)}"
        assert run_main(train.main, [*argv, "--output_dir", str(out)]) == 2, message
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(message, err), err
        assert not os.path.exists(out / "model")


def test_predict_and_evaluate_errors(trained, tmp_path, capsys):
    work, results = trained
    table = write_table(tmp_path / "in.csv", ["review"], [("fine",)])
    assert run_main(predict.main, ["--model_dir", results["model_dir"], "--input_file", table]) == 2
    assert "in.csv, line 1: no column 'text' (the header has review)" in capsys.readouterr().err
    odd = write_table(tmp_path / "odd.csv", ["text", "label"], [("fine", "positive"), ("what", "mixed")])
    assert run_main(evaluate.main, ["--model_dir", results["model_dir"], "--data_file", odd,
                                    "--output_dir", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "odd.csv, line 3, column 'label': label 'mixed' is not one of the model's labels" in err
    assert not os.path.exists(tmp_path / "ev")
