"""The quality gate: a faster candidate (bf16, ONNX Runtime) and Paddle Inference fp32 predict the dev split;
agreement and macro-F1 change decide, recorded with both speeds in the export's manifest.json (docs/inference.md,
"Quality gate")."""

from __future__ import annotations

import os
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..fileio import write_json
from ..metrics import classification_metrics
from ..splits import read_split
from . import precision as precisions
from .folders import MANIFEST_FILE, ONNX_FILE, fused_program, read_manifest
from .predictor import Predictor
from .quantize import INT8_FILE, int8_cpu
from .runners import onnxruntime_missing

__all__ = ["MIN_AGREEMENT", "MAX_MACRO_F1_CHANGE", "GATE_KEY", "CANDIDATES", "compare_predictions",
           "default_data_file", "describe_record", "figures", "candidate_support", "run_quality_gate"]

MIN_AGREEMENT = 0.995  # share of dev reviews whose predicted rating is the fp32 one
MAX_MACRO_F1_CHANGE = 0.003  # 0.3 points of macro-F1, up or down
GATE_KEY = "quality_gate"
# what the gate checks against Paddle Inference fp32: record key -> (backend, precision)
CANDIDATES = {"bf16": ("inference", "bf16"), "fused": ("fused", "fp32"), "fused-bf16": ("fused", "bf16"),
              "onnxruntime": ("onnxruntime", "fp32"), "onnxruntime-int8": ("onnxruntime", "int8")}
# pause before each timed chunk: Intel OpenMP workers spin 200 ms after a parallel region (KMP_BLOCKTIME) and would
# slow the other engine, which no single-engine server sees
SETTLE_S = 0.2
SINGLE_TEXTS = 32  # texts each engine predicts one at a time, per round, for the single-review speed
SINGLE_ROUNDS = 3
FULL_ROUNDS = 3  # alternating turns on full batches of the longest reviews


def compare_predictions(labels: Sequence[int], reference: Sequence[int], candidate: Sequence[int]) -> Dict[str, object]:
    """The quality gate's figures: share of identical predictions and the macro-F1 change, candidate vs reference."""
    reference, candidate = np.asarray(reference).reshape(-1), np.asarray(candidate).reshape(-1)
    if len(reference) != len(candidate) or len(reference) != len(labels) or not len(labels):
        raise ValueError(f"need as many predictions as labels (>0): {len(labels)} labels, {len(reference)} reference, "
                         f"{len(candidate)} candidate")
    ref, cand = classification_metrics(labels, reference), classification_metrics(labels, candidate)
    agreement = float((reference == candidate).mean())
    change = cand["macro_f1"] - ref["macro_f1"]
    return {
        "passed": bool(agreement >= MIN_AGREEMENT and abs(change) <= MAX_MACRO_F1_CHANGE),
        "agreement": round(agreement, 6),
        "macro_f1_fp32": round(ref["macro_f1"], 6),
        "macro_f1": round(cand["macro_f1"], 6),
        "macro_f1_change": round(change, 6),
        "accuracy_fp32": round(ref["accuracy"], 6),
        "accuracy": round(cand["accuracy"], 6),
        "num_examples": int(len(labels)),
        "min_agreement": MIN_AGREEMENT,
        "max_macro_f1_change": MAX_MACRO_F1_CHANGE,
    }


def default_data_file(model_dir: str) -> str:
    """data/dev.jsonl next to a model or export folder (train.py's <output_dir>/data next to <output_dir>/model)."""
    return os.path.join(os.path.dirname(os.path.abspath(model_dir.rstrip("/\\"))), "data", "dev.jsonl")


def figures(record: dict) -> str:
    return (f"{record['agreement']:.2%} identical ratings (needs {MIN_AGREEMENT:.1%}), macro-F1 "
            f"{record['macro_f1_fp32']:.4f} -> {record['macro_f1']:.4f} "
            f"({100 * record['macro_f1_change']:+.2f} points, "
            f"limit {100 * MAX_MACRO_F1_CHANGE:.1f}) on {record['num_examples']} dev reviews")


