"""Model comparison on one prepared dataset, in the spirit of the paper's Table 4: Fastformer, a same-size softmax
Transformer and TF-IDF + logistic regression, on the same splits, over several seeds.

    # prepare the split once (random or grouped by product), then compare (3 seeds by default)
    python -m fastformer_data.prepare --input_file REVIEWS.json.gz --output_dir output/compare/random/data \\
        --num_samples 33000 --split_sizes 28000 2500 2500
    python -m benchmarks.compare_models --name random --data_dir output/compare/random/data

    # ablation rows: each row is train.py flags on top of the config (see benchmarks/ablation_rows.json)
    python -m benchmarks.compare_models --name ablation --data_dir output/compare/random/data \\
        --rows benchmarks/ablation_rows.json --seeds 42

Every neural row runs `train.py CONFIG --input_file "" --data_dir DATA_DIR --seed S --output_dir
<work_dir>/<row>/seed<S> ROW_FLAGS` in its own process (the Trainer path users run, so the same tokenizer built from
the same train split, the same sampler and epoch selection); a finished run (its test_results.json) is reused, so an
interrupted comparison resumes. --refresh runs train.py again in finished folders: it resumes at the last checkpoint
and redoes only what follows training (checkpoint averaging, logit adjustment, model folder, test), e.g. after those
steps changed; the timing reported stays that of the run that trained. TF-IDF + logistic regression (word 1-2 grams,
sublinear tf, min_df 2, balanced class weights; scikit-learn) is fitted on the same train.jsonl; it is
deterministic, so it runs once.

Writes benchmarks/results/compare_<name>.json (every run's figures, per-row mean and std) and compare_<name>.md (the
table: test macro-F1 and accuracy as mean ± std over seeds, dev macro-F1 (and, where train.py fitted a logit
adjustment, the adjusted dev macro-F1 it keeps the epoch by), training seconds, real tokens/s,
parameters).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence


from benchmarks.common import ROOT, result_header, write_results

from fastformer.fileio import write_json

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_ROWS = {
    "Fastformer": {"kind": "train", "args": []},
    "Transformer (softmax attention)": {"kind": "train", "args": ["--attention_type", "softmax"]},
    "TF-IDF + logistic regression": {"kind": "tfidf"},
    "TF-IDF + logistic regression, logit adjustment on dev": {"kind": "tfidf", "logit_adjustment": "dev"},
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--name", required=True, help="result name: benchmarks/results/compare_<name>.json/.md")
    parser.add_argument("--data_dir", required=True, help="prepared dataset folder (train/dev/test.jsonl)")
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "amazon_electronics.json"),
                        help="train.py config of every neural row (default: the paper setting)")
    parser.add_argument("--rows", default=None,
                        help="JSON file {row name: {'kind': 'train', 'args': [flags], 'seeds': [optional subset of "
                        "--seeds]} or {'kind': 'tfidf'}} (default: Fastformer, softmax Transformer, TF-IDF + LR)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these rows of --rows (by name)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="training seeds (default 3)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="train.py flags added to every neural row (after the row's own), e.g. --extra "
                        "--num_train_epochs 1")
    parser.add_argument("--refresh", action="store_true",
                        help="run train.py again in folders whose run has finished: it resumes from the last "
                        "checkpoint, so a finished training redoes only what follows it (checkpoint averaging, logit "
                        "adjustment, model folder, test) under the current code and config; the timing of the run "
                        f"that trained is kept in {TRAINED_RESULTS} and reported")
    parser.add_argument("--work_dir", default=None, help="where the runs go (default output/compare/<name>)")
    parser.add_argument("--results_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    return parser.parse_args(argv)


def load_rows(path: Optional[str], only: Optional[Sequence[str]]) -> Dict[str, dict]:
    rows = DEFAULT_ROWS
    if path:
        with open(path, encoding="utf-8") as f:
            rows = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    if only:
        missing = [name for name in only if name not in rows]
        if missing:
            raise SystemExit(f"--only: no row named {missing}; rows are {list(rows)}")
        rows = {name: rows[name] for name in only}
    for name, row in rows.items():
        if row.get("kind") not in ("train", "tfidf"):
            raise SystemExit(f"row {name!r}: kind must be 'train' or 'tfidf', got {row.get('kind')!r}")
    return rows


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


TRAINED_RESULTS = "test_results.trained.json"  # a refreshed run's results as they were when it trained
TRAINING_KEYS = ("train_seconds", "train_samples_seen", "train_real_tokens", "train_padded_tokens",
                 "train_real_tokens_per_second", "train_padded_tokens_per_second", "train_samples_per_second",
                 "padding_fraction")


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_train(args, row_args: List[str], seed: int, out_dir: str) -> dict:
    """One train.py run (or its earlier result, unless --refresh); its test_results.json plus the command. A run
    that trained nothing (a finished training resumed by --refresh) reports the timing of the run that trained."""
    results_file = os.path.join(out_dir, "test_results.json")
    trained_file = os.path.join(out_dir, TRAINED_RESULTS)
    if args.refresh and os.path.isfile(results_file):
        previous = _read_json(results_file)
        if previous.get("train_samples_seen"):  # written by a run that trained: its timing is the one to keep
            write_json(trained_file, previous)
    command = [sys.executable, os.path.join(ROOT, "train.py"), args.config, "--input_file", "", "--data_dir",
               args.data_dir, "--output_dir", out_dir, "--seed", str(seed), "--disable_tqdm", "true",
               *row_args, *args.extra]
    if args.refresh or not os.path.isfile(results_file):
        os.makedirs(out_dir, exist_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] {' '.join(command[1:])}", flush=True)
        with open(os.path.join(out_dir, "train.log"), "a", encoding="utf-8") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if code != 0:
            raise SystemExit(f"train.py failed (exit {code}); see {os.path.join(out_dir, 'train.log')}")
    result = _read_json(results_file)
    if not result.get("train_samples_seen") and os.path.isfile(trained_file):
        trained = _read_json(trained_file)
        result.update({key: trained[key] for key in TRAINING_KEYS if key in trained}, timing_from=TRAINED_RESULTS)
    result["command"] = " ".join(["python", *[os.path.relpath(c, ROOT) if os.path.isabs(c) else c
                                               for c in command[1:]]])
    return result


def run_tfidf(data_dir: str, logit_adjustment: str = "none") -> dict:
    """TF-IDF (word 1-2 grams, sublinear tf, min_df 2) + logistic regression with balanced class weights.

    `logit_adjustment` "dev": the same prior correction as train.py's, its tau fitted on dev, applied to the
    classifier's log-probabilities on test."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from fastformer.splits import read_split
    from fastformer.metrics import classification_metrics, fit_logit_adjustment, log_prior

    splits = {name: read_split(os.path.join(data_dir, f"{name}.jsonl")) for name in ("train", "dev", "test")}
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform(splits["train"][0])
    classifier = LogisticRegression(class_weight="balanced", max_iter=2000).fit(features, splits["train"][1])
    seconds = time.perf_counter() - start
    result = {"train_seconds": round(seconds, 2), "num_parameters": int(classifier.coef_.size + classifier.intercept_.size)}
    scores = {name: classifier.predict_log_proba(vectorizer.transform(splits[name][0])) for name in ("dev", "test")}
    shift = 0.0
    if logit_adjustment == "dev":
        prior = log_prior(splits["train"][1], scores["dev"].shape[1])
        tau, _ = fit_logit_adjustment(scores["dev"], splits["dev"][1], prior)
        shift = tau * prior
        result["logit_adjustment"] = {"tau": tau}
    for name in ("dev", "test"):
        metrics = classification_metrics(splits[name][1], classifier.classes_[(scores[name] - shift).argmax(axis=1)])
        result.update({f"{name}_{k}": v for k, v in metrics.items()})
    return result


