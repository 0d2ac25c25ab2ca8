"""Which precision the CPU can run: fp32, or oneDNN bfloat16 where the CPU computes it natively (docs/inference.md)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

__all__ = [
    "PRECISIONS",
    "REDUCED_PRECISIONS",
    "INT8_UNAVAILABLE",
    "PrecisionWarning",
    "check_precision",
    "precision_arg",
    "onednn_max_cpu_isa",
    "cpu_features",
    "bf16_support",
]

PRECISIONS = ("auto", "fp32", "bf16")
REDUCED_PRECISIONS = ("bf16",)

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