def describe_record(record: dict) -> str:
    """One line on a quality-gate record."""
    if record["status"] in ("passed", "failed"):
        return f"{record['status']}: {figures(record)}"
    return f"{record['status']}: {record.get('reason')}"


def _record(model_dir: str, candidate: str, record: dict) -> Optional[str]:
    """Store `record` as manifest["quality_gate"][candidate]; None, or why it could not be written."""
    try:
        manifest = read_manifest(model_dir)
        if manifest is None:
            return f"{model_dir!r} has no {MANIFEST_FILE}"
        manifest.setdefault(GATE_KEY, {})[candidate] = record
        write_json(os.path.join(model_dir, MANIFEST_FILE), manifest)
    except (OSError, ValueError) as exc:
        return f"could not record it in {MANIFEST_FILE}: {exc}"
    return None


def candidate_support(candidate: str, model_dir: str, features: Optional[dict] = None) -> Tuple[bool, str]:
    """(True, "") where `candidate` can run on this machine for the export `model_dir`, else (False, why)."""
    if candidate not in CANDIDATES:
        raise ValueError(f"the quality gate compares one of {sorted(CANDIDATES)} with Paddle Inference fp32, got "
                         f"{candidate!r}")
    if candidate == "bf16":
        return precisions.bf16_support(features or precisions.cpu_features())
    if candidate in ("fused", "fused-bf16"):
        from .fused import fused_unavailable

        record, why = fused_program(read_manifest(model_dir), CANDIDATES[candidate][1])
        if record is None:
            return False, f"the export has no fused {CANDIDATES[candidate][1]} program ({why})"
        why = fused_unavailable()
        if why:
            return False, why
        return precisions.bf16_support(features or precisions.cpu_features()) if candidate == "fused-bf16" else (
            True, "")
    missing = onnxruntime_missing()
    if missing:
        return False, missing
    name = INT8_FILE if candidate == "onnxruntime-int8" else ONNX_FILE
    if not os.path.isfile(os.path.join(model_dir, name)):
        return False, (f"the export has no {name} (export_model.py --onnx writes it"
                       f"{', where onnxruntime is installed' if name == INT8_FILE else ''})")
    features = features or precisions.cpu_features()
    if candidate == "onnxruntime-int8" and not int8_cpu(features):
        return False, f"this CPU ({features['cpu']}) has no VNNI (avx512_vnni, avx_vnni) nor AMX: int8 is slow on it"
    return True, ""


def _alternate(reference: Predictor, candidate: Predictor, call, rounds: int):
    """[(reference seconds, candidate seconds)] of `call(predictor)` in alternating turns, SETTLE_S before each."""
    times = []
    for _ in range(rounds):
        pair = []
        for predictor in (reference, candidate):
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            call(predictor)
            pair.append(time.perf_counter() - t0)
        times.append(pair)
    return times


def _predict_paired(reference: Predictor, candidate: Predictor, texts: Sequence[str], chunk: int):
    """Both predictors' probabilities on `texts`, chunk by chunk in turn, and their speeds, each the median of the
    ratios over alternating turns (robust to another process's burst; before each turn the other engine's idle threads
    get SETTLE_S): "speedup" on full batches (the longest `2 * batch_size` reviews, the work of a loaded server),
    "speedup_batch_1" on single reviews (one per call, as a latency-bound client sends them) and "speedup_dev_split"
    over the split's chunks after the first (which creates most kernels for the lengths in use)."""
    ref_probs, cand_probs, times, sizes = [], [], [], []
    for start in range(0, len(texts), chunk):
        part, pair = texts[start:start + chunk], []
        for predictor, out in ((reference, ref_probs), (candidate, cand_probs)):
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            out.append(predictor.predict_proba(part))
            pair.append(time.perf_counter() - t0)
        times.append(pair)
        sizes.append(len(part))
    timed = slice(1, None) if len(times) > 1 else slice(None)
    speed = {"speedup_dev_split": round(float(np.median([ref / cand for ref, cand in times[timed]])), 3)}
    full = sorted(texts, key=len, reverse=True)[:2 * reference.batch_size]
    rounds = _alternate(reference, candidate, lambda predictor: predictor.predict_proba(full), FULL_ROUNDS)
    speed.update({"reviews_per_s_fp32": round(len(full) / min(r[0] for r in rounds), 1),
                  "reviews_per_s": round(len(full) / min(r[1] for r in rounds), 1),
                  "speedup": round(float(np.median([ref / cand for ref, cand in rounds])), 3)})
    singles = list(texts[:SINGLE_TEXTS])
    rounds = _alternate(reference, candidate, lambda predictor: [predictor.predict_proba([t]) for t in singles],
                        SINGLE_ROUNDS)
    speed.update({"single_reviews_per_s_fp32": round(len(singles) / min(r[0] for r in rounds), 1),
                  "single_reviews_per_s": round(len(singles) / min(r[1] for r in rounds), 1),
                  "speedup_batch_1": round(float(np.median([ref / cand for ref, cand in rounds])), 3)})
    return np.concatenate(ref_probs), np.concatenate(cand_probs), speed


