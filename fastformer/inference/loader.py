"""`load_predictor`: decides the precision (running the bf16 quality gate once, on first use) and returns a
`Predictor` that runs it. The scripts' entry: `predictor_from_args(args)` with the flags of `args.add_predictor_args`."""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Optional, Tuple

from ..cli import UserError
from . import precision as precisions
from .folders import BACKENDS, detect_backend, read_manifest
from .gate import GATE_KEY, figures, run_quality_gate
from .predictor import Predictor
from .runners import check_device

__all__ = ["choose_precision", "load_predictor", "predictor_from_args"]


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
    """A `Predictor` of `model_dir` (arguments as `Predictor`'s) in the precision `choose_precision` picks for
    `precision` ("auto", "fp32", "bf16"). `precision_data`: the dev split for a first-use quality gate (default:
    data/dev.jsonl next to model_dir); `quality_gate=False` runs a requested bf16 unchecked (benchmarks)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    precisions.check_precision(precision)
    check_device(device)
    if backend == "auto":
        backend = detect_backend(model_dir)
    manifest = read_manifest(model_dir) if backend == "inference" and os.path.isdir(model_dir) else None
    chosen, note = choose_precision(
        precision, model_dir, manifest, backend, device=device, onednn=enable_mkldnn, data_file=precision_data,
        quality_gate=quality_gate, num_threads=num_threads, batch_size=batch_size, max_length=max_length,
    )
    predictor = Predictor(model_dir, backend=backend, device=device, num_threads=num_threads, batch_size=batch_size,
                          max_length=max_length, enable_mkldnn=enable_mkldnn, allow_pickle=allow_pickle,
                          precision=chosen, precision_note=note)
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
    record = ((manifest or {}).get(GATE_KEY) or {}).get(candidate) or {}
    if record.get("status") not in ("passed", "failed"):  # never checked, or checked where the CPU lacked it
        record = run_quality_gate(model_dir, candidate, data_file, when="first use", features=features,
                                  **predictor_kwargs)
        if manifest is not None:
            manifest.setdefault(GATE_KEY, {})[candidate] = record
    if record["status"] == "passed":
        return candidate, f"{candidate}: quality gate passed at {record.get('checked_at')} ({figures(record)})"
    if record["status"] == "failed":
        return fallback(f"quality gate failed at {record.get('checked_at')}: {figures(record)}", True)
    return fallback(f"the quality gate could not run: {record.get('reason')}", explicit)
