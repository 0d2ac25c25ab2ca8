"""benchmarks/compare_models.py on a tiny prepared dataset: a train.py row (tiny config, one seed) and the TF-IDF +
logistic regression rows, the results JSON and markdown table, and a rerun that reuses the finished run."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import compare_models  # noqa: E402

from data_process import generate_demo_reviews  # noqa: E402
from data_process import prepare  # noqa: E402

ROWS = {
    "Fastformer": {"kind": "train", "args": ["--logit_adjustment", "dev", "--metric_for_best_model",
                                             "adjusted_macro_f1"]},
    "TF-IDF + logistic regression": {"kind": "tfidf"},
    "TF-IDF + logistic regression, logit adjustment on dev": {"kind": "tfidf", "logit_adjustment": "dev"},
}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    raw = str(folder / "reviews.json.gz")
    generate_demo_reviews(raw, 400, seed=3)
    prepare.main(["--input_file", raw, "--output_dir", str(folder / "data"), "--num_samples", "400",
                  "--split_sizes", "300", "50", "50", "--no_progress"])
    rows = folder / "rows.json"
    rows.write_text(json.dumps({"_comment": "ignored", **ROWS}))
    argv = ["--name", "tiny", "--data_dir", str(folder / "data"), "--config", os.path.join(ROOT, "configs", "tiny.json"),
            "--rows", str(rows), "--seeds", "1", "--work_dir", str(folder / "work"), "--results_dir",
            str(folder / "results")]
    return argv, folder, compare_models.main(argv)


def test_rows_results_and_table(compared):
    argv, folder, payload = compared
    assert list(payload["rows"]) == list(ROWS)
    fastformer = payload["rows"]["Fastformer"]
    assert len(fastformer["runs"]) == 1 and fastformer["runs"][0]["command"].startswith("python train.py ")
    run = fastformer["runs"][0]
    for key in ("test_macro_f1", "test_accuracy", "dev_macro_f1", "dev_adjusted_macro_f1"):
        assert 0.0 <= run[key] <= 1.0
        assert fastformer["summary"][key] == {"mean": run[key], "std": 0.0, "n": 1}
    assert os.path.isfile(folder / "work" / "fastformer" / "seed1" / "model" / "config.json")
    for name in list(ROWS)[1:]:
        assert payload["rows"][name]["summary"]["num_parameters"]["mean"] > 0
    assert "tau" in payload["rows"][list(ROWS)[2]]["runs"][0]["logit_adjustment"]

    table = (folder / "results" / "compare_tiny.md").read_text().splitlines()
    assert table[0] == ("| model | test macro-F1 | test accuracy | dev macro-F1 | dev, adjusted | runs | train s | "
                        "real tokens/s | parameters |")
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[0] == "Fastformer" and cells[1] == f"{100 * run['test_macro_f1']:.1f}"
    assert cells[4] == f"{100 * run['dev_adjusted_macro_f1']:.1f}" and cells[5] == "1"
    assert [c.strip() for c in table[3].split("|")[1:-1]][4] == "-"  # TF-IDF: no adjusted train.py figure
    saved = json.loads((folder / "results" / "compare_tiny.json").read_text())
    assert saved["table"] == "\n".join(table) and saved["data"]["splits"]["train"]["size"] == 300


def test_rerun_reuses_finished_runs(compared, capsys):
    argv, folder, payload = compared
    log = folder / "work" / "fastformer" / "seed1" / "train.log"
    size = log.stat().st_size
    again = compare_models.main([*argv, "--only", "Fastformer"])
    assert "train.py" not in capsys.readouterr().out.split("Fastformer:")[0]  # no command line printed: not run
    assert log.stat().st_size == size
    assert again["rows"]["Fastformer"]["runs"][0]["test_macro_f1"] == payload["rows"]["Fastformer"]["runs"][0][
        "test_macro_f1"]
    table = (folder / "results" / "compare_tiny.md").read_text()
    assert list(again["rows"]) == ["Fastformer"] and "TF-IDF" not in table


def test_unknown_row_is_refused(compared):
    argv, _, _ = compared
    with pytest.raises(SystemExit, match=r"--only: no row named \['Nope'\]"):
        compare_models.main([*argv, "--only", "Nope"])
