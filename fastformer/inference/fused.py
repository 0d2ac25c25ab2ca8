"""The fused inference operator: the whole classifier in one compiled Paddle operator (`csrc/infer_ops.cc`), exported
beside the regular graph as model.fused.json and run by Paddle Inference (`--backend fused`, or `auto` where it
measured faster on this CPU; docs/inference_speed.md, "Fused operator").

Paddle Inference pays a fixed cost per operator that dominates small batches (60 operators per forward); one operator
whose matrix products go to oneDNN's sgemm removes it, and large batches run in blocks of a few reviews per thread
whose activations stay in cache. The export also writes the same program with the large products' weights in bfloat16
(model.fused.bf16.json), for CPUs with bf16 and held to the quality gate like Paddle Inference's bf16. The operator is
built with the machine's C++ compiler on first use (`extensions`); where it cannot be built the export has no fused
program and the regular graph runs.
"""

from __future__ import annotations

import os
import threading
from typing import Optional, Tuple

import numpy as np

from ..cpu_layers import GELU
from ..modeling import MASK_VALUE
from .graph import FoldedClassifier, _Weights

__all__ = ["FUSED_PREFIX", "FUSED_BF16_PREFIX", "BF16_WEIGHTS", "SOURCES", "load_fused_ops", "fused_unavailable",
           "fusable", "FusedClassifier"]

FUSED_PREFIX = "model.fused"  # model.fused.json + model.fused.pdiparams in an export folder
FUSED_BF16_PREFIX = "model.fused.bf16"  # the same with its matrix-product weights in bfloat16
# the weights whose products run in bf16 in that program (the large ones; the scoring vectors stay float32)
BF16_WEIGHTS = ("w_in", "wu", "wi", "wo", "w1")
SOURCES = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc", "infer_ops.cc")]
MODULE_NAME = "fastformer_infer_ops"
# -ffast-math: vectorised erf/exp/tanh (glibc's libmvec); the inputs of those are finite activations
CXX_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-pthread"]
POOLERS = {"attention": 0, "mean": 1, "first": 2}

_lock = threading.Lock()
_state: dict = {}


def _ld_flags():
    import paddle

    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    return [f"-L{libs}", "-l:libdnnl.so.3", f"-Wl,-rpath,{libs}", "-pthread"]


def load_fused_ops():
    """The compiled module (its operator registered with Paddle), built on first use; None where it cannot be built
    (`fused_unavailable` says why)."""
    with _lock:
        if not _state:
            import paddle

            from .. import extensions

            if os.environ.get("FASTFORMER_CPU_OPS", "1") == "0":
                _state["error"] = "compiled operators are turned off (FASTFORMER_CPU_OPS=0)"
            elif not os.path.isfile(os.path.join(os.path.dirname(paddle.__file__), "libs", "libdnnl.so.3")):
                _state["error"] = f"this Paddle ({paddle.__version__}) ships no oneDNN library (libdnnl.so.3)"
            else:
                try:
                    _state["module"] = extensions.build_extension(MODULE_NAME, "infer_ops", SOURCES, CXX_FLAGS,
                                                                  _ld_flags())
                except Exception as exc:  # no compiler, no headers: the regular graph runs
                    _state["error"] = f"the fused operator could not be built ({type(exc).__name__}: " \
                                      f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''})"
        return _state.get("module")


def fused_unavailable() -> Optional[str]:
    """None where the fused operator can run here, else why not."""
    load_fused_ops()
    return _state.get("error")


def fusable(graph) -> Tuple[bool, str]:
    """(True, "") where `graph` (`export_graph`'s) is one the fused operator computes, else (False, why)."""
    if not isinstance(graph, FoldedClassifier):
        return False, "the fused operator computes additive-attention classifiers only"
    if any(layer.value for layer in graph.layers):
        return False, "the fused operator takes the queries as values (use_value_projection false)"
    if not all(isinstance(layer.activation, GELU) for layer in graph.layers):
        return False, "the fused operator computes the exact GELU (hidden_act 'gelu') only"
    if graph.pooler_type not in POOLERS:
        return False, f"the fused operator has no {graph.pooler_type!r} pooler"
    return True, ""


class FusedClassifier(_Weights):
    """`FoldedClassifier`'s arithmetic as one operator call: (input_ids, attention_mask) -> logits [B, C]. With
    `bf16`, the weights of BF16_WEIGHTS are kept in bfloat16 and their products run in bf16 (float32 sums)."""

    # the operator's three tensor lists, in its order (csrc/infer_ops.cc)
    EMBED = ("word", "position", "ln_w", "ln_b")
    LAYER = ("w_in", "b_in", "wqa", "wka", "wu", "ln1_w", "ln1_b", "wi", "bi", "wo", "ln2_w", "ln2_b")

    def __init__(self, folded: FoldedClassifier, bf16: bool = False):
        super().__init__()
        ok, why = fusable(folded)
        if not ok:
            raise ValueError(why)
        self._ops = load_fused_ops()
        if self._ops is None:
            raise RuntimeError(fused_unavailable())
        self.epsilon, self.pooler = float(folded.epsilon), POOLERS[folded.pooler_type]
        self.head = (("w1", "b1", "w2") if self.pooler == 0 else ()) + ("wc", "bc")
        self.add(**{name: getattr(folded, name).numpy() for name in self.EMBED + self.head})
        self.num_layers = len(folded.layers)
        for i, layer in enumerate(folded.layers):
            weights = {name: getattr(layer, name).numpy() for name in self.LAYER[2:]}
            # one product for q, k and the residual branch: x [Wq | Wk | Wx] + [bq | bk | bx]
            weights["w_in"] = np.concatenate([layer.wq.numpy(), layer.wk.numpy(), layer.wx.numpy()], axis=1)
            weights["b_in"] = np.concatenate([layer.bq.numpy(), layer.bk.numpy(), layer.bx.numpy()])
            self.add(**{f"l{i}_{name}": weights[name] for name in self.LAYER})
        if bf16:
            for name in [n for n in self.head if n in BF16_WEIGHTS] + [
                    f"l{i}_{n}" for i in range(self.num_layers) for n in self.LAYER if n in BF16_WEIGHTS]:
                weight = getattr(self, name)
                setattr(self, name, self.create_parameter(weight.shape, dtype="bfloat16"))
                getattr(self, name).set_value(weight.astype("bfloat16"))

    def forward(self, input_ids, attention_mask):
        layers = [getattr(self, f"l{i}_{name}") for i in range(self.num_layers) for name in self.LAYER]
        return self._ops.fastformer_classifier_infer(input_ids, attention_mask,
                                                     [getattr(self, name) for name in self.EMBED], layers,
                                                     [getattr(self, name) for name in self.head],
                                                     self.epsilon, self.pooler, float(MASK_VALUE))