def run_quality_gate(model_dir: str, candidate: str = "bf16", data_file: Optional[str] = None, when: str = "export",
                     features: Optional[dict] = None, **predictor_kwargs) -> dict:
    """Compare `candidate` ("bf16": Paddle Inference bf16; "fused", "fused-bf16": the export's fused programs;
    "onnxruntime": ONNX Runtime fp32 on model.onnx; "onnxruntime-int8": ONNX Runtime on model.int8.onnx) with
    Paddle Inference fp32 on the dev split of the export `model_dir`; record and return the result.

    The record has "status": "passed", "failed" or "not checked" (with a "reason": the machine lacks the candidate, no
    dev split); the checked ones carry `compare_predictions`'s figures and both predictors' speed on the split
    ("speedup": the median over alternating turns of fp32 seconds / candidate seconds on full batches of the longest
    reviews; "speedup_batch_1": the same on single reviews; "speedup_dev_split": over the split's chunks).
    `predictor_kwargs` (num_threads, batch_size, max_length) go to both predictors.
    """
    import paddle

    features = features or precisions.cpu_features()
    supported, why = candidate_support(candidate, model_dir, features)
    backend, precision = CANDIDATES[candidate]
    record: Dict[str, object] = {"precision": precision, "backend": backend, "checked_at": when, "cpu": features["cpu"],
                                 "cpu_flags": features["flags"], "paddle_version": paddle.__version__,
                                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    data_file = data_file or default_data_file(model_dir)
    if not supported:
        record.update(status="not checked", reason=why)
    elif not os.path.isfile(data_file):
        record.update(status="not checked", reason=f"no dev split to compare with fp32: {data_file!r} does not exist "
                                                   "(give --precision_data FILE)")
    else:
        texts, labels = read_split(data_file)
        if not texts:
            raise ValueError(f"{data_file!r} holds no examples")
        start = time.perf_counter()
        reference = Predictor(model_dir, backend="inference", precision="fp32", **predictor_kwargs)
        checked = Predictor(model_dir, backend=backend, precision=precision,
                            precision_note=f"{candidate} without the quality gate (not checked against fp32)",
                            **predictor_kwargs)
        ref_probs, cand_probs, speed = _predict_paired(reference, checked, texts, 4 * reference.batch_size)
        record.update(compare_predictions(labels, ref_probs.argmax(-1), cand_probs.argmax(-1)))
        record["status"] = "passed" if record.pop("passed") else "failed"
        record["max_abs_prob_diff"] = round(float(np.abs(ref_probs - cand_probs).max()), 6)
        record["data_file"] = os.path.abspath(data_file)
        record["max_length"] = reference.max_length
        record["batch_size"] = reference.batch_size
        record.update(speed)
        if backend == "onnxruntime":
            from importlib import metadata

            try:
                record["onnxruntime_version"] = metadata.version("onnxruntime")
            except metadata.PackageNotFoundError:  # a stand-in runner (tests)
                record["onnxruntime_version"] = None
        record["seconds"] = round(time.perf_counter() - start, 2)
    problem = _record(model_dir, candidate, record)
    if problem:
        record["not_recorded"] = problem
    return record
