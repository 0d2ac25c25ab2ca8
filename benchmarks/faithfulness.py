"""Faithfulness of the token-importance methods (`fastformer.inference.explain`): delete words, watch the prediction.

For each review of a dev split, the words the model read are ranked by each method; the top k % (k = 1, 3, 5, 10,
at least one word, at least one word left) are deleted from the token sequence and the model is run again. Reported
per method and k: the mean drop of the originally predicted class's probability and the share of reviews whose
predicted rating changed, against deleting the k least important words and k random words (the mean of
`--random_draws` draws). A faithful method's top-k deletion hurts most and its bottom-k deletion least.

    python -m benchmarks.faithfulness --model_dir MODEL --data DEV.jsonl --output_dir benchmarks/results
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from benchmarks import common

PERCENTS = (1, 3, 5, 10)
SELECTIONS = ("top", "random", "bottom")


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="a trained model folder (train.py's model/)")
    p.add_argument("--data", required=True, help="a split file, JSON lines {text, label}")
    p.add_argument("--limit", type=_count(0), default=1000, help="reviews drawn from the split (seeded; 0: all)")
    p.add_argument("--methods", nargs="+", default=None, help="default: every method of fastformer.inference.explain")
    p.add_argument("--percents", type=_count(1), nargs="+", default=list(PERCENTS))
    p.add_argument("--random_draws", type=_count(1), default=3, help="random deletions averaged per review and k")
    p.add_argument("--ig_steps", type=_count(1), default=None, help="integrated-gradients steps (default: explain's)")
    p.add_argument("--batch_size", type=_count(1), default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output_dir", default=None, help="write <stem>.json and <stem>.md here")
    p.add_argument("--stem", default="faithfulness")
    return p.parse_args(argv)


def read_texts(path: str, limit: int, seed: int) -> List[str]:
    from fastformer_data.prepare import read_split

    texts, _ = read_split(path)
    if limit and limit < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=limit, replace=False))
        texts = [texts[i] for i in keep]
    return texts


class Review:
    """A review as the model reads it: its token ids and, per word, the positions of its read tokens."""

    def __init__(self, tokenizer, text: str, max_length: int):
        from fastformer.inference.explain import split_words

        words, tokens = split_words(tokenizer, text)
        self.ids = tokenizer.convert_tokens_to_ids(tokens[:max_length])
        self.words = [[i for i in w.tokens if i < len(self.ids)] for w in words]
        self.words = [w for w in self.words if w]

    def without(self, words: Sequence[int]) -> List[int]:
        drop = {i for w in words for i in self.words[w]}
        return [t for i, t in enumerate(self.ids) if i not in drop]


def count_for(percent: int, num_words: int) -> int:
    """Words deleted for k %: ceil(k % of the words read), at least 1, leaving at least 1."""
    return max(1, min(num_words - 1, math.ceil(percent / 100 * num_words)))


def probabilities(model, tokenizer, ids: Sequence[Sequence[int]], batch_size: int) -> np.ndarray:
    """Softmax [N, C] of id lists (batched by length, dygraph, no gradient)."""
    import paddle

    from fastformer.encoding import pad_batch
    from fastformer.inference.predictor import softmax

    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, mask = pad_batch([ids[i] for i in rows], tokenizer.pad_token_id)
        with paddle.no_grad():
            logits = model(paddle.to_tensor(input_ids), paddle.to_tensor(mask), return_dict=True).logits
        out[rows] = softmax(logits.numpy())
    return out


def measure(
    model, tokenizer, reviews: Sequence[Review], scorers: Dict[str, Callable[[List[List[int]]], List[np.ndarray]]],
    percents: Sequence[int] = PERCENTS, random_draws: int = 3, seed: int = 0, batch_size: int = 16,
) -> Dict[str, object]:
    """Deletion figures for each scorer (id lists -> per-token scores) and k %, and the random baseline."""
    base = probabilities(model, tokenizer, [r.ids for r in reviews], batch_size)
    predicted = base.argmax(-1)
    rows = np.arange(len(reviews))

    def deleted(choices: List[List[int]]) -> Dict[str, float]:
        probs = probabilities(model, tokenizer, [r.without(c) for r, c in zip(reviews, choices)], batch_size)
        drop = base[rows, predicted] - probs[rows, predicted]
        return {"drop": drop, "changed": (probs.argmax(-1) != predicted).astype(np.float64)}

    def summary(parts: List[Dict[str, np.ndarray]]) -> Dict[str, float]:
        drop = np.mean([p["drop"] for p in parts], axis=0)  # per review, over draws
        changed = np.mean([p["changed"] for p in parts], axis=0)
        return {"mean_drop": float(drop.mean()), "drop_stderr": float(drop.std(ddof=1) / np.sqrt(len(drop)))
                if len(drop) > 1 else 0.0, "changed_share": float(changed.mean())}

    rng = np.random.default_rng(seed)
    results: Dict[str, object] = {"random": {}, "methods": {}}
    per_review: Dict[str, np.ndarray] = {}  # each review's mean top-k drop over k
    for percent in percents:
        counts = [count_for(percent, len(r.words)) for r in reviews]
        draws = [deleted([list(rng.permutation(len(r.words))[:k]) for r, k in zip(reviews, counts)])
                 for _ in range(random_draws)]
        results["random"][str(percent)] = dict(summary(draws), mean_words=float(np.mean(counts)))
    for name, scorer in scorers.items():
        start = time.perf_counter()
        token_scores = scorer([r.ids for r in reviews])
        seconds = time.perf_counter() - start
        word_scores = [np.array([s[w].sum() for w in r.words]) for r, s in zip(reviews, token_scores)]
        figures, top_drops = {}, []
        for percent in percents:
            counts = [count_for(percent, len(r.words)) for r in reviews]
            # stable sorts: ties keep word order
            top = deleted([list(np.argsort(-s, kind="stable")[:k]) for s, k in zip(word_scores, counts)])
            bottom = deleted([list(np.argsort(s, kind="stable")[:k]) for s, k in zip(word_scores, counts)])
            figures[str(percent)] = {"top": summary([top]), "bottom": summary([bottom])}
            top_drops.append(top["drop"])
        results["methods"][name] = {"by_percent": figures, "explain_seconds_per_review": seconds / len(reviews)}
        per_review[name] = np.mean(top_drops, axis=0)
    best = max(per_review, key=lambda m: per_review[m].mean())
    results["most_faithful"] = best
    results["best_against"] = {}  # the best against each other method, review by review
    for other in per_review:
        if other != best:
            diff = per_review[best] - per_review[other]
            results["best_against"][other] = {
                "mean_aopc_difference": float(diff.mean()),
                "stderr": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0,
                "reviews_ahead": float((diff > 0).mean()), "reviews_behind": float((diff < 0).mean())}
    results["base"] = {"reviews": len(reviews), "mean_words_read": float(np.mean([len(r.words) for r in reviews])),
                       "mean_predicted_probability": float(base[rows, predicted].mean())}
    return results


def averages(figures: Dict[str, dict]) -> Dict[str, float]:
    """Means over k: the drop and the share of changed ratings, for each selection present."""
    out = {}
    for selection in SELECTIONS:
        rows = [f[selection] for f in figures.values() if selection in f]
        if rows:
            out[f"{selection}_drop"] = float(np.mean([r["mean_drop"] for r in rows]))
            out[f"{selection}_changed"] = float(np.mean([r["changed_share"] for r in rows]))
    return out


def table(results: dict) -> str:
    rows = []
    for name, method in results["methods"].items():
        for percent, f in method["by_percent"].items():
            rnd = results["random"][percent]
            rows.append({"method": name, "k": f"{percent} %", "words": rnd["mean_words"],
                         "top": f["top"]["mean_drop"], "random": rnd["mean_drop"], "bottom": f["bottom"]["mean_drop"],
                         "top_changed": f["top"]["changed_share"] * 100, "random_changed": rnd["changed_share"] * 100,
                         "bottom_changed": f["bottom"]["changed_share"] * 100})
    columns = [("method", "method", None), ("k", "k", None), ("words", "words", ".2f"),
               ("top", "drop top-k", ".4f"), ("random", "drop random", ".4f"), ("bottom", "drop bottom-k", ".4f"),
               ("top_changed", "changed top-k %", ".1f"), ("random_changed", "changed random %", ".1f"),
               ("bottom_changed", "changed bottom-k %", ".1f")]
    rnd = averages({p: {"random": f} for p, f in results["random"].items()})
    summary = []
    for name, method in results["methods"].items():
        avg = averages(method["by_percent"])
        summary.append({"method": name, "top": avg["top_drop"], "random": rnd["random_drop"],
                        "bottom": avg["bottom_drop"], "top_changed": avg["top_changed"] * 100,
                        "random_changed": rnd["random_changed"] * 100, "bottom_changed": avg["bottom_changed"] * 100,
                        "ms": method["explain_seconds_per_review"] * 1000})
    columns_avg = [c for c in columns if c[0] not in ("k", "words")] + [("ms", "ms/review", ".1f")]
    base = results["base"]
    return "\n".join([
        f"{base['reviews']} reviews, {base['mean_words_read']:.1f} words read on average, predicted class "
        f"probability {base['mean_predicted_probability']:.3f} on average", "",
        "Mean over k = " + ", ".join(f"{p} %" for p in results["random"]) + " (the drop of the top-k column is AOPC):",
        "", common.format_table(summary, columns_avg), "", "Per k:", "", common.format_table(rows, columns), "",
        f"most faithful (largest AOPC): {results['most_faithful']}" + _comparison(results)])


def _comparison(results: dict) -> str:
    lines = [f"\n  AOPC of {results['most_faithful']} minus that of {other}: {c['mean_aopc_difference']:.4f} +- "
             f"{c['stderr']:.4f} (standard error, paired over reviews); higher on {c['reviews_ahead'] * 100:.1f} % of "
             f"the reviews, lower on {c['reviews_behind'] * 100:.1f} %" for other, c in results["best_against"].items()]
    return "".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    header = common.result_header("faithfulness", __file__, args, argv)
    from fastformer.inference import explain
    from fastformer.model_folder import load_model_dir
    from fastformer.cli import UserError

    methods = args.methods or list(explain.METHODS)
    unknown = sorted(set(methods) - set(explain.METHODS))
    if unknown:
        raise UserError(f"--methods: unknown {unknown}; the methods are {list(explain.METHODS)}")
    model, tokenizer = load_model_dir(args.model_dir)
    max_length = tokenizer.model_max_length
    texts = read_texts(args.data, args.limit, args.seed)
    reviews = [r for r in (Review(tokenizer, t, max_length) for t in texts) if len(r.words) >= 2]
    steps = args.ig_steps or explain.IG_STEPS

    def scorer(method):
        explainer = explain.Explainer(model, tokenizer, max_length, method, batch_size=args.batch_size,
                                      ig_steps=steps)
        return lambda ids: explainer.scores(ids)[0]

    results = measure(model, tokenizer, reviews, {m: scorer(m) for m in methods}, args.percents, args.random_draws,
                      args.seed, args.batch_size)
    payload = dict(header, model_dir=args.model_dir, data=args.data, reviews_in_split=len(texts),
                   reviews_measured=len(reviews), max_length=max_length, ig_steps=steps, results=results)
    machine = header["machine"]
    text = (f"{header['command']}\n{machine['cpu']}, {machine['cores']} cores, load {machine['load_average_1_5_15min']}, "
            f"Python {machine['python']}; integrated gradients with {steps} steps\n\n" + table(results))
    if args.output_dir:
        common.write_results(args.output_dir, args.stem, payload, text)
    else:
        print(text)
    return payload


if __name__ == "__main__":
    os.environ.update(common.cpu_env(0))  # before paddle is imported
    from fastformer.cli import run_main

    sys.exit(run_main(main))
