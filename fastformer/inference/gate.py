"""The bf16 quality gate: bf16 and fp32 predict the dev split; agreement and macro-F1 change decide, recorded in the
export's manifest.json (docs/inference.md, "Quality gate")."""

from __future__ import annotations

import os
import time
from typing import Dict, Optional, Sequence

import numpy as np

from ..fileio import write_json
from ..metrics import classification_metrics
from ..splits import read_split
from . import precision as precisions
from .folders import MANIFEST_FILE, read_manifest
from .predictor import Predictor

__all__ = ["MIN_AGREEMENT", "MAX_MACRO_F1_CHANGE", "GATE_KEY", "compare_predictions", "default_data_file",
           "describe_record", "figures", "run_quality_gate"]

MIN_AGREEMENT = 0.995  # share of dev reviews whose predicted rating is the fp32 one
MAX_MACRO_F1_CHANGE = 0.003  # 0.3 points of macro-F1, up or down
GATE_KEY = "quality_gate"


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


def _record(model_dir: str, precision: str, record: dict) -> Optional[str]:
    """Store `record` as manifest["quality_gate"][precision]; None, or why it could not be written."""
    try:
        manifest = read_manifest(model_dir)
        if manifest is None:
            return f"{model_dir!r} has no {MANIFEST_FILE}"
        manifest.setdefault(GATE_KEY, {})[precision] = record
        write_json(os.path.join(model_dir, MANIFEST_FILE), manifest)
    except (OSError, ValueError) as exc:
        return f"could not record it in {MANIFEST_FILE}: {exc}"
    return None


def run_quality_gate(model_dir: str, precision: str = "bf16", data_file: Optional[str] = None, when: str = "export",
                     features: Optional[dict] = None, **predictor_kwargs) -> dict:
    """Compare `precision` with fp32 on the dev split of the export `model_dir`; record and return the result.

    The record has "status": "passed", "failed" or "not checked" (with a "reason": the CPU lacks the precision, no
    dev split); the checked ones carry `compare_predictions`'s figures. `predictor_kwargs` (num_threads,
    batch_size, max_length) go to both predictors.
    """
    import paddle

    if precision not in precisions.REDUCED_PRECISIONS:
        raise ValueError(f"the quality gate compares a reduced precision {precisions.REDUCED_PRECISIONS} with fp32, got "
                         f"{precision!r}")
    features = features or precisions.cpu_features()
    record: Dict[str, object] = {"precision": precision, "checked_at": when, "cpu": features["cpu"],
                                 "cpu_flags": features["flags"], "paddle_version": paddle.__version__,
                                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    supported, why = precisions.bf16_support(features)
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
        candidate = Predictor(model_dir, backend="inference", precision=precision,
                              precision_note=f"{precision} without the quality gate (not checked against fp32)",
                              **predictor_kwargs)
        ref_probs, cand_probs = reference.predict_proba(texts), candidate.predict_proba(texts)
        record.update(compare_predictions(labels, ref_probs.argmax(-1), cand_probs.argmax(-1)))
        record["status"] = "passed" if record.pop("passed") else "failed"
        record["max_abs_prob_diff"] = round(float(np.abs(ref_probs - cand_probs).max()), 6)
        record["data_file"] = os.path.abspath(data_file)
        record["max_length"] = reference.max_length
        record["seconds"] = round(time.perf_counter() - start, 2)
    problem = _record(model_dir, precision, record)
    if problem:
        record["not_recorded"] = problem
    return record
