"""Data pipeline: reading the three releases, bad records, sampling, splits, determinism, reuse, demo data."""

import gzip
import json
import os
import random

import numpy as np
import pytest

from fastformer_data.demo_data import generate_demo_reviews
from fastformer_data.prepare import prepare_dataset
from fastformer_data.reader import ReviewReader
from fastformer.labels import LABEL_NAMES
from fastformer.splits import read_split
from fastformer_data import prepare as prepare_module
from fastformer_data.demo_data import RATING_WEIGHTS
from fastformer_data.demo_data import main as demo_main
from fastformer_data.prepare import OUTPUT_FILES
from fastformer_data.prepare import main as prepare_main

RELEASE = {"2014": "2014", "2014-literal": "2014", "2018": "2018", "2023": "2023"}


def write_lines(path, lines, gz=False):
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return str(path)


def rec(text, rating, **extra):
    return json.dumps({"reviewerID": "SYNTHETIC-T", "reviewText": text, "overall": rating, "helpful": [0, 0], **extra})


def read(path, **kwargs):
    reader = ReviewReader(str(path), show_progress=False, **kwargs)
    return list(reader), reader.stats()


@pytest.mark.parametrize("fmt", ["2014", "2014-literal", "2018", "2023"])
@pytest.mark.parametrize("gz", [False, True])
def test_each_release_is_read_and_detected(tmp_path, fmt, gz):
    path = str(tmp_path / ("reviews.json.gz" if gz else "reviews.json"))
    summary = generate_demo_reviews(path, 1000, seed=3, fmt=fmt)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == gz
    reviews, stats = read(path)
    assert stats["detected_format"] == RELEASE[fmt]
    assert stats["formats"] == {RELEASE[fmt]: len(reviews)}
    assert stats["python_literal_lines"] == (1000 if fmt == "2014-literal" else 0)
    assert stats["lines_read"] == 1000
    assert {r: sum(1 for x in reviews if x.rating == r) for r in RATING_WEIGHTS} == summary["ratings"]
    expected_skips = {reason: {"count": len(lines), "first_lines": lines[:5]} for reason, lines in summary["bad_lines"].items()}
    assert stats["skipped"] == expected_skips
    if fmt == "2018":  # some 2018 records have no reviewText
        assert expected_skips["missing_text"]["count"] > 0
    for review in reviews:
        assert review.text == " ".join(review.text.split()) and review.text
        assert "<br" not in review.text


def test_gzip_detected_by_content_not_name(tmp_path):
    generate_demo_reviews(str(tmp_path / "a.gz"), 20, seed=1)
    os.rename(tmp_path / "a.gz", tmp_path / "gzipped_but_named.json")
    generate_demo_reviews(str(tmp_path / "b.json"), 20, seed=1)
    os.rename(tmp_path / "b.json", tmp_path / "plain_but_named.json.gz")
    first, _ = read(tmp_path / "gzipped_but_named.json")
    second, _ = read(tmp_path / "plain_but_named.json.gz")
    assert len(first) == 20 and first == second


@pytest.mark.parametrize("fmt", ["2014", "2023"])
def test_bad_records_counted_with_reasons_and_lines(tmp_path, fmt):
    path = str(tmp_path / "bad.json")
    summary = generate_demo_reviews(path, 200, seed=5, fmt=fmt, bad_records=True)
    reader = ReviewReader(path, show_progress=False)
    reviews = list(reader)
    stats = reader.stats()
    assert len(summary["bad_lines"]) == 9
    assert stats["skipped"] == {r: {"count": len(lines), "first_lines": lines} for r, lines in summary["bad_lines"].items()}
    assert stats["usable"] == len(reviews) == 200
    assert stats["lines_read"] == summary["lines"] == 210
    message = reader.skipped_summary()
    assert path in message and "non_integer_rating 1 (line " in message
    assert str(summary["bad_lines"]["invalid_utf8"][0]) in message


