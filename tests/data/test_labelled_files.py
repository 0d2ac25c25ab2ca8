"""Own labelled files: CSV/TSV/JSON lines, text and label columns, label order, skipped records, errors by line."""

import gzip
import json
import os

import pytest

from fastformer_data.labelled_files import (
    LabelledFileReader, label_name, prepare_labelled_files, read_label_file, read_labelled_file, sort_labels,
)
from fastformer_data.tables import TableReader, table_format
from fastformer.cli import UserError


def write(path, text, gz=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return str(path)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_format_from_the_name(tmp_path):
    assert table_format("a.csv") == "csv" and table_format("a.TSV") == "tsv" and table_format("a.tab") == "tsv"
    assert table_format("a.jsonl.gz") == "jsonl" and table_format("x.ndjson") == "jsonl"
    assert table_format("a.txt", "tsv") == "tsv"
    with pytest.raises(UserError, match=r"a\.txt: cannot tell the format"):
        table_format("a.txt")


def test_csv_rows_start_lines_and_quoted_newlines(tmp_path):
    path = write(tmp_path / "a.csv", 'text,label\n"two\nlines",pos\n\nplain,neg\n"a, b",3,extra\n')
    rows = list(TableReader(path))
    assert [(r.line, r.fields, r.problem) for r in rows] == [
        (2, {"text": "two\nlines", "label": "pos"}, None),
        (4, None, "blank_line"),
        (5, {"text": "plain", "label": "neg"}, None),
        (6, None, "wrong_field_count"),
    ]


def test_tsv_two_text_columns_are_joined(tmp_path):
    path = write(tmp_path / "a.tsv", "title\tbody\tlabel\nGreat\tWorks well.\tpositive\nMeh.\tIt is ok.\tneutral\n"
                                     "\tOnly a body\tnegative\n\t\tnegative\n")
    reader = LabelledFileReader(path, ["title", "body"], "label")
    examples = list(reader)
    assert [(e.line, e.text, e.label) for e in examples] == [
        (2, "Great. Works well.", "positive"), (3, "Meh. It is ok.", "neutral"), (4, "Only a body", "negative")]
    assert reader.stats()["skipped"] == {"empty_text": {"count": 1, "first_lines": [5]}}
    assert reader.skipped_summary().endswith("skipped 1 of 4 records: empty_text 1 (line 5)")


def test_jsonl_int_string_and_float_labels_gzip(tmp_path):
    lines = [{"review": "good", "stars": 5}, {"review": "bad", "stars": "1"}, {"review": "ok", "stars": 3.0},
             {"review": "odd", "stars": None}, {"review": ["x"], "stars": 2}]
    path = write(tmp_path / "a.jsonl.gz", "".join(json.dumps(r) + "\n" for r in lines) + "not json\n", gz=True)
    reader = LabelledFileReader(path, ["review"], "stars")
    assert [(e.text, e.label) for e in reader] == [("good", "5"), ("bad", "1"), ("ok", "3")]
    skipped = reader.stats()["skipped"]
    assert {k: v["first_lines"] for k, v in skipped.items()} == {
        "unparseable": [6], "bad_text": [5], "missing_label": [4]}


def test_label_names_and_default_order():
    assert label_name(" pos ") == "pos" and label_name(4.0) == "4" and label_name(7) == "7"
    assert sort_labels(["10", "2", "-1", "2"]) == ["-1", "2", "10"]
    assert sort_labels(["positive", "negative", "neutral"]) == ["negative", "neutral", "positive"]


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "a.csv", "text,stars\nfine,5\n")
    with pytest.raises(UserError, match=r"a\.csv, line 1: no column 'label' \(the header has text, stars\)"):
        LabelledFileReader(path, ["text"], "label")
    jl = write(tmp_path / "b.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(UserError, match=r"b\.jsonl, line 2: no column 'label'"):
        list(LabelledFileReader(jl, ["text"], "label"))


@pytest.mark.parametrize("header, message", [("", "empty file"), ("text,,label", "column 2 of the header has no name"),
                                             ("text,text,label", "'text' appears twice")])
def test_bad_headers(tmp_path, header, message):
    path = write(tmp_path / "a.csv", header + "\n")
    with pytest.raises(UserError, match=message):
        TableReader(path)


def test_invalid_utf8_row_is_skipped_not_fatal(tmp_path):
    path = write(tmp_path / "a.csv", b"text,label\ngood,1\n\xff\xfe bad,2\nalso good,2\n")
    reader = LabelledFileReader(path, ["text"], "label")
    assert [e.line for e in reader] == [2, 4]
    assert reader.stats()["skipped"]["invalid_utf8"]["first_lines"] == [3]


def test_label_file_order_and_problems(tmp_path):
    assert read_label_file(write(tmp_path / "l.txt", "neg\n\nneu\npos\n")) == ["neg", "neu", "pos"]
    with pytest.raises(UserError, match=r"l2\.txt, line 3: label 'a' is listed twice"):
        read_label_file(write(tmp_path / "l2.txt", "a\nb\na\n"))
    with pytest.raises(UserError, match="at least two labels"):
        read_label_file(write(tmp_path / "l3.txt", "only\n"))


def _three_label_csv(tmp_path, name="train.csv", n=30):
    names = ["negative", "neutral", "positive"]
    rows = "".join(f'"review {i}, {names[i % 3]} words",{names[i % 3]}\n' for i in range(n))
    return write(tmp_path / name, "text,label\n" + rows)


def test_prepare_with_a_dev_share_and_a_test_file(tmp_path):
    train = _three_label_csv(tmp_path)
    test = write(tmp_path / "test.tsv", "text\tlabel\nnice\tpositive\nawful\tnegative\n")
    out = tmp_path / "data"
    stats = prepare_labelled_files(train, str(out), test_file=test, dev_share=0.2, seed=1)
    assert (out / "label.txt").read_text() == "negative\nneutral\npositive\n"
    assert stats["label_names"] == ["negative", "neutral", "positive"] and stats["label_order"] == "sorted"
    sizes = {s: len(read_jsonl(out / f"{s}.jsonl")) for s in ("train", "dev", "test")}
    assert sizes == {"train": 24, "dev": 6, "test": 2}
    assert read_jsonl(out / "test.jsonl") == [{"text": "nice", "label": 2}, {"text": "awful", "label": 0}]
    train_rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "dev.jsonl")
    assert sorted(r["text"] for r in train_rows) == sorted(f"review {i}, {['negative', 'neutral', 'positive'][i % 3]} "
                                                           "words" for i in range(30))
    # same files and settings: reused; another seed into the same folder: refused
    assert prepare_labelled_files(train, str(out), test_file=test, dev_share=0.2, seed=1) == stats
    with pytest.raises(FileExistsError, match="holds no dataset prepared from these files"):
        prepare_labelled_files(train, str(out), test_file=test, dev_share=0.2, seed=2)
    # the same seed draws the same dev split
    again = prepare_labelled_files(train, str(tmp_path / "data2"), test_file=test, dev_share=0.2, seed=1)
    assert again["splits"] == stats["splits"]
    assert (tmp_path / "data2" / "dev.jsonl").read_bytes() == (out / "dev.jsonl").read_bytes()


