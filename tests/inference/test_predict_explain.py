"""predict.py --explain / --explain_html on a tiny model folder."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import pytest

import predict as predict_script
from fastformer.cli import UserError
from fastformer.inference.explain import explainer_for
from fastformer.model_folder import save_model_dir
from reference_numpy import realistic_weights
from tiny_model import tiny_model

CORPUS = ["great product , works perfectly and the battery lasts all day .",
          "stopped working after two days , waste of money .", "the sound is fine but the cable is too short ."]
TEXTS = ["Great product, works perfectly!", "Stopped working after two days: waste of money.",
         "<script>alert(1)</script> the sound is fine"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("explain") / "model")
    model, tokenizer = tiny_model(CORPUS, seed=5)
    realistic_weights(model, seed=5)
    save_model_dir(model, tokenizer, path)
    return path


def _jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_explain_adds_explanations_and_changes_nothing_else(model_dir, tmp_path, capsys):
    plain, explained = tmp_path / "plain.jsonl", tmp_path / "explained.jsonl"
    base = ["--model_dir", model_dir, "--format", "jsonl", *TEXTS]
    assert predict_script.main([*base, "--output", str(plain)]) == 0
    assert predict_script.main([*base, "--output", str(explained), "--explain", "--explain_attention"]) == 0
    for before, after in zip(_jsonl(plain.read_text()), _jsonl(explained.read_text())):
        explanation = after.pop("explanation")
        assert after == before  # the prediction fields are those without --explain
        assert explanation["label"] == before["label"] and explanation["method"] == "integrated_gradients"
        assert len(explanation["tokens"]) == len(explanation["token_scores"]) > 0
        assert sum(abs(s) for s in explanation["token_scores"]) == pytest.approx(1, abs=1e-3)
        assert [w["word"] for w in explanation["words"]] == before["text"].split()
        weights = explanation["model_weights"]
        assert len(weights["pooling"]) == len(explanation["tokens"]) and len(weights["alpha"]) == 1  # 1 layer


def test_the_table_lists_top_words_plain_or_highlighted(model_dir, monkeypatch, capsys):
    assert predict_script.main(["--model_dir", model_dir, "--explain", "--explain_method", "pooling", *TEXTS]) == 0
    out = capsys.readouterr().out
    assert out.count("top words (pooling): ") == len(TEXTS) and "\x1b[" not in out  # not a terminal: plain
    record = {"index": 0, "text": TEXTS[0], "rating": 5, "probabilities": {"5": 0.9}, "truncated_tokens": 0,
              "unk_share": 0.0, "error": None,
              "explanation": {"method": "gradient", "top_words": ["Great", "works"],
                              "words": [{"word": w, "score": s} for w, s in zip(TEXTS[0].split(), [.5, -.1, .3, .1])]}}

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    predict_script.TableWriter(terminal, "#").write(record)
    row = terminal.getvalue().splitlines()[2]
    assert f"{predict_script.HIGHLIGHT}Great{predict_script.PLAIN} product, {predict_script.HIGHLIGHT}works" in row
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    predict_script.TableWriter(plain, "#").write(record)
    assert "\x1b[" not in plain.getvalue() and "top words (gradient): Great, works" in plain.getvalue()


def test_preview_highlight_keeps_the_width():
    text = "alpha beta gamma delta " * 5
    marked = predict_script._preview(text, 30, marked=[1, 3, 5])  # 5 is cut off
    assert marked.replace(predict_script.HIGHLIGHT, "").replace(predict_script.PLAIN, "") == predict_script._preview(
        text, 30)
    assert marked.count(predict_script.HIGHLIGHT) == 2


def test_explain_html_page(model_dir, tmp_path, capsys):
    page = tmp_path / "why.html"
    lines = tmp_path / "in.txt"
    lines.write_text("\n".join(TEXTS[:2] + ["", TEXTS[2]]) + "\n")
    assert predict_script.main(["--model_dir", model_dir, "--input_file", str(lines), "--explain_html",
                                str(page), "--explain_method", "gradient"]) == 1  # the blank line is an error
    html = page.read_text()
    assert html.count('class="review"') == 4 and "not predicted: line 3: empty text" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert capsys.readouterr().out.count("top words (gradient)") == 3  # --explain_html implies --explain


def test_explain_html_paths_are_checked(model_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="--explain_html .* is a directory"):
        predict_script.main(["--model_dir", model_dir, "--explain_html", str(tmp_path), "x"])
    with pytest.raises(UserError, match="inside the model folder"):
        predict_script.main(["--model_dir", model_dir, "--explain_html", f"{model_dir}/p.html", "x"])
    out = str(tmp_path / "same")
    with pytest.raises(UserError, match="also --output"):
        predict_script.main(["--model_dir", model_dir, "--explain_html", out, "--output", out, "x"])


def test_an_export_cannot_be_explained():
    export = SimpleNamespace(dynamic_model=None, model_dir="out/export")
    with pytest.raises(UserError, match="is an export: .*trained model folder"):
        explainer_for(export)


def test_csv_output_gets_a_top_words_column(model_dir, tmp_path):
    out = tmp_path / "out.csv"
    assert predict_script.main(["--model_dir", model_dir, "--explain", "--explain_method", "pooling",
                                "--output", str(out), *TEXTS[:2]]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and all(json.loads(r["top_words"]) for r in rows)
    assert rows[0]["label"] and rows[0]["top_words"].startswith("[")
