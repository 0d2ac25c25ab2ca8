"""`load_predictor`: decides the backend and the precision (running the quality gates once, on first use) and
returns a `Predictor` that runs them. The scripts' entry: `predictor_from_args(args)` with the flags of
`args.add_predictor_args`."""

from __future__ import annotations

import argparse
import math
import os
import warnings
from typing import List, Optional, Tuple

from ..cli import UserError
from . import precision as precisions
from .folders import BACKENDS, detect_backend, read_manifest
from .gate import CANDIDATES, GATE_KEY, candidate_support, describe_record, figures, run_quality_gate
from .predictor import Predictor
from .runners import check_device, onnxruntime_missing

__all__ = ["choose", "choose_precision", "load_predictor", "predictor_from_args"]


def load_predictor(
    model_dir: str,
    backend: str = "auto",
    device: str = "cpu",
    num_threads: Optional[int] = None,
    batch_size: int = 64,
    max_length: Optional[int] = None,
    enable_mkldnn: bool = True,
    allow_pickle: bool = False,
    precision: str = "auto",
    precision_data: Optional[str] = None,
    quality_gate: bool = True,
) -> Predictor:
    """A `Predictor` of `model_dir` (arguments as `Predictor`'s) on the backend and in the precision `choose` picks
    for `backend` ("auto", "paddle"/"inference", "onnxruntime", "dynamic") and `precision` ("auto", "fp32", "bf16",
    "int8").
    `precision_data`: the dev split for a first-use quality gate (default: data/dev.jsonl next to model_dir);
    `quality_gate=False` runs a requested candidate unchecked (benchmarks)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    precisions.check_precision(precision)
    check_device(device)
    requested = "inference" if backend == "paddle" else backend
    folder_kind = detect_backend(model_dir) if requested in ("auto", "onnxruntime") else requested
    if requested == "onnxruntime" and folder_kind != "inference":
        raise ValueError(f"the onnxruntime backend runs an export (export_model.py --onnx), and {model_dir!r} is a "
                         "trained model folder")
    manifest = read_manifest(model_dir) if folder_kind == "inference" and os.path.isdir(model_dir) else None
    chosen_backend, chosen, note, small_batch = choose(
        requested, precision, model_dir, manifest, folder_kind, device=device, onednn=enable_mkldnn,
        data_file=precision_data, quality_gate=quality_gate, num_threads=num_threads, batch_size=batch_size,
        max_length=max_length,
    )
    predictor = Predictor(model_dir, backend=chosen_backend, device=device, num_threads=num_threads,
                          batch_size=batch_size, max_length=max_length, enable_mkldnn=enable_mkldnn,
                          allow_pickle=allow_pickle, precision=chosen, precision_note=note, small_batch=small_batch)
    record = ((manifest or {}).get(GATE_KEY) or {})
    if predictor.manifest is not None and record:  # the gate's record, also where it could not be written
        predictor.manifest.setdefault(GATE_KEY, {}).update(record)
    return predictor


def predictor_from_args(args: argparse.Namespace) -> Predictor:
    """`load_predictor` of `args.model_dir` with the flags of `add_predictor_args`; a folder or flag that cannot be
    used is a `UserError` (one line from the scripts) or FileNotFoundError."""
    try:
        return load_predictor(args.model_dir, backend=args.backend, device=args.device, num_threads=args.num_threads,
                              batch_size=args.batch_size, max_length=args.max_length,
                              enable_mkldnn=not args.no_onednn, allow_pickle=getattr(args, "allow_pickle", False),
                              precision=args.precision, precision_data=args.precision_data)
    except UserError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from exc


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
    """(precision to run, a note on why, or None) for a `Predictor`; warns (`PrecisionWarning`) where an explicitly
    requested or gate-refused reduced precision falls back to fp32. May run the quality gate (first use)."""
    precisions.check_precision(requested)
    if requested == "fp32":
        return "fp32", None
    explicit = requested != "auto"
    candidate = "bf16" if requested == "auto" else requested

    def fallback(why: str, warn: bool) -> Tuple[str, str]:
        note = f"{candidate} not used, running fp32: {why}"
        if warn:
            warnings.warn(f"fastformer: {note}", precisions.PrecisionWarning, stacklevel=3)
        return "fp32", note

    if backend != "inference":
        return fallback(f"reduced precision is for Paddle Inference exports (export_model.py), not the {backend} "
                        "backend", explicit)
    if device != "cpu":
        return fallback(f"bf16 is implemented for CPU oneDNN, not device {device!r}", explicit)
    if not onednn:
        return fallback("bf16 runs through oneDNN, which --no_onednn turns off", explicit)
    features = features or precisions.cpu_features()
    supported, why = precisions.bf16_support(features)
    if not supported:
        return fallback(why, explicit)
    if not quality_gate:
        return candidate, f"{candidate} without the quality gate (not checked against fp32)"
    status, words = _gate_verdict(candidate, model_dir, manifest, data_file, features, **predictor_kwargs)
    return (candidate, words) if status == "passed" else fallback(words, explicit or status == "failed")


def _gate_verdict(candidate: str, model_dir: str, manifest: Optional[dict], data_file: Optional[str], features: dict,
                  **predictor_kwargs) -> Tuple[str, str]:
    """(status, words) of `candidate`'s quality gate on this export, run where it never ran (or ran where the CPU
    lacked the candidate): "passed" and the note to run it under, else "failed" or "not checked" and why not."""
    record = _gate_record(candidate, model_dir, manifest, data_file, features, False, **predictor_kwargs)
    if record["status"] == "passed":
        return "passed", f"{candidate}: quality gate passed at {record.get('checked_at')} ({figures(record)})"
    if record["status"] == "failed":
        return "failed", f"quality gate failed at {record.get('checked_at')}: {figures(record)}"
    return record["status"], f"the quality gate could not run: {record.get('reason')}"


def _gate_record(candidate: str, model_dir: str, manifest: Optional[dict], data_file: Optional[str],
                 features: dict, same_cpu: bool, **predictor_kwargs) -> dict:
    """The manifest's gate record of `candidate`, after running the gate where it never ran (or, with `same_cpu`,
    where it ran on another CPU: its speed is this CPU's to measure)."""
    record = ((manifest or {}).get(GATE_KEY) or {}).get(candidate) or {}
    stale = same_cpu and record.get("status") in ("passed", "failed") and (
        record.get("cpu_flags") != features["flags"] or "speedup_batch_1" not in record
        or "speedup_dev_split" not in record)  # measured before speeds were taken on full batches and single reviews
    if record.get("status") not in ("passed", "failed") or stale:
        record = run_quality_gate(model_dir, candidate, data_file, when="first use", features=features,
                                  **predictor_kwargs)
        if manifest is not None:
            manifest.setdefault(GATE_KEY, {})[candidate] = record
    return record


