"""CPU reports for `fastformer.inference.precision` (which bf16 path a CPU offers) and a bf16 runner whose logits a test sets.

With them a test means the same on an AVX2 machine and on one with avx512_bf16: `report("bf16")` makes the CPU look
bf16-capable, and `PerturbingRunner` stands in for oneDNN bf16 (fp32 logits changed by the test's `perturb`), since a
real bf16 run on a CPU without avx512_bf16 is not possible and on one with it could flip near-tied ratings of a random
tiny model.
"""

from __future__ import annotations

from fastformer.inference import predictor as predictor_module

KINDS = {
    # an AVX2 machine: no AVX-512, no bfloat16 in oneDNN
    "avx2": (["avx2", "fma"], {"bfloat16": False, "bfloat16_fast": False, "int8": False, "vnni": False}),
    # AVX-512 without avx512_bf16: oneDNN would emulate bfloat16
    "avx512": (["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"],
               {"bfloat16": True, "bfloat16_fast": False, "int8": True, "vnni": True}),
    # avx512_bf16 (Zen 4, Cooper Lake and later; AMX CPUs)
    "bf16": (["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"],
             {"bfloat16": True, "bfloat16_fast": True, "int8": True, "vnni": True}),
}


def report(kind: str, cpu: str = "test CPU") -> dict:
    """What `fastformer.inference.precision.cpu_features()` returns on a CPU of `kind` (one of `KINDS`)."""
    flags, paddle_says = KINDS[kind]
    return {"cpu": cpu, "flags": list(flags), "paddle": dict(paddle_says), "onednn_max_cpu_isa": None}


class PerturbingRunner(predictor_module.InferenceRunner):
    """Runs fp32 and, when built for bf16, changes the logits with `perturb` (stands in for bf16 rounding)."""

    perturb = staticmethod(lambda logits: logits)
    built_precisions: list = []

    def __init__(self, *args, precision="fp32", **kwargs):
        super().__init__(*args, precision="fp32", **kwargs)
        self.precision = precision
        PerturbingRunner.built_precisions.append(precision)

    def run(self, input_ids, attention_mask):
        logits = super().run(input_ids, attention_mask)
        return self.perturb(logits) if self.precision == "bf16" else logits
