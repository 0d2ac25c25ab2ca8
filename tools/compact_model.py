"""Write a trained model folder compactly (float16 weights on disk) and check that it predicts as the original.

    python -m tools.compact_model --model_dir output/shipped/model --data_dir output/shipped/data \\
        --output_dir models/fastformer-amazon-reviews-rating --results benchmarks/results/shipped_model.json

The copy holds the same config, tokenizer and labels; its safetensors weights are float16 (loading restores float32).
Absolute paths in training_args.json become file names (a folder meant to be shared names no local paths); a
README.md already in --output_dir (the model card) is kept. Both folders then predict the dev and test splits of
--data_dir in float32: accuracy, macro-F1, per-class F1 and the number of predictions that differ go to --results.
"""

from __future__ import annotations

import fastformer.env  # noqa: F401

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import f1_score

from fastformer.cli import UserError, run_main
from fastformer.fileio import write_json
from fastformer.inference.loader import load_predictor
from fastformer.metrics import classification_metrics
from fastformer.model_folder import WEIGHTS_FILE, load_model_dir, save_model_dir
from fastformer.splits import read_split

CARD = "README.md"
EXTRA_FILES = ("training_args.json",)


def public_args(args):
    """`args` (nested dicts and lists) with every absolute path replaced by its file name."""
    if isinstance(args, dict):
        return {key: public_args(value) for key, value in args.items()}
    if isinstance(args, list):
        return [public_args(value) for value in args]
    return os.path.basename(args.rstrip("/")) if isinstance(args, str) and os.path.isabs(args) else args


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))


def split_figures(model_dir: str, data_dir: str, split: str) -> dict:
    texts, labels = read_split(os.path.join(data_dir, f"{split}.jsonl"))
    predictor = load_predictor(model_dir, backend="dynamic", precision="fp32")
    predictions = predictor.predict_proba(texts).argmax(axis=-1)
    names = predictor.labels
    per_class = f1_score(labels, predictions, labels=list(range(len(names))), average=None, zero_division=0)
    return {"size": len(texts), **classification_metrics(labels, predictions),
            "f1_per_class": {name: round(float(f), 4) for name, f in zip(names, per_class)},
            "predictions": predictions}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model_dir", required=True, help="trained model folder (train.py's <output_dir>/model)")
    parser.add_argument("--output_dir", required=True, help="where the compact copy goes (replaced whole)")
    parser.add_argument("--data_dir", default=None, help="prepared dataset whose dev and test splits are compared "
                        "(default: 'data' next to --model_dir)")
    parser.add_argument("--results", default=None, help="JSON file for the figures (default: printed only)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or os.path.join(os.path.dirname(os.path.abspath(args.model_dir)), "data")
    if os.path.abspath(args.output_dir) == os.path.abspath(args.model_dir):
        raise UserError("--output_dir must differ from --model_dir (the original is compared with the copy)")

    model, tokenizer = load_model_dir(args.model_dir)
    extra = {}
    for name in EXTRA_FILES:
        path = os.path.join(args.model_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                extra[name] = public_args(json.load(f))
    card = os.path.join(args.output_dir, CARD)
    card_text = None
    if os.path.isfile(card):
        with open(card, encoding="utf-8") as f:
            card_text = f.read()
    save_model_dir(model, tokenizer, args.output_dir, extra_json=extra, weights_dtype="float16",
                   extra_text={CARD: card_text} if card_text is not None else None)

    results = {"command": "python -m tools.compact_model " + " ".join(sys.argv[1:] if argv is None else argv),
               "weights_bytes": {"float32": os.path.getsize(os.path.join(args.model_dir, WEIGHTS_FILE)),
                                 "float16": os.path.getsize(os.path.join(args.output_dir, WEIGHTS_FILE))},
               "folder_bytes": folder_bytes(args.output_dir), "splits": {}}
    for split in ("dev", "test"):
        if not os.path.isfile(os.path.join(data_dir, f"{split}.jsonl")):
            continue
        before = split_figures(args.model_dir, data_dir, split)
        after = split_figures(args.output_dir, data_dir, split)
        changed = int(np.count_nonzero(before.pop("predictions") != after.pop("predictions")))
        results["splits"][split] = {"float32": before, "float16": after, "predictions_changed": changed}
        print(f"{split}: float32 accuracy {before['accuracy']:.4f} macro-F1 {before['macro_f1']:.4f} | float16 "
              f"accuracy {after['accuracy']:.4f} macro-F1 {after['macro_f1']:.4f} | {changed} of {before['size']} "
              "predictions differ")
    print(f"{args.output_dir}: weights {results['weights_bytes']['float16']:,} bytes (float32: "
          f"{results['weights_bytes']['float32']:,}), folder {results['folder_bytes']:,} bytes")
    if args.results:
        write_json(args.results, results)
    return results


if __name__ == "__main__":
    sys.exit(run_main(main))
