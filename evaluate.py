"""Evaluate a trained or exported Fastformer classifier (a rating one, or one of your own labels) on labelled data.

    python evaluate.py --model_dir output/demo/model                       # test split of output/demo/data
    python evaluate.py --model_dir output/demo/export --split dev          # the exported model (Paddle Inference)
    python evaluate.py --model_dir output/demo/model --data_file my.jsonl --output_dir output/demo/eval_my
    python evaluate.py --model_dir output/mine/model --data_file more.csv --text_column text --label_column label

Data: `--data_dir DIR --split test|dev|train` (a folder written by data_process / train.py; default: the `data`
folder next to the model folder, i.e. <output_dir>/data of train.py), `--data_file FILE.jsonl` (lines
{"text": ..., "label": class id}, for a rating model label = stars - 1), or a labelled CSV/TSV/JSON-lines file
whose labels are the model's label names (`--data_file FILE.csv`, or any file with --text_column/--label_column;
docs/own_data.md).

Model: a trained model folder (train.py's <output_dir>/model, run as a dygraph model) or an export folder
(export_model.py, run by Paddle Inference); `--backend auto` tells them apart. Texts are truncated to the training
max_length (recorded in the model folder by train.py: tokenizer_config.json's model_max_length, or the export's
manifest) unless --max_length is given.

Writes to --output_dir (default: eval_<split> next to the model folder): eval_results.json (accuracy, macro-F1,
per-class precision/recall/F1/support, confusion matrix, the classification report, calibration errors),
confusion_matrix.png, reliability_diagram.png, and misclassified.jsonl / .html (worst first, with top words:
docs/explanations.md), each whole or not at all; prints the report and the matrix. A model giving NaN/Inf outputs,
a missing or malformed data file or an unusable model folder is a one-line error (exit status 2) and writes nothing.
"""

import fastformer.env  # noqa: F401  (first, before paddle loads: MKL settings)

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

import numpy as np

from fastformer.cli import UserError, printable, run_main
from fastformer.fileio import atomic_open, write_json
from fastformer.plots import plot_reliability
from fastformer.calibration import calibration_summary
from fastformer.inference.args import add_predictor_args
from fastformer.inference.explain_methods import DEFAULT_METHOD, METHODS
from fastformer.splits import LABEL_FILE, read_label_names, read_split

SPLITS = ("test", "dev", "train")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model_dir", required=True, help="trained model folder (train.py) or export folder")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split of --data_dir to evaluate")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data_dir", default=None,
                      help="prepared dataset folder (default: 'data' next to the model folder)")
    data.add_argument("--data_file", default=None,
                      help="a JSON-lines file of {'text', 'label': class id}, or a labelled CSV/TSV file, instead of "
                      "a split")
    parser.add_argument("--text_column", nargs="+", default=None, metavar="COLUMN",
                        help="labelled --data_file: the text column(s), joined (default: text)")
    parser.add_argument("--label_column", default=None,
                        help="labelled --data_file: the column of label names (default: label)")
    parser.add_argument("--output_dir", default=None,
                        help="where eval_results.json and confusion_matrix.png go (default: eval_<split> next to "
                        "the model folder)")
    parser.add_argument("--misclassified_explained", type=int, default=200,
                        help="explain the N worst misclassified examples (their top words; 0: none)")
    parser.add_argument("--explain_method", choices=METHODS, default=DEFAULT_METHOD,
                        help="token importance for them (docs/explanations.md)")
    add_predictor_args(parser)
    args = parser.parse_args(argv)
    if args.misclassified_explained < 0:
        parser.error(f"--misclassified_explained must be 0 or more, got {args.misclassified_explained}")
    return args


def _parent(model_dir: str) -> str:
    return os.path.dirname(os.path.abspath(model_dir.rstrip("/\\")))