def vocabulary_coverage(data_dir: str, min_freqs: Sequence[int] = (1, 2, 3, 5)) -> Dict[str, dict]:
    """Per vocab_min_freq: vocabulary size (built from train.jsonl as train.py does) and the share of dev/test tokens
    that are [UNK]; and the test texts' length in tokens (median, share longer than 128/256/512)."""
    from fastformer.splits import read_split
    from fastformer.tokenizer import FastformerTokenizer

    texts = {name: read_split(os.path.join(data_dir, f"{name}.jsonl"))[0] for name in ("train", "dev", "test")}
    out: Dict[str, dict] = {}
    for min_freq in min_freqs:
        tokenizer = FastformerTokenizer.build_from_corpus(texts["train"], min_freq=min_freq)
        unk = tokenizer.vocab[tokenizer.unk_token]
        row = {"vocab_size": len(tokenizer)}
        for name in ("dev", "test"):
            ids = tokenizer.encode_batch(texts[name])["input_ids"]
            total = sum(len(x) for x in ids)
            row[f"{name}_unk_share"] = round(sum(i == unk for x in ids for i in x) / max(total, 1), 4)
        out[f"min_freq_{min_freq}"] = row
    lengths = [len(FastformerTokenizer().tokenize(t)) for t in texts["test"]]
    out["test_tokens"] = {"median": float(statistics.median(lengths)),
                          **{f"share_longer_than_{n}": round(sum(x > n for x in lengths) / len(lengths), 4)
                             for n in (128, 256, 512)}}
    return out