def test_label_file_sets_the_order_and_rejects_unknown_labels(tmp_path):
    train = _three_label_csv(tmp_path)
    labels = write(tmp_path / "label.txt", "positive\nneutral\nnegative\n")
    out = tmp_path / "data"
    stats = prepare_labelled_files(train, str(out), label_file=labels)
    assert stats["label_names"] == ["positive", "neutral", "negative"]
    assert read_jsonl(out / "train.jsonl")[0]["label"] == {"negative": 2, "neutral": 1, "positive": 0}[
        read_jsonl(out / "train.jsonl")[0]["text"].split()[2]]
    short = write(tmp_path / "short.txt", "positive\nnegative\n")
    with pytest.raises(UserError, match=r"train\.csv, line 3, column 'label': label 'neutral' is not one of the "
                                        r"labels of --label_file"):
        prepare_labelled_files(train, str(tmp_path / "d2"), label_file=short)


def test_dev_label_missing_from_train_is_an_error_naming_its_line(tmp_path):
    train = _three_label_csv(tmp_path)
    dev = write(tmp_path / "dev.csv", "text,label\nfine,positive\nwhat,mixed\n")
    with pytest.raises(UserError, match=r"dev\.csv, line 3, column 'label': label 'mixed' is not one of the labels "
                                        r"of the training file \(negative, neutral, positive\)"):
        prepare_labelled_files(train, str(tmp_path / "data"), dev_file=dev)
    assert not os.path.exists(tmp_path / "data" / "train.jsonl")


def test_one_label_or_nothing_usable_is_an_error(tmp_path):
    one = write(tmp_path / "one.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(UserError, match="holds 1 label"):
        prepare_labelled_files(one, str(tmp_path / "d1"))
    empty = write(tmp_path / "empty.csv", "text,label\n,x\n,y\n")
    with pytest.raises(UserError, match=r"empty\.csv: no usable record \(.*empty_text 2 \(lines 2, 3\)\)"):
        prepare_labelled_files(empty, str(tmp_path / "d2"))


def test_read_labelled_file_maps_names_to_ids(tmp_path):
    path = write(tmp_path / "e.csv", "text,label\ngood,positive\nbad,negative\n")
    texts, ids, _ = read_labelled_file(path, ["text"], "label", ["negative", "neutral", "positive"])
    assert texts == ["good", "bad"] and ids == [2, 0]
