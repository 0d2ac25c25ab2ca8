"""int8 for the ONNX Runtime backend: dynamic quantization of the export's model.onnx (int8 weights of the matrix
products, activations quantized per call) into model.int8.onnx; used only where the quality gate passed
(docs/inference_speed.md, "int8").
"""

from __future__ import annotations

import os
from typing import Dict

from ..fileio import file_sha256

__all__ = ["INT8_FILE", "INT8_SETTINGS", "int8_cpu", "quantize_int8"]

INT8_FILE = "model.int8.onnx"
# the variant that changed the fewest of a trained model's dev ratings (benchmarks/probe_int8_onnxruntime.py)
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": False, "reduce_range": True, "op_types": ["MatMul"]}
_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_cpu(features: dict) -> bool:
    """Whether the CPU multiplies int8 fast (VNNI or AMX); elsewhere int8 is not a candidate."""
    return any(flag in features.get("flags", ()) for flag in _VNNI)


def initializers_from_constants(src: str, dst: str) -> int:
    """paddle2onnx stores the weights as Constant nodes; the quantizer looks for initializers. Returns how many moved."""
    import onnx

    model = onnx.load(src)
    graph, kept, moved = model.graph, [], 0
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    names, outputs = {i.name for i in graph.initializer}, {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in kept  # Identity of a weight: the matmul reads the weight itself
             if n.op_type == "Identity" and n.input[0] in names and n.output[0] not in outputs}
    kept = [n for n in kept if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(model, dst)
    return moved


def quantize_int8(onnx_file: str, out_file: str) -> Dict[str, object]:
    """Write `out_file` from the fp32 `onnx_file`; returns {"status": "ok", "file", "sha256", "quantized", settings}
    or {"status": "unavailable", "reason"} where onnxruntime's quantization cannot be imported. Never installs."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        why = f"onnxruntime.quantization cannot be imported ({exc}; pip install -r benchmarks/requirements.txt)"
        return {"status": "unavailable", "reason": why}
    import onnx

    staged = out_file + ".fp32.tmp"
    try:
        initializers_from_constants(onnx_file, staged)
        quantize_dynamic(staged, out_file, weight_type=getattr(QuantType, INT8_SETTINGS["weight_type"]),
                         per_channel=INT8_SETTINGS["per_channel"], reduce_range=INT8_SETTINGS["reduce_range"],
                         op_types_to_quantize=list(INT8_SETTINGS["op_types"]))
    finally:
        if os.path.exists(staged):
            os.remove(staged)
    nodes = onnx.load(out_file).graph.node
    quantized = sum(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in nodes)
    return {"status": "ok", "file": os.path.basename(out_file), "sha256": file_sha256(out_file),
            "quantized_matmuls": quantized, "settings": dict(INT8_SETTINGS)}