def summary(runs: List[dict]) -> dict:
    """Mean and (sample) std over the runs of each figure."""
    out = {}
    for key in ("test_macro_f1", "test_accuracy", "dev_macro_f1", "dev_adjusted_macro_f1", "dev_accuracy",
                "train_seconds", "train_real_tokens_per_second", "num_parameters"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "n": len(values)}
    return out


def markdown(rows: Dict[str, dict], seeds: Sequence[int]) -> str:
    def pm(s: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
        if key not in s:
            return "-"
        m, sd = s[key]["mean"] * scale, s[key]["std"] * scale
        return f"{m:.{digits}f} ± {sd:.{digits}f}" if s[key]["n"] > 1 else f"{m:.{digits}f}"

    adjusted = any("dev_adjusted_macro_f1" in row["summary"] for row in rows.values())
    lines = ["| model | test macro-F1 | test accuracy | dev macro-F1 |" + (" dev, adjusted |" if adjusted else "")
             + " runs | train s | real tokens/s | parameters |",
             "| --- | ---: | ---: | ---: |" + (" ---: |" if adjusted else "") + " ---: | ---: | ---: | ---: |"]
    for name, row in rows.items():
        s = row["summary"]
        tokens = "-" if "train_real_tokens_per_second" not in s else f"{s['train_real_tokens_per_second']['mean']:,.0f}"
        params = "-" if "num_parameters" not in s else f"{s['num_parameters']['mean']:,.0f}"
        lines.append(
            f"| {name} | {pm(s, 'test_macro_f1')} | {pm(s, 'test_accuracy')} | {pm(s, 'dev_macro_f1')} | "
            + (f"{pm(s, 'dev_adjusted_macro_f1')} | " if adjusted else "")
            + f"{len(row['runs'])} | {pm(s, 'train_seconds', 1.0, 0)} | {tokens} | {params} |"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    rows = load_rows(args.rows, args.only)
    work_dir = args.work_dir or os.path.join(ROOT, "output", "compare", args.name)
    for split in ("train", "dev", "test"):
        if not os.path.isfile(os.path.join(args.data_dir, f"{split}.jsonl")):
            raise SystemExit(f"--data_dir {args.data_dir!r} lacks {split}.jsonl "
                             "(prepare it with fastformer_data.prepare)")
    stats_file = os.path.join(args.data_dir, "stats.json")
    data_stats = json.load(open(stats_file, encoding="utf-8")) if os.path.isfile(stats_file) else {}
    results = {}
    for name, row in rows.items():
        if row["kind"] == "tfidf":
            runs = [run_tfidf(args.data_dir, row.get("logit_adjustment", "none"))]
        else:
            seeds = [seed for seed in args.seeds if seed in row.get("seeds", args.seeds)]
            runs = [run_train(args, list(row.get("args", [])), seed, os.path.join(work_dir, slug(name), f"seed{seed}"))
                    for seed in seeds]
        results[name] = {"kind": row["kind"], "args": row.get("args", []), "runs": runs, "summary": summary(runs)}
        s = results[name]["summary"]
        print(f"{name}: test macro-F1 {100 * s['test_macro_f1']['mean']:.2f} ± {100 * s['test_macro_f1']['std']:.2f}, "
              f"accuracy {100 * s['test_accuracy']['mean']:.2f} ± {100 * s['test_accuracy']['std']:.2f}", flush=True)
    table = markdown(results, args.seeds)
    payload = {
        **result_header("compare_models", __file__, args, argv),
        "data": {"data_dir": args.data_dir, "args": data_stats.get("args"),
                 "splits": {k: {"size": v["size"], "labels": v["labels"]}
                            for k, v in data_stats.get("splits", {}).items()},
                 "split_by": data_stats.get("sample", {}).get("split_by", "random"),
                 "vocabulary": vocabulary_coverage(args.data_dir)},
        "rows": results,
        "table": table,
    }
    write_results(args.results_dir, f"compare_{args.name}", payload, table)
    return payload


if __name__ == "__main__":
    main()