def choose(
    backend: str,
    precision: str,
    model_dir: str,
    manifest: Optional[dict],
    folder_kind: str,
    device: str = "cpu",
    onednn: bool = True,
    data_file: Optional[str] = None,
    quality_gate: bool = True,
    features: Optional[dict] = None,
    **predictor_kwargs,
) -> Tuple[str, str, Optional[str], Optional[Tuple[str, str, str]]]:
    """(backend, precision, a note on why, small_batch) for a `Predictor`.

    Paddle Inference runs in the precision `choose_precision` picks (fp32, or bf16 where it passed the gate), unless
    another engine is wanted or faster: "auto" on an export (CPU, precision auto or fp32) takes the fastest of that,
    the fused program and every ONNX Runtime candidate (fp32; int8 too with precision auto) that passed the quality
    gate on this CPU, by the speed the gate measured against Paddle Inference fp32 on batches (`batch_speed`; a tie
    keeps Paddle); `small_batch` is the one fastest on single reviews where it is another (None otherwise).
    `--backend onnxruntime` or precision int8 asks for ONNX Runtime: where no candidate passed, Paddle Inference fp32
    runs, with a warning. `--backend fused` runs the fused program (fp32, parity-checked at export; its bf16 program
    where asked for, or with precision auto where its gate passed).
    """
    if precision == "int8" and (backend in ("inference", "dynamic", "fused") or folder_kind != "inference"):
        import paddle

        raise ValueError(precisions.INT8_UNAVAILABLE.format(version=paddle.__version__))
    weigh = backend == "auto" and folder_kind == "inference" and device == "cpu" and precision in ("auto", "fp32")
    if backend == "onnxruntime" or precision == "int8":
        return _choose_onnxruntime(precision, model_dir, manifest, data_file, quality_gate, features,
                                   **predictor_kwargs) + (None,)
    if backend == "fused":
        return _choose_fused(precision, model_dir, manifest, data_file, quality_gate, features,
                             **predictor_kwargs) + (None,)
    backend = folder_kind if backend == "auto" else backend
    chosen, note = choose_precision(precision, model_dir, manifest, backend, device=device, onednn=onednn,
                                    data_file=data_file, quality_gate=quality_gate, features=features,
                                    **predictor_kwargs)
    if not weigh or not quality_gate:
        return backend, chosen, note, None
    features = features or precisions.cpu_features()
    options = [(1.0, 1.0, "inference", chosen, note)]  # Paddle Inference as choose_precision picked: fp32, or bf16
    if chosen == "bf16":  # its speed on this CPU, against the same fp32 reference as the others
        record = _gate_record("bf16", model_dir, manifest, data_file, features, True, **predictor_kwargs)
        if record.get("status") == "passed":
            options[0] = (batch_speed(record), float(record["speedup_batch_1"]), "inference", chosen, note)
        else:
            options[0] = (1.0, 1.0, "inference", "fp32", f"bf16 not used, running fp32: {describe_record(record)}")
    candidates = ["fused"] + (["fused-bf16", "onnxruntime", "onnxruntime-int8"] if precision == "auto"
                              else ["onnxruntime"])
    for candidate in candidates:  # Paddle's oneDNN turned off on purpose: Paddle Inference's graph only
        if onednn and candidate_support(candidate, model_dir, features)[0]:
            options += _passed(candidate, model_dir, manifest, data_file, features, True, **predictor_kwargs)
    _, _, backend, chosen, note = max(options, key=lambda option: option[0])  # a tie keeps Paddle Inference
    _, single, small_backend, small_precision, small_note = max(options, key=lambda option: option[1])
    small = None
    if (small_backend, small_precision) != (backend, chosen):
        small = (small_backend, small_precision, f"{small_note}; {single:.2f}x Paddle Inference fp32 on single reviews")
    return backend, chosen, note, small


