"""Which weights to keep from a training run: one epoch's checkpoint, or the mean of all of them (train.py
--average_checkpoints), compared on the finished runs of a compare_models.py row.

    python -m benchmarks.checkpoint_averaging --name pool_random --runs output/compare/pool_random/fastformer

For every seed<S> folder under --runs (a train.py output folder with its checkpoint-<step> folders and prepared
data): the dev and test logits of each checkpoint and of the mean of their weights; for each, the logit adjustment's
tau fitted on dev as train.py fits it, then dev and test macro-F1 and accuracy after the adjustment. Also the rule
train.py follows without averaging (the checkpoint with the best adjusted dev macro-F1). Per candidate: mean ± std
over the seeds. A choice between candidates is to be made on the dev column; test is reported beside it.

Checkpoints hold pickle-format weights: this reads them as the Trainer does when it resumes, so only for runs of your
own (each is checked against its checksums.json first, see `fastformer.training.resume.checkpoint_problem`).

Writes benchmarks/results/checkpoint_averaging_<name>.json (every seed's figures) and .md (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from typing import Dict, List, Optional, Sequence


from benchmarks.common import result_header, write_results

import numpy as np

import fastformer  # noqa: F401  (before paddle)
from fastformer.splits import read_split
from fastformer import encoding
from fastformer.modeling import FastformerForSequenceClassification
from fastformer.inference.runners import DynamicRunner
from fastformer.tokenizer import FastformerTokenizer
from fastformer.metrics import classification_metrics, fit_logit_adjustment, log_prior
from fastformer.training.checkpoints import average_weights
from fastformer.training.resume import checkpoint_problem, existing_checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))

MEAN = "mean of the epoch checkpoints"
BEST = "best epoch by adjusted dev macro-F1"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--name", required=True, help="result name: benchmarks/results/checkpoint_averaging_<name>")
    parser.add_argument("--runs", required=True, help="folder of seed<S> train.py output folders (a compare row)")
    parser.add_argument("--batch_size", type=int, default=128, help="evaluation batch size")
    parser.add_argument("--results_dir", default=os.path.join(os.path.dirname(HERE), "benchmarks", "results"))
    return parser.parse_args(argv)


def checkpoints(run_dir: str) -> List[str]:
    """The run's checkpoint folders, by step; a damaged one is an error (the comparison needs them all)."""
    paths = [os.path.join(run_dir, name) for name in existing_checkpoints(run_dir)]
    for path in paths:
        problem = checkpoint_problem(path)
        if problem:
            raise SystemExit(f"{path}: {problem}")
    if not paths:
        raise SystemExit(f"{run_dir}: no checkpoint-<step> folder")
    return paths


def logits_of(runner: DynamicRunner, ids: List[List[int]], batch_size: int, num_labels: int) -> np.ndarray:
    """Logits [N, C] in input order, batches of similar lengths."""
    out = np.zeros((len(ids), num_labels), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        out[rows] = runner.run(*encoding.pad_batch([ids[i] for i in rows], 0, 8))
    return out


def evaluate_run(run_dir: str, batch_size: int) -> Dict[str, dict]:
    """{candidate: adjusted dev/test metrics and tau} for one seed's run."""
    with open(os.path.join(run_dir, "resolved_args.json"), encoding="utf-8") as f:
        data_args = json.load(f)["data"]
    data_dir = data_args["data_dir"] or os.path.join(run_dir, "data")
    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl")) for name in ("train", "dev", "test")}
    paths = checkpoints(run_dir)
    model = FastformerForSequenceClassification.from_pretrained(paths[0], use_safetensors=False)
    tokenizer = FastformerTokenizer.from_pretrained(paths[0])
    runner = DynamicRunner(model)
    num_labels = model.config.num_labels
    prior = log_prior(splits["train"][1], num_labels)
    ids = {name: encoding.encode_texts(tokenizer, splits[name][0], data_args["max_length"]) for name in ("dev", "test")}
    candidates = {f"epoch {i + 1} ({os.path.basename(p)})": [p] for i, p in enumerate(paths)}
    candidates[MEAN] = paths
    results = {}
    for name, members in candidates.items():
        weights = average_weights(members)
        model.set_state_dict(weights)
        logits = {split: logits_of(runner, ids[split], batch_size, num_labels) for split in ids}
        tau, dev = fit_logit_adjustment(logits["dev"], splits["dev"][1], prior)
        test = classification_metrics(splits["test"][1], (logits["test"] - tau * prior).argmax(axis=-1))
        results[name] = {"tau": tau, "dev_adjusted_macro_f1": dev["macro_f1"], "dev_adjusted_accuracy": dev["accuracy"],
                         "test_macro_f1": test["macro_f1"], "test_accuracy": test["accuracy"]}
        print(f"  {name}: dev {100 * dev['macro_f1']:.2f}, test {100 * test['macro_f1']:.2f} (tau {tau})", flush=True)
    epochs = [name for name in results if name != MEAN]
    best = max(epochs, key=lambda n: results[n]["dev_adjusted_macro_f1"])  # the first on a tie, as the Trainer
    results[BEST] = {**results[best], "kept": best}
    return results


def table(seeds: Dict[str, Dict[str, dict]]) -> str:
    names = list(next(iter(seeds.values())))
    lines = ["| model kept | dev macro-F1, adjusted | test macro-F1 | test accuracy | test macro-F1 per seed |",
             "| --- | ---: | ---: | ---: | --- |"]

    def pm(values):
        values = [100 * v for v in values]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.1f} ± {std:.1f}"

    for name in names:
        per = [seeds[s][name] for s in seeds]
        lines.append(f"| {name} | {pm([p['dev_adjusted_macro_f1'] for p in per])} | "
                     f"{pm([p['test_macro_f1'] for p in per])} | {pm([p['test_accuracy'] for p in per])} | "
                     + ", ".join(f"{100 * p['test_macro_f1']:.2f}" for p in per) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    seeds = sorted(name for name in os.listdir(args.runs) if re.match(r"^seed\d+$", name))
    if not seeds:
        raise SystemExit(f"--runs {args.runs}: no seed<S> folder")
    results = {}
    for seed in seeds:
        print(f"{seed}:", flush=True)
        results[seed] = evaluate_run(os.path.join(args.runs, seed), args.batch_size)
    # the epoch candidates are named by checkpoint step: the same in every seed of one row
    if len({tuple(r) for r in results.values()}) != 1:
        raise SystemExit("the seeds' runs saved different checkpoints; compare runs of one configuration")
    markdown = table(results)
    payload = {**result_header("checkpoint_averaging", __file__, args, argv), "runs": args.runs, "seeds": results,
               "table": markdown}
    write_results(args.results_dir, f"checkpoint_averaging_{args.name}", payload, markdown)
    return payload


if __name__ == "__main__":
    main()