def plot_confusion_matrix(matrix: np.ndarray, labels: List[str], path: str, title: str, axis: str = "rating (stars)"
                          ) -> None:
    """Counts in each cell, colour = share of the true class (row-normalised); labelled axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.2, 5.2), dpi=120)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel(f"Predicted {axis}")
    ax.set_ylabel(f"True {axis}")
    ax.set_title(title, fontsize=10)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def evaluate(labels: Sequence[int], predictions: Sequence[int], names: List[str]) -> dict:
    """Metrics of `predictions` against `labels` for classes 0..len(names)-1."""
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    from fastformer.metrics import classification_metrics

    classes = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    matrix = confusion_matrix(labels, predictions, labels=classes)
    return {
        **classification_metrics(labels, predictions),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "labels": names,
        "confusion_matrix": matrix.tolist(),
        "report": classification_report(labels, predictions, labels=classes, target_names=names, digits=4,
                                        zero_division=0),
    }


def format_matrix(matrix: Sequence[Sequence[int]], names: List[str], stars: bool = True) -> str:
    rows = [f"{name} star(s)" if stars else printable(name) for name in names]
    width = max(6, max(len(str(v)) for row in matrix for v in row) + 1, *(len(printable(n)) + 1 for n in names))
    lines = ["true \\ predicted".ljust(max(18, *map(len, rows))) + "".join(printable(n).rjust(width) for n in names)]
    lines += [row.ljust(max(18, *map(len, rows))) + "".join(str(v).rjust(width) for v in values)
              for row, values in zip(rows, matrix)]
    return "\n".join(lines)


def labelled_file(args) -> bool:
    """Whether --data_file is read as a labelled file of label names (CSV/TSV, or --text_column/--label_column)."""
    name = (args.data_file or "").lower()
    name = name[:-3] if name.endswith(".gz") else name
    return bool(args.data_file) and (name.endswith((".csv", ".tsv", ".tab")) or args.text_column is not None
                                      or args.label_column is not None)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the evaluation as on the command line (`argv` without the program name); returns the results."""
    args = parse_args(argv)
    from fastformer.inference.bad_cases import misclassified_records, write_misclassified
    from fastformer.inference.explain import explainer_for
    from fastformer.inference.loader import predictor_from_args  # after the flags: --help does not load paddle
    from fastformer.inference.predictor import NonFiniteOutputError

    if args.data_file:
        data_file, name = args.data_file, os.path.splitext(os.path.basename(args.data_file))[0]
    else:
        data_dir = args.data_dir or os.path.join(_parent(args.model_dir), "data")
        data_file, name = os.path.join(data_dir, f"{args.split}.jsonl"), args.split
    if os.path.isdir(data_file):
        raise UserError(f"evaluation data {data_file!r} is a directory, not a JSON-lines file")
    if not os.path.isfile(data_file):
        raise FileNotFoundError(f"evaluation data {data_file!r} not found (give --data_dir or --data_file)")
    output_dir = args.output_dir or os.path.join(_parent(args.model_dir), f"eval_{name}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserError(f"--output_dir {output_dir!r} is a file, not a folder")

    if (args.text_column or args.label_column) and not args.data_file:
        raise UserError("--text_column and --label_column describe a labelled --data_file")
    predictor = predictor_from_args(args)
    names = predictor.labels
    if labelled_file(args):
        from fastformer_data.labelled_files import read_labelled_file

        texts, labels, _ = read_labelled_file(data_file, args.text_column or ["text"], args.label_column or "label",
                                              names)
    else:
        folder = os.path.dirname(os.path.abspath(data_file))
        if not args.data_file and os.path.isfile(os.path.join(folder, LABEL_FILE)) and read_label_names(folder) != names:
            raise UserError(f"{os.path.join(folder, LABEL_FILE)} names the labels {read_label_names(folder)}, the "
                            f"model's are {names}: this dataset is not the model's")
        try:
            texts, labels = read_split(data_file, len(names))
        except ValueError as exc:  # names the file and the line
            raise UserError(str(exc)) from exc
    if not texts:
        raise UserError(f"{data_file!r} holds no examples")

    start = time.perf_counter()
    try:
        probabilities = predictor.predict_proba(texts)
    except NonFiniteOutputError as exc:
        lines = ", ".join(str(i + 1) for i in exc.indices[:10]) + (" ..." if len(exc.indices) > 10 else "")
        raise UserError(f"the model in {args.model_dir!r} gave non-finite logits (NaN or Inf) for "
                        f"{len(exc.indices)} of {len(texts)} examples of {data_file!r} (lines {lines}): its weights "
                        "are damaged or the model diverged; nothing was written") from exc
    seconds = time.perf_counter() - start
    predictions = probabilities.argmax(axis=-1)
    results = {
        "model_dir": os.path.abspath(args.model_dir),
        "backend": predictor.backend,
        "precision": predictor.precision,
        "precision_note": predictor.precision_note,
        "small_batches": getattr(predictor, "small_batch", None),
        "data_file": os.path.abspath(data_file),
        "split": None if args.data_file else args.split,
        "num_examples": len(texts),
        "max_length": predictor.max_length,
        **evaluate(labels, predictions, names),
        "predicted_distribution": {n: int(c) for n, c in zip(names, np.bincount(predictions, minlength=len(names)))},
        "seconds": round(seconds, 3),
        "examples_per_second": round(len(texts) / seconds, 1) if seconds > 0 else None,
    }

    os.makedirs(output_dir, exist_ok=True)
    png = os.path.join(output_dir, "confusion_matrix.png")
    plot_confusion_matrix(
        np.asarray(results["confusion_matrix"]), names, png,
        f"{name}: accuracy {results['accuracy']:.4f}, macro-F1 {results['macro_f1']:.4f} (n={len(texts)})",
        axis="rating (stars)" if predictor.rating_model else "label",
    )
    results["confusion_matrix_png"] = os.path.abspath(png)
    calibration = calibration_summary(probabilities, labels, names)
    reliability = os.path.join(output_dir, "reliability_diagram.png")
    plot_reliability(calibration, reliability, f"{name}: reliability per class (n={len(texts)})")
    results["calibration"] = calibration
    results["reliability_diagram_png"] = os.path.abspath(reliability)

    explainer = None
    if args.misclassified_explained and predictor.dynamic_model is not None:
        explainer = explainer_for(predictor, args.explain_method)
    bad = misclassified_records(texts, labels, probabilities, names, explainer, args.misclassified_explained)
    explained = sum(r["top_words"] is not None for r in bad)
    why = f"top words by {args.explain_method.replace('_', ' ')} for the {explained} worst" if explained else (
        "no top words (an export holds no gradients: evaluate the model folder)" if explainer is None and
        args.misclassified_explained else "no top words")
    paths = write_misclassified(output_dir, bad, f"Misclassified: {name}",
                                f"{len(bad)} of {len(texts)} reviews, worst first (by -log p(true class)); {why}")
    results["misclassified"] = {"count": len(bad), "explained": explained, "method": args.explain_method,
                                **{k: os.path.abspath(v) for k, v in paths.items()}}
    write_json(os.path.join(output_dir, "eval_results.json"), results)

    print(f"{printable(results['model_dir'])} ({predictor.backend}, {predictor.precision}) on {printable(data_file)}: "
          f"{len(texts)} {'reviews' if predictor.rating_model else 'texts'}")
    print(f"accuracy {results['accuracy']:.4f}   macro-F1 {results['macro_f1']:.4f}\n")
    print(results["report"])
    what = "rating" if predictor.rating_model else "label"
    print(f"confusion matrix (rows: true {what}, columns: predicted {what})")
    print(format_matrix(results["confusion_matrix"], names, stars=predictor.rating_model))
    print(f"\ntop-label calibration error {calibration['top_label_ece']:.4f}; {len(bad)} misclassified ({why})")
    written = [os.path.join(output_dir, "eval_results.json"), png, reliability, paths["jsonl"], paths["html"]]
    print("wrote " + ", ".join(printable(path) for path in written))
    sys.stdout.flush()
    return results


def console_main() -> int:
    """The `fastformer-evaluate` command (pyproject.toml): `main` with one-line errors, as `python evaluate.py`."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(console_main())
