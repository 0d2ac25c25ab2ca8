"""benchmarks/compare_models.py on a tiny prepared dataset: a train.py row (tiny config, one seed) and the TF-IDF +
logistic regression rows, the results JSON and markdown table, and a rerun that reuses the finished run."""

import json
import os
import sys

import pytest


from benchmarks import compare_models

from fastformer_data.demo_data import generate_demo_reviews
from fastformer_data import prepare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def test_checkpoint_averaging_compares_each_epoch_and_the_mean(compared):
    from benchmarks import checkpoint_averaging

    argv, folder, payload = compared
    run = payload["rows"]["Fastformer"]["runs"][0]  # trained with the best epoch kept (no averaging)
    result = checkpoint_averaging.main(["--name", "tiny", "--runs", str(folder / "work" / "fastformer"),
                                        "--results_dir", str(folder / "results")])
    seed = result["seeds"]["seed1"]
    epochs = [name for name in seed if name.startswith("epoch ")]
    assert len(epochs) == 2 and checkpoint_averaging.MEAN in seed
    best = seed[checkpoint_averaging.BEST]
    assert best["dev_adjusted_macro_f1"] == max(seed[e]["dev_adjusted_macro_f1"] for e in epochs)
    # the rule train.py follows without averaging reproduces that run: its kept checkpoint, tau and test figures
    assert best["kept"].endswith(f"({os.path.basename(run['best_checkpoint'].rstrip('/'))})")
    assert best["tau"] == run["logit_adjustment"]["tau"]
    assert best["test_macro_f1"] == pytest.approx(run["test_macro_f1"])
    lines = (folder / "results" / "checkpoint_averaging_tiny.md").read_text().splitlines()
    assert len(lines) == 2 + 4 and lines[-1].startswith(f"| {checkpoint_averaging.BEST} |")


def test_refresh_redoes_the_final_steps_of_a_finished_run_and_keeps_its_timing(compared):
    argv, folder, payload = compared
    run_dir = folder / "work" / "fastformer" / "seed1"
    before = payload["rows"]["Fastformer"]["runs"][0]
    refreshed = compare_models.main([*argv, "--only", "Fastformer", "--refresh", "--extra", "--average_checkpoints",
                                     "true"])["rows"]["Fastformer"]["runs"][0]
    assert refreshed["resumed_from"].endswith(f"checkpoint-{before['global_step']}")
    assert refreshed["averaged_checkpoints"] and refreshed["timing_from"] == compare_models.TRAINED_RESULTS
    for key in compare_models.TRAINING_KEYS:  # the training's figures, not those of the run that trained nothing
        assert refreshed[key] == before[key]
    assert json.loads((run_dir / compare_models.TRAINED_RESULTS).read_text())["train_samples_seen"] > 0
    assert json.loads((run_dir / "test_results.json").read_text())["train_samples_seen"] == 0
    # a second refresh still reports the training's timing
    again = compare_models.main([*argv, "--only", "Fastformer", "--refresh"])["rows"]["Fastformer"]["runs"][0]
    assert again["train_seconds"] == before["train_seconds"] and "averaged_checkpoints" not in again


def test_unknown_row_is_refused(compared):
    argv, _, _ = compared
    with pytest.raises(SystemExit, match=r"--only: no row named \['Nope'\]"):
        compare_models.main([*argv, "--only", "Nope"])