def _choose_fused(precision: str, model_dir: str, manifest: Optional[dict], data_file: Optional[str],
                  quality_gate: bool, features: Optional[dict], **predictor_kwargs) -> Tuple[str, str, str]:
    """`--backend fused`: its bf16 program where asked for or (auto) where its gate passed on this CPU, else fp32."""
    fp32 = ("fused", "fp32", "fused: the export's one-operator program (fp32)")
    if precision == "fp32":
        return fp32
    features = features or precisions.cpu_features()
    supported, why = candidate_support("fused-bf16", model_dir, features)
    warn = precision == "bf16"
    if supported and not quality_gate:
        return "fused", "bf16", "fused bf16 without the quality gate (not checked against fp32)"
    if supported:
        status, why = _gate_verdict("fused-bf16", model_dir, manifest, data_file, features, **predictor_kwargs)
        if status == "passed":
            return "fused", "bf16", why
        warn = warn or status == "failed"
    if warn:
        warnings.warn(f"fastformer: fused bf16 not used, running the fused program in fp32: {why}",
                      precisions.PrecisionWarning, stacklevel=4)
    return "fused", "fp32", f"fused bf16 not used, running fp32: {why}"


def batch_speed(record: dict) -> float:
    """What `auto` weighs for batches: the geometric mean of a gate record's speed on full batches of the dev split's
    longest reviews and on the split as it comes (mixed lengths: what a file or a busy server brings, and where an
    engine that skips padding gains); each alone swings by run on a shared machine."""
    return round(math.sqrt(float(record["speedup"]) * float(record.get("speedup_dev_split", record["speedup"]))), 3)


def _passed(candidate: str, model_dir: str, manifest: Optional[dict], data_file: Optional[str], features: dict,
            same_cpu: bool, **predictor_kwargs) -> List[Tuple[float, float, str, str, str]]:
    """[(speedup, speedup on single reviews, backend, precision, note)] when `candidate`'s gate passed (running it
    where needed), else []."""
    record = _gate_record(candidate, model_dir, manifest, data_file, features, same_cpu, **predictor_kwargs)
    if record.get("status") != "passed":
        return []
    backend, precision = CANDIDATES[candidate]
    speed = batch_speed(record)
    return [(speed, float(record.get("speedup_batch_1", record["speedup"])), backend, precision,
             f"{candidate}: {speed:.2f}x Paddle Inference fp32 on this CPU, quality gate passed "
             f"({figures(record)})")]


def _choose_onnxruntime(precision: str, model_dir: str, manifest: Optional[dict], data_file: Optional[str],
                        quality_gate: bool, features: Optional[dict],
                        **predictor_kwargs) -> Tuple[str, str, Optional[str]]:
    """ONNX Runtime asked for (`--backend onnxruntime`, or precision int8): the fastest of its gated candidates."""
    if precision == "bf16":
        raise ValueError("bf16 is a Paddle Inference precision; the onnxruntime backend runs fp32 or int8")
    missing = onnxruntime_missing()
    if missing:
        raise ValueError(missing if precision != "int8" else f"int8 runs on the onnxruntime backend: {missing}")
    wanted = {"fp32": ["onnxruntime"], "int8": ["onnxruntime-int8"]}.get(precision,
                                                                           ["onnxruntime", "onnxruntime-int8"])
    if not quality_gate:
        chosen = "int8" if precision == "int8" else "fp32"
        return "onnxruntime", chosen, f"onnxruntime {chosen} without the quality gate (not checked against fp32)"
    features = features or precisions.cpu_features()
    options, reasons = [], []
    for candidate in wanted:
        if candidate == "onnxruntime-int8" and precision == "auto" and not candidate_support(
                candidate, model_dir, features)[0]:
            continue  # int8 only where this CPU and the export have it, unless asked for
        passed = _passed(candidate, model_dir, manifest, data_file, features, len(wanted) > 1, **predictor_kwargs)
        options += passed
        if not passed:
            record = ((manifest or {}).get(GATE_KEY) or {}).get(candidate) or {}
            reasons.append(f"{candidate} quality gate {describe_record(record) if record else 'not checked'}")
    if options:
        _, _, backend, chosen, note = max(options, key=lambda option: option[0])
        return backend, chosen, note
    why = "; ".join(reasons)
    warnings.warn(f"fastformer: onnxruntime not used, running Paddle Inference fp32: {why}",
                  precisions.PrecisionWarning, stacklevel=4)
    return "inference", "fp32", f"onnxruntime not used: {why}"