def test_odd_lines_never_crash(tmp_path):
    lines = [
        "\ufeff" + rec("Starts with a byte order mark.", 5),  # 1 usable
        rec("Windows line end.", 4.0) + "\r",  # 2 usable
        rec("Rating as a string.", "3"),  # 3 usable
        '{"reviewText": "lone surrogate \\ud800", "overall": 5.0}',  # 4 invalid_utf8
        rec("NaN rating", float("nan")),  # 5 non_numeric_rating
        rec("Bool rating", True),  # 6 non_numeric_rating
        "[1, 2, 3]",  # 7 unparseable
        "[" * 100000,  # 8 unparseable (deep nesting)
        rec(12345, 5.0),  # 9 missing_text
        rec("Zero stars.", 0),  # 10 rating_out_of_range
        rec("Null rating.", None),  # 11 missing_rating
        "   ",  # 12 blank_line
        "{'reviewText': 'Python literal line.', 'overall': 2.0}",  # 13 usable
        "{'reviewText': 'broken literal', ",  # 14 unparseable
    ]
    reviews, stats = read(write_lines(tmp_path / "odd.json", lines))
    assert [(r.line, r.text, r.rating) for r in reviews] == [
        (1, "Starts with a byte order mark.", 5),
        (2, "Windows line end.", 4),
        (3, "Rating as a string.", 3),
        (13, "Python literal line.", 2),
    ]
    assert stats["python_literal_lines"] == 1
    assert {k: v["first_lines"] for k, v in stats["skipped"].items()} == {
        "blank_line": [12],
        "invalid_utf8": [4],
        "unparseable": [7, 8, 14],
        "missing_text": [9],
        "missing_rating": [11],
        "non_numeric_rating": [5, 6],
        "rating_out_of_range": [10],
    }


def test_first_lines_are_limited_to_five(tmp_path):
    path = write_lines(tmp_path / "x.json", [rec("ok", 5)] + ["not json"] * 8)
    _, stats = read(path)
    assert stats["skipped"]["unparseable"] == {"count": 8, "first_lines": [2, 3, 4, 5, 6]}


def test_text_fields_join_title_and_text(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            json.dumps({"title": "Great  buy!", "text": "Works<br />well.", "rating": 5}),
            json.dumps({"title": "Meh", "text": "Average.", "rating": 3}),
            json.dumps({"title": "Only a title", "text": "", "rating": 2}),
            json.dumps({"text": "No title here.", "rating": 1}),
        ],
    )
    reviews, stats = read(path, text_fields=("title", "text"))
    assert [r.text for r in reviews] == ["Great buy! Works well.", "Meh. Average.", "No title here."]
    assert stats["skipped"]["missing_text"]["first_lines"] == [3]
    reviews, _ = read(path, text_fields=("title",))
    assert [r.text for r in reviews] == ["Great buy!", "Meh", "Only a title"]
    with pytest.raises(ValueError, match="text_fields"):
        ReviewReader(path, text_fields=("body",))


def test_all_bad_file_fails_naming_the_file(tmp_path):
    path = write_lines(tmp_path / "all_bad.json", ["garbage", rec("", 5), rec("x", 9)])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no usable review: .*all_bad.json: skipped 3 of 3 lines: unparseable 1 \\(line 1\\)"):
        prepare_dataset(path, str(out), num_samples=10, show_progress=False)
    assert not out.exists() or not os.listdir(out)


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("demo") / "reviews_Electronics_5.json.gz")
    generate_demo_reviews(path, 600, seed=7, bad_records=True)
    return path


def read_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in OUTPUT_FILES}


