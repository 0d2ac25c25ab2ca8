"""Reduced-precision Paddle Inference on CPU: what the CPU offers, which precision runs, and the quality gate.

`Predictor(model_dir, precision=...)` and `--precision` of predict.py, evaluate.py and serve.py:

* "fp32": oneDNN fp32 (plain CPU kernels with --no_onednn).
* "bf16": oneDNN bfloat16 (`Config.enable_mkldnn_bfloat16()`), only where the CPU computes bfloat16 natively
  (`avx512_bf16`, which CPUs with AMX also have; Paddle's `core.supports_bfloat16_fast_performance()`). Elsewhere a
  warning says why and the predictor runs fp32. On a CPU with AVX-512 but without `avx512_bf16` oneDNN would emulate
  bfloat16 (slower than fp32), so that counts as "without"; so does a oneDNN limited to an older instruction set by
  `ONEDNN_MAX_CPU_ISA` / `DNNL_MAX_CPU_ISA` (e.g. AVX2, which makes a bf16 predictor fail in Paddle 3.3).
* "auto" (the default): bf16 where the CPU has it and the model passed the quality gate, else fp32.
* int8 is not offered: Paddle 3.3's inference cannot run this model in int8 (`INT8_UNAVAILABLE` says why, measured).

Quality gate (instead of the fp32 export's 1e-5 logits parity, which bf16 cannot meet): the reduced-precision
predictor and the fp32 one predict the dev split; the share of identical predicted ratings must be at least
`MIN_AGREEMENT` (99.5 %) and macro-F1 may move by at most `MAX_MACRO_F1_CHANGE` (0.3 points, either way). The
result goes into the export's manifest.json under "quality_gate" -> "bf16" (agreement, both macro-F1s, the
change, the CPU): `export_model.py` checks where its CPU has bf16, else the first predictor that wants bf16 on a
CPU that has it checks and records it. A failed (or impossible) check means fp32, with a warning. The dev split
is `data/dev.jsonl` next to the model or export folder (train.py's <output_dir>/data) or the file given as
`precision_data` / `--precision_data`.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "PRECISIONS",
    "REDUCED_PRECISIONS",
    "MIN_AGREEMENT",
    "MAX_MACRO_F1_CHANGE",
    "INT8_UNAVAILABLE",
    "PrecisionWarning",
    "check_precision",
    "precision_arg",
    "onednn_max_cpu_isa",
    "cpu_features",
    "bf16_support",
    "compare_predictions",
    "default_data_file",
    "describe_record",
    "run_quality_gate",
    "choose_precision",
]

PRECISIONS = ("auto", "fp32", "bf16")
REDUCED_PRECISIONS = ("bf16",)
MIN_AGREEMENT = 0.995  # share of dev reviews whose predicted rating is the fp32 one
MAX_MACRO_F1_CHANGE = 0.003  # 0.3 points of macro-F1, up or down
GATE_KEY = "quality_gate"

# Measured with paddlepaddle 3.3.1 (CPU) on an exported Fastformer (see benchmarks/README.md, "int8"):
INT8_UNAVAILABLE = (
    "int8 is not available with Paddle {version} Inference: on CPU its PIR pass pipeline has no oneDNN int8 passes "
    "(enable_mkldnn_int8() leaves the logits bit-identical to fp32, and the quantize_linear/dequantize_linear ops "
    "of a paddle.quantization.PTQ export are deleted, so it runs in fp32 too); paddle.static.quantization's "
    "post-training quantization needs a legacy program, which paddle.jit.save no longer writes. Use fp32, bf16 or auto"
)

# oneDNN instruction-set limits (ONEDNN_MAX_CPU_ISA) below avx512_bf16: no bfloat16 arithmetic
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")

# CPU flags (/proc/cpuinfo) that decide or explain the reduced-precision paths
_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
          "amx_int8")


class PrecisionWarning(UserWarning):
    """A requested reduced precision is not used (the CPU lacks it, the quality gate failed or could not run)."""


def check_precision(precision: str) -> str:
    """`precision` if it is one of `PRECISIONS`; ValueError (for int8: with the measured reason) otherwise."""
    if precision == "int8":
        import paddle

        raise ValueError(INT8_UNAVAILABLE.format(version=paddle.__version__))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def precision_arg(text: str) -> str:
    """`check_precision` as an argparse `type` (the reason, e.g. int8's, in the usage error)."""
    import argparse

    try:
        return check_precision(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cpuinfo() -> Tuple[str, List[str]]:
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = value.split()
                if model != "unknown" and flags:
                    break
    except OSError:  # not Linux: Paddle's own detection below still answers
        pass
    return model, flags


def onednn_max_cpu_isa() -> Optional[str]:
    """The instruction-set limit given to oneDNN (`ONEDNN_MAX_CPU_ISA`, or the older `DNNL_MAX_CPU_ISA`), if any."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip().upper()
        if value:
            return value
    return None


def cpu_features() -> Dict[str, object]:
    """The CPU model, its reduced-precision flags, what Paddle's oneDNN build detects on it (Paddle reads the CPU
    itself, not `ONEDNN_MAX_CPU_ISA`) and the oneDNN instruction-set limit."""
    from paddle.base import core

    model, flags = _cpuinfo()

    def ask(name: str) -> Optional[bool]:
        fn = getattr(core, name, None)
        return bool(fn()) if fn is not None else None

    return {
        "cpu": model,
        "flags": [flag for flag in _FLAGS if flag in flags],
        "paddle": {
            "bfloat16": ask("supports_bfloat16"),  # AVX-512 core: oneDNN can run bf16, emulated without avx512_bf16
            "bfloat16_fast": ask("supports_bfloat16_fast_performance"),  # avx512_bf16: native bf16 arithmetic
            "int8": ask("supports_int8"),
            "vnni": ask("supports_vnni"),
        },
        "onednn_max_cpu_isa": onednn_max_cpu_isa(),
    }


def bf16_support(features: Optional[dict] = None) -> Tuple[bool, str]:
    """(True, "") where oneDNN computes bfloat16 natively on this CPU, else (False, why)."""
    features = features or cpu_features()
    paddle_says, cpu, isa = features["paddle"], features["cpu"], features.get("onednn_max_cpu_isa")
    if paddle_says.get("bfloat16_fast") and isa in _ISA_WITHOUT_BF16:
        return False, (f"this CPU ({cpu}) has avx512_bf16, but ONEDNN_MAX_CPU_ISA={isa} limits oneDNN to an "
                       "instruction set without bfloat16 arithmetic")
    if paddle_says.get("bfloat16_fast"):
        return True, ""
    if paddle_says.get("bfloat16"):
        return False, (f"this CPU ({cpu}) has AVX-512 but not avx512_bf16: oneDNN would emulate bfloat16, slower than "
                       "fp32")
    return False, f"this CPU ({cpu}) has no avx512_bf16 (nor AMX): oneDNN has no bfloat16 arithmetic on it"


def compare_predictions(labels: Sequence[int], reference: Sequence[int], candidate: Sequence[int]) -> Dict[str, object]:
    """The quality gate's figures: share of identical predictions and the macro-F1 change, candidate vs reference."""
    from .metrics import classification_metrics

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


def _figures(record: dict) -> str:
    return (f"{record['agreement']:.2%} identical ratings (needs {MIN_AGREEMENT:.1%}), macro-F1 "
            f"{record['macro_f1_fp32']:.4f} -> {record['macro_f1']:.4f} "
            f"({100 * record['macro_f1_change']:+.2f} points, "
            f"limit {100 * MAX_MACRO_F1_CHANGE:.1f}) on {record['num_examples']} dev reviews")


def describe_record(record: dict) -> str:
    """One line on a quality-gate record."""
    if record["status"] in ("passed", "failed"):
        return f"{record['status']}: {_figures(record)}"
    return f"{record['status']}: {record.get('reason')}"


def _record(model_dir: str, precision: str, record: dict) -> Optional[str]:
    """Store `record` as manifest["quality_gate"][precision]; None, or why it could not be written."""
    from .fileio import write_json
    from .predictor import MANIFEST_FILE, _read_manifest

    try:
        manifest = _read_manifest(model_dir)
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

    from .splits import read_split

    from .predictor import Predictor

    if precision not in REDUCED_PRECISIONS:
        raise ValueError(f"the quality gate compares a reduced precision {REDUCED_PRECISIONS} with fp32, got "
                         f"{precision!r}")
    features = features or cpu_features()
    record: Dict[str, object] = {"precision": precision, "checked_at": when, "cpu": features["cpu"],
                                 "cpu_flags": features["flags"], "paddle_version": paddle.__version__,
                                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    supported, why = bf16_support(features)
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
        candidate = Predictor(model_dir, backend="inference", precision=precision, quality_gate=False,
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


def choose_precision(
    requested: str,
    model_dir: str,
    manifest: Optional[dict],
    backend: str = "inference",
    device: str = "cpu",
    onednn: bool = True,
    data_file: Optional[str] = None,
    quality_gate: bool = True,
    features: Optional[dict] = None,
    **predictor_kwargs,
) -> Tuple[str, Optional[str]]:
    """(precision to run, a note on why, or None) for `Predictor`; warns (`PrecisionWarning`) where an explicitly
    requested or gate-refused reduced precision falls back to fp32. May run the quality gate (first use)."""
    check_precision(requested)
    if requested == "fp32":
        return "fp32", None
    explicit = requested != "auto"
    candidate = "bf16" if requested == "auto" else requested

    def fallback(why: str, warn: bool) -> Tuple[str, str]:
        note = f"{candidate} not used, running fp32: {why}"
        if warn:
            warnings.warn(f"fastformer: {note}", PrecisionWarning, stacklevel=3)
        return "fp32", note

    if backend != "inference":
        return fallback(f"reduced precision is for Paddle Inference exports (export_model.py), not the {backend} "
                        "backend", explicit)
    if device != "cpu":
        return fallback(f"bf16 is implemented for CPU oneDNN, not device {device!r}", explicit)
    if not onednn:
        return fallback("bf16 runs through oneDNN, which --no_onednn turns off", explicit)
    features = features or cpu_features()
    supported, why = bf16_support(features)
    if not supported:
        return fallback(why, explicit)
    if not quality_gate:
        return candidate, f"{candidate} without the quality gate (not checked against fp32)"
    record = ((manifest or {}).get(GATE_KEY) or {}).get(candidate) or {}
    if record.get("status") not in ("passed", "failed"):  # never checked, or checked where the CPU lacked it
        record = run_quality_gate(model_dir, candidate, data_file, when="first use", features=features,
                                  **predictor_kwargs)
        if manifest is not None:
            manifest.setdefault(GATE_KEY, {})[candidate] = record
    if record["status"] == "passed":
        return candidate, f"{candidate}: quality gate passed at {record.get('checked_at')} ({_figures(record)})"
    if record["status"] == "failed":
        return fallback(f"quality gate failed at {record.get('checked_at')}: {_figures(record)}", True)
    return fallback(f"the quality gate could not run: {record.get('reason')}", explicit)