def test_outputs_are_byte_identical_for_the_same_seed(demo_file, tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    prepare_dataset(demo_file, a, num_samples=200, seed=11, show_progress=False)
    prepare_dataset(demo_file, b, num_samples=200, seed=11, show_progress=True)
    prepare_dataset(demo_file, c, num_samples=200, seed=12, show_progress=False)
    assert read_bytes(a) == read_bytes(b)
    assert read_bytes(a)["train.jsonl"] != read_bytes(c)["train.jsonl"]


def test_sample_does_not_depend_on_line_order(demo_file, tmp_path):
    with gzip.open(demo_file, "rb") as f:
        lines = f.read().splitlines()
    random.Random(0).shuffle(lines)
    shuffled = write_lines(tmp_path / "shuffled.json", lines)
    prepare_dataset(demo_file, str(tmp_path / "a"), num_samples=100, show_progress=False)
    prepare_dataset(shuffled, str(tmp_path / "b"), num_samples=100, show_progress=False)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_splits_sizes_labels_and_files(demo_file, tmp_path):
    out = str(tmp_path / "out")
    stats = prepare_dataset(demo_file, out, num_samples=300, split_sizes=(240, 30, 30), seed=1, show_progress=False)
    assert sorted(os.listdir(out)) == sorted(OUTPUT_FILES)
    assert open(os.path.join(out, "label.txt")).read().split("\n")[:-1] == LABEL_NAMES == ["1", "2", "3", "4", "5"]
    seen = set()
    for name, size in (("train", 240), ("dev", 30), ("test", 30)):
        texts, labels = read_split(os.path.join(out, f"{name}.jsonl"))
        assert len(texts) == len(labels) == size == stats["splits"][name]["size"]
        assert set(labels) <= set(range(5))
        assert stats["splits"][name]["labels"] == {n: labels.count(i) for i, n in enumerate(LABEL_NAMES)}
        assert not seen & set(texts)
        seen |= set(texts)
    assert len(seen) == 300
    assert stats["records"]["skipped_total"] == 10 and stats["records"]["usable"] == 600
    assert stats["source"]["detected_format"] == "2014" and stats["source"]["compression"] == "gzip"
    assert stats["args"]["split_sizes"] == [240, 30, 30] and stats["sample"]["warnings"] == []
    words = stats["splits"]["train"]["words"]
    assert 10 <= words["median"] <= words["p95"] <= words["max"] and words["mean"] > 10
    assert json.load(open(os.path.join(out, "stats.json"))) == stats


def test_natural_distribution_is_kept(demo_file, tmp_path):
    stats = prepare_dataset(demo_file, str(tmp_path / "o"), num_samples=500, show_progress=False)
    counts = {n: sum(s["labels"][n] for s in stats["splits"].values()) for n in LABEL_NAMES}
    assert sum(counts.values()) == 500
    assert counts["5"] > 0.5 * 500 and counts["5"] > counts["4"] > counts["3"]


def test_too_few_reviews_are_split_80_10_10(demo_file, tmp_path):
    stats = prepare_dataset(demo_file, str(tmp_path / "o"), num_samples=5000, split_sizes=(4000, 500, 500), show_progress=False)
    drawn = stats["sample"]["drawn"]
    assert drawn <= 600 and stats["sample"]["split_sizes"] == {"train": drawn - 2 * (drawn // 10), "dev": drawn // 10, "test": drawn // 10}
    assert any("could be drawn" in w for w in stats["sample"]["warnings"])


def test_bad_split_sizes_are_rejected(demo_file, tmp_path):
    with pytest.raises(ValueError, match="add up"):
        prepare_dataset(demo_file, str(tmp_path / "o"), num_samples=100, split_sizes=(80, 10, 5))
    with pytest.raises(ValueError, match="positive"):
        prepare_dataset(demo_file, str(tmp_path / "o"), num_samples=0)


def test_balanced_sample(demo_file, tmp_path):
    stats = prepare_dataset(demo_file, str(tmp_path / "b"), num_samples=100, balanced=True, show_progress=False)
    counts = {n: sum(s["labels"][n] for s in stats["splits"].values()) for n in LABEL_NAMES}
    assert counts == {n: 20 for n in LABEL_NAMES}
    # 600 demo reviews hold fewer than 100 two-star ones: that class is short and said so.
    stats = prepare_dataset(demo_file, str(tmp_path / "c"), num_samples=500, balanced=True, show_progress=False)
    counts = {n: sum(s["labels"][n] for s in stats["splits"].values()) for n in LABEL_NAMES}
    assert counts["5"] == 100 and counts["2"] < 100
    assert any("2 stars" in w for w in stats["sample"]["warnings"])


def test_duplicates_are_dropped_and_conflicts_left_out(tmp_path):
    lines = [
        rec("Same text.", 5),
        rec("Same   text.", 5),  # same after normalisation
        rec("Same text.", 5),
        rec("Ambiguous.", 4),
        rec("Ambiguous.", 2),
        rec("Unique one.", 1),
        rec("Unique two.", 3),
    ]
    stats = prepare_dataset(write_lines(tmp_path / "d.json", lines), str(tmp_path / "o"), num_samples=10, show_progress=False)
    records = stats["records"]
    assert (records["usable"], records["distinct_texts"], records["duplicates_dropped"]) == (7, 4, 3)
    assert records["conflicting_rating_texts"] == 1
    assert records["ratings_of_usable"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 3}
    texts = sum((read_split(str(tmp_path / "o" / f"{s}.jsonl"))[0] for s in ("train", "dev", "test")), [])
    assert sorted(texts) == ["Same text.", "Unique one.", "Unique two."]


def test_reuse_and_overwrite(demo_file, tmp_path, monkeypatch):
    out = str(tmp_path / "o")
    first = prepare_dataset(demo_file, out, num_samples=50, show_progress=False)
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("user file")

    def no_reading(*args, **kwargs):
        raise AssertionError("the input must not be read again")

    with monkeypatch.context() as m:
        m.setattr(prepare_module, "ReviewReader", no_reading)
        assert prepare_dataset(demo_file, out, num_samples=50, show_progress=False) == first
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_dataset(demo_file, out, num_samples=60, show_progress=False)
    second = prepare_dataset(demo_file, out, num_samples=60, show_progress=False, overwrite=True)
    assert second["sample"]["drawn"] == 60 and len(read_split(os.path.join(out, "train.jsonl"))[0]) == 48
    assert open(os.path.join(out, "notes.txt")).read() == "user file"
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError):
        prepare_dataset(demo_file, str(other), num_samples=50, show_progress=False)


def test_read_split_names_file_and_line(tmp_path):
    good = json.dumps({"text": "fine", "label": 4})
    cases = {
        "not_json.jsonl": [good, "{oops"],
        "bad_label.jsonl": [good, json.dumps({"text": "x", "label": 5})],
        "bool_label.jsonl": [good, json.dumps({"text": "x", "label": True})],
        "no_text.jsonl": [good, json.dumps({"label": 1})],
        "not_utf8.jsonl": [good, b'{"text": "\xff", "label": 1}'],
        "not_object.jsonl": [good, "[1, 2]"],
        "blank.jsonl": [good, "", good],  # a damaged file: never skipped silently
        "spaces.jsonl": [good, "   "],
    }
    for name, lines in cases.items():
        path = write_lines(tmp_path / name, lines)
        with pytest.raises(ValueError, match=f"{name}, line 2"):
            read_split(path)
    with pytest.raises(ValueError, match="blank.jsonl, line 2: blank line"):
        read_split(str(tmp_path / "blank.jsonl"))
    assert read_split(write_lines(tmp_path / "ok.jsonl", [good, good])) == (["fine", "fine"], [4, 4])
    assert read_split(write_lines(tmp_path / "empty.jsonl", [])) == ([], [])


def test_clis(tmp_path, capsys):
    raw = str(tmp_path / "Electronics.jsonl")
    summary = demo_main(["--output", raw, "--num_reviews", "120", "--seed", "2", "--format", "2023"])
    assert summary["num_reviews"] == 120
    again = str(tmp_path / "again.jsonl")  # train.py's flag names give the same file
    demo_main(["--output", again, "--demo_num_reviews", "120", "--demo_seed", "2", "--format", "2023"])
    assert open(raw, "rb").read() == open(again, "rb").read()
    stats = prepare_main(["--input_file", raw, "--output_dir", str(tmp_path / "o"), "--num_samples", "100", "--no_progress",
                          "--text_fields", "title", "text"])
    assert stats["source"]["detected_format"] == "2023" and stats["args"]["text_fields"] == ["title", "text"]
    assert "wrote" in capsys.readouterr().out


def test_prepare_takes_train_pys_flag_names_and_the_older_ones(tmp_path):
    raw = str(tmp_path / "reviews.json.gz")
    generate_demo_reviews(raw, 200, seed=4)
    common = ["--input_file", raw, "--num_samples", "100", "--no_progress"]
    new = prepare_main([*common, "--output_dir", str(tmp_path / "new"), "--data_seed", "7", "--balanced_sample"])
    old = prepare_main([*common, "--output_dir", str(tmp_path / "old"), "--seed", "7", "--balanced"])
    assert new["args"]["seed"] == old["args"]["seed"] == 7
    assert new["args"]["balanced"] is old["args"]["balanced"] is True
    for split in ("train", "dev", "test"):
        assert (tmp_path / "new" / f"{split}.jsonl").read_bytes() == (tmp_path / "old" / f"{split}.jsonl").read_bytes()


def test_demo_data_is_marked_skewed_varied_and_seeded(tmp_path):
    a, b, c = (str(tmp_path / f"{n}.json.gz") for n in "abc")
    summary = generate_demo_reviews(a, 3000, seed=9)
    generate_demo_reviews(b, 3000, seed=9)
    generate_demo_reviews(c, 3000, seed=10)
    assert open(a, "rb").read() == open(b, "rb").read() != open(c, "rb").read()
    with gzip.open(a, "rt") as f:
        records = [json.loads(line) for line in f]
    assert all(r["reviewerID"].startswith("SYNTHETIC-") and r["asin"].startswith("DEMO") for r in records)
    share = {r: n / 3000 for r, n in summary["ratings"].items()}
    assert abs(share[5] - 0.60) < 0.04 and abs(share[4] - 0.20) < 0.03 and share[2] < share[1] < share[3]
    lengths = [len(r["reviewText"].split()) for r in records]
    assert min(lengths) >= 10 and max(lengths) <= 330 and max(lengths) > 200
    # Wording depends on the rating, with overlap between ratings (negations, mixed reviews, noise).
    def rate(stars, word):
        texts = [r["reviewText"].lower() for r in records if r["overall"] == stars]
        return sum(word in t for t in texts) / len(texts)

    assert rate(1, "refund") > 3 * rate(5, "refund") > 0
    assert rate(5, "highly recommend") > 3 * rate(1, "highly recommend") > 0
    assert rate(1, "excellent") > 0.05 and rate(5, "terrible") > 0.02


def test_glove_embeddings(tmp_path):
    from fastformer.embeddings import load_glove_embeddings

    class Vocab:
        pad_token_id = 0

        def get_vocab(self):
            return {"[PAD]": 0, "[UNK]": 1, "good": 2, "usb": 3, "zzz": 4}

    path = write_lines(tmp_path / "glove.txt.gz", ["the 1 1 1", "USB 5 5 5", "good 2 2 2", "usb 3 3 3", "with space 9 9 9", "[PAD] 7 7 7"], gz=True)
    emb = load_glove_embeddings(Vocab(), path, hidden_size=3, seed=1)
    assert emb.shape == (5, 3) and emb.dtype.name == "float32"
    assert (emb[0] == 0).all() and (emb[2] == 2).all() and (emb[3] == 3).all()
    assert abs(emb[4]).max() < 0.2 and (emb[4] == load_glove_embeddings(Vocab(), path, 3, seed=1)[4]).all()
    with pytest.raises(ValueError, match="line 2: vector of size 3, hidden_size is 4"):
        load_glove_embeddings(Vocab(), path, hidden_size=4)


def test_glove_rows_follow_a_tokenizer_vocabulary(tmp_path):
    from fastformer.embeddings import load_glove_embeddings
    from fastformer.tokenizer import FastformerTokenizer

    corpus = ["The sound is great. The bass is great!", "the battery died; not great", "Great SOUND, great price."]
    tok = FastformerTokenizer.build_from_corpus(corpus, min_freq=2)  # [PAD] [UNK] great the . is sound
    path = write_lines(tmp_path / "glove.txt.gz", ["The 9 9", "the 1 2", "sound 3 4", "[PAD] 5 5", "other 7 7"], gz=True)
    emb = load_glove_embeddings(tok, path, hidden_size=2, seed=0)
    assert emb.shape == (7, 2)
    assert emb[0].tolist() == [0, 0] and emb[3].tolist() == [1, 2] and emb[6].tolist() == [3, 4]
    assert abs(emb[2]).max() < 0.1


def test_glove_non_numeric_vector_names_file_and_line(tmp_path):
    from fastformer.embeddings import load_glove_embeddings

    class Vocab:
        pad_token_id = 0

        def get_vocab(self):
            return {"[PAD]": 0, "good": 1}

    path = write_lines(tmp_path / "bad.txt", ["other x y", "good 1 oops"])  # only vocabulary words are parsed
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: non-numeric vector"):
        load_glove_embeddings(Vocab(), path, hidden_size=2)


def test_glove_invalid_utf8_lines_are_skipped_counted_and_reported(tmp_path, caplog):
    from fastformer import embeddings as glove

    class Vocab:
        pad_token_id = 0

        def get_vocab(self):
            return {"[PAD]": 0, "good": 1, "caf\ufffd": 2}

    lines = [b"good 1 1"] + [b"caf\xe9 9 9"] * 7  # Latin-1 bytes: never decoded with replacement characters
    path = write_lines(tmp_path / "latin1.txt", lines)
    with caplog.at_level("WARNING", logger=glove.__name__):
        emb = glove.load_glove_embeddings(Vocab(), path, hidden_size=2, seed=0)
    assert emb[1].tolist() == [1, 1] and abs(emb[2]).max() < 0.2  # the bad lines were skipped, not read as "caf\ufffd"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "latin1.txt: skipped 7 line(s) that are not valid UTF-8 (first lines: 2, 3, 4, 5, 6)" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger=glove.__name__):
        glove.load_glove_embeddings(Vocab(), write_lines(tmp_path / "ok.txt", [b"good 1 1"]), hidden_size=2)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def _products_file(tmp_path):
    """80 products with 1..4 reviews each, one 60-review product, and 30 reviews without asin from two sources."""
    rng = random.Random(5)
    lines, n = [], 0
    for p in range(80):
        for _ in range(1 + p % 4):
            lines.append(rec(f"review {n} of product {p} " + "word " * rng.randrange(5), rng.randint(1, 5), asin=f"P{p:03d}"))
            n += 1
    lines += [rec(f"big product review {i}", rng.randint(1, 5), asin="BIG") for i in range(60)]
    lines += [rec(f"sourced review {i}", rng.randint(1, 5), source=f"file{i % 2}.csv") for i in range(30)]
    return write_lines(tmp_path / "products.json", lines), lines


def test_grouped_split_keeps_each_product_in_one_split(tmp_path):
    path, lines = _products_file(tmp_path)
    group_of = {}
    for line in lines:
        r = json.loads(line)
        group_of[" ".join(r["reviewText"].split())] = r.get("asin") or r.get("source")
    total = len(lines)
    out = str(tmp_path / "g")
    stats = prepare_dataset(path, out, num_samples=total, split_sizes=(total - 60, 30, 30), seed=3,
                            show_progress=False, split_by="group")
    groups = {}
    for name in ("train", "dev", "test"):
        texts, _ = read_split(os.path.join(out, f"{name}.jsonl"))
        groups[name] = {group_of[t] for t in texts}
        assert len(texts) == stats["splits"][name]["size"]
        if name != "train":
            assert 27 <= len(texts) <= 30  # filled up to the asked size with whole groups
    assert not groups["train"] & groups["dev"] and not groups["train"] & groups["test"] and not groups["dev"] & groups["test"]
    assert "BIG" in groups["train"] and {"file0.csv", "file1.csv"} <= groups["train"]  # too large for dev/test (> 10 %)
    assert sum(s["size"] for s in stats["splits"].values()) == total
    assert stats["sample"]["split_by"] == "group" and stats["args"]["split_by"] == "group"
    # the same seed gives the same files; a random split of the same sample shares products between splits
    again = str(tmp_path / "g2")
    prepare_dataset(path, again, num_samples=total, split_sizes=(total - 60, 30, 30), seed=3, show_progress=False,
                    split_by="group")
    assert read_bytes(out) == read_bytes(again)
    rand = str(tmp_path / "r")
    random_stats = prepare_dataset(path, rand, num_samples=total, split_sizes=(total - 60, 30, 30), seed=3,
                                   show_progress=False)
    assert "split_by" not in random_stats["args"]  # random-split folders made before split_by stay reusable
    test_groups = {group_of[t] for t in read_split(os.path.join(rand, "test.jsonl"))[0]}
    train_groups = {group_of[t] for t in read_split(os.path.join(rand, "train.jsonl"))[0]}
    assert test_groups & train_groups
    with pytest.raises(ValueError, match="split_by"):
        prepare_dataset(path, str(tmp_path / "x"), num_samples=10, split_by="product")


def test_group_key_prefers_the_parent_product():
    from fastformer_data.reader import group_key

    assert group_key({"asin": "A1", "parent_asin": "P1"}) == "parent_asin:P1"
    assert group_key({"asin": "A1", "source": "s.csv"}) == "asin:A1"
    assert group_key({"source": "s.csv", "asin": None}) == "source:s.csv"
    assert group_key({"asin": "  "}) is None and group_key({}) is None


def test_word_vectors_from_the_training_split(tmp_path):
    """PPMI-SVD vectors: one unit vector per frequent word, seeded, and words used alike end up close."""
    from fastformer_data.word_vectors import main as vectors_main
    from fastformer_data.word_vectors import train_word_vectors
    from fastformer.tokenizer import FastformerTokenizer

    rng = random.Random(0)
    fillers = [f"w{i}" for i in range(60)]
    texts = []
    for i in range(600):  # "great" and "excellent" share contexts, "broken" and "faulty" share others
        good, bad = rng.choice(["great", "excellent"]), rng.choice(["broken", "faulty"])
        texts.append(f"this is a {good} product , really {good} sound " + " ".join(rng.sample(fillers, 4)))
        texts.append(f"it arrived {bad} and the screen was {bad} too " + " ".join(rng.sample(fillers, 4)))
    tokenize = FastformerTokenizer().tokenize
    words, vectors = train_word_vectors(texts, tokenize, dim=8, window=3, seed=0)
    index = {w: i for i, w in enumerate(words)}
    assert vectors.shape == (len(words), 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = lambda a, b: float(vectors[index[a]] @ vectors[index[b]])  # noqa: E731
    assert cos("great", "excellent") > cos("great", "faulty") and cos("broken", "faulty") > cos("broken", "excellent")
    again = train_word_vectors(texts, tokenize, dim=8, window=3, seed=0)
    assert again[0] == words and np.array_equal(again[1], vectors)
    with pytest.raises(ValueError, match="too few"):
        train_word_vectors(texts[:4], tokenize, dim=64)
    # CLI: reads only train.jsonl of a prepared folder and writes a GloVe-layout file
    data = tmp_path / "data"
    data.mkdir()
    write_lines(data / "train.jsonl", [json.dumps({"text": t, "label": 4}) for t in texts])
    out = tmp_path / "vectors.txt"
    vectors_main(["--data_dir", str(data), "--output", str(out), "--dim", "8", "--window", "3"])
    first = out.read_text().splitlines()[0].split(" ")
    assert len(first) == 9 and first[0] in index


def test_html_character_references_are_unescaped(tmp_path):
    path = write_lines(tmp_path / "r.json", [rec("He said &#34;works&#34; &amp; it does&#8230;<br/>Yes", 5)])
    reviews, _ = read(path)
    assert reviews[0].text == 'He said "works" & it does\u2026 Yes'


def test_a_folder_of_an_older_pipeline_version_is_prepared_again(demo_file, tmp_path):
    out = str(tmp_path / "o")
    stats = prepare_dataset(demo_file, out, num_samples=50, show_progress=False)
    stats["format_version"] = prepare_module.FORMAT_VERSION - 1
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump(stats, f)
    again = prepare_dataset(demo_file, out, num_samples=50, show_progress=False)
    assert again["format_version"] == prepare_module.FORMAT_VERSION
    assert json.load(open(os.path.join(out, "stats.json")))["format_version"] == prepare_module.FORMAT_VERSION
