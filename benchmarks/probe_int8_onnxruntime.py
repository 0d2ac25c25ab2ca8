"""Does int8 pass the quality gate? ONNX Runtime's dynamic quantization of a trained model's export, on its dev split.

The export's model.onnx (fp32) is quantized with `onnxruntime.quantization.quantize_dynamic` (int8 weights, activations
quantized per call) in a few variants; each runs the dev split beside ONNX Runtime fp32, in alternating timed chunks,
and is held to the project's gate (`fastformer.inference.gate`: at least 99.5 % identical ratings, macro-F1 within
0.3 points). Paddle Inference has no CPU int8 path for this model (`benchmarks/probe_int8.py`), so this is the one
int8 candidate. The CPU's VNNI flags are recorded: int8 matrix products are fast only with them.

    pip install -r benchmarks/requirements.txt
    python -m benchmarks.probe_int8_onnxruntime --model_dir MODEL_DIR --dev_file DEV_FILE \\
        --output benchmarks/results/int8_onnxruntime_cpu.json

The paths of the model and its dev split are not written to the results (MODEL_DIR, DEV_FILE there).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, Optional, Sequence

from benchmarks import common
from fastformer.inference.quantize import initializers_from_constants

# variant -> quantize_dynamic keyword arguments ("large_only": the matmuls whose weight has >= 64 output columns)
VARIANTS = {
    "per_tensor": {},
    "per_channel": {"per_channel": True},
    "per_tensor_reduce_range": {"reduce_range": True},
    "large_matmuls_per_channel": {"per_channel": True, "large_only": True},
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model_dir", required=True, help="a trained model folder (train.py)")
    p.add_argument("--dev_file", required=True, help="its dev split (JSON lines text/label)")
    p.add_argument("--max_length", type=int, default=None, help="default: the model folder's")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every core)")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def quantize(fp32_file: str, out_file: str, per_channel: bool = False, reduce_range: bool = False,
             large_only: bool = False) -> Dict[str, object]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(fp32_file)
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    exclude = [n.name for n in matmuls if large_only and weights[n.input[1]][-1] < 64]
    quantize_dynamic(fp32_file, out_file, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=per_channel, reduce_range=reduce_range, nodes_to_exclude=exclude)
    quantized = sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in onnx.load(out_file).graph.node)
    return {"matmuls_with_weights": len(matmuls), "quantized": quantized, "excluded": len(exclude),
            "file_mib": round(os.path.getsize(out_file) / 2**20, 2)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    env = common.cpu_env(args.threads)
    os.environ.update(env)  # before paddle, MKL or ONNX Runtime load
    common.quiet_paddle()
    import numpy as np
    import onnxruntime as ort

    from fastformer.encoding import encode_texts, pad_batch
    from fastformer.inference import gate, precision
    from fastformer.inference.export import export_model
    from fastformer.inference.predictor import PAD_MULTIPLE
    from fastformer.splits import read_split

    start = time.perf_counter()
    texts, labels = read_split(args.dev_file)
    features = precision.cpu_features()
    results: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="int8_ort_") as work:
        export = os.path.join(work, "export")
        manifest = export_model(args.model_dir, export, max_length=args.max_length, onnx=True, log=lambda *a: None,
                                precision="fp32")
        if manifest["onnx"]["status"] != "ok":
            print(f"no model.onnx: {manifest['onnx']['reason']}")
            return 1
        from fastformer.configuration import FastformerConfig
        from fastformer.model_folder import load_tokenizer

        tokenizer = load_tokenizer(export, FastformerConfig.from_pretrained(export))
        ids = encode_texts(tokenizer, texts, manifest["max_length"])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches = [(rows, pad_batch([ids[i] for i in rows], tokenizer.pad_token_id, PAD_MULTIPLE))
                   for rows in (order[s:s + args.batch_size] for s in range(0, len(order), args.batch_size))]
        fp32_file = os.path.join(work, "model.fp32.onnx")
        moved = initializers_from_constants(os.path.join(export, "model.onnx"), fp32_file)

        def session(path):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = int(env["OMP_NUM_THREADS"]), 1
            options.log_severity_level = 3
            s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            names = [i.name for i in s.get_inputs()]
            return lambda batch: s.run(None, dict(zip(names, batch)))[0]

        reference = session(fp32_file)
        for name, settings in VARIANTS.items():
            out_file = os.path.join(work, f"model.{name}.onnx")
            info = quantize(fp32_file, out_file, **settings)
            candidate = session(out_file)
            ref_logits = np.zeros((len(ids), len(manifest["labels"])), dtype=np.float32)
            int8_logits = np.zeros_like(ref_logits)
            seconds = [0.0, 0.0]
            for rows, batch in batches:  # alternating, batch by batch: a busy machine slows both alike
                for i, (run, out) in enumerate(((reference, ref_logits), (candidate, int8_logits))):
                    t0 = time.perf_counter()
                    out[rows] = run(batch)
                    seconds[i] += time.perf_counter() - t0
            record = gate.compare_predictions(labels, ref_logits.argmax(-1), int8_logits.argmax(-1))
            record.update(info, changed_ratings=int((ref_logits.argmax(-1) != int8_logits.argmax(-1)).sum()),
                          max_abs_logit_diff=round(float(np.abs(ref_logits - int8_logits).max()), 5),
                          reviews_per_s_fp32=round(len(texts) / seconds[0], 1),
                          reviews_per_s_int8=round(len(texts) / seconds[1], 1),
                          speedup=round(seconds[0] / seconds[1], 3))
            results[name] = record
            print(f"{name}: {record['agreement']:.2%} identical ratings ({record['changed_ratings']} changed), "
                  f"macro-F1 {record['macro_f1_fp32']:.4f} -> {record['macro_f1']:.4f}, gate "
                  f"{'passed' if record['passed'] else 'failed'}; {record['speedup']:.2f}x ONNX Runtime fp32 "
                  f"({record['quantized']} of {record['matmuls_with_weights']} weight matmuls in int8)", flush=True)
    header = common.result_header("int8_onnxruntime", __file__, args, argv)
    for key, placeholder in (("model_dir", "MODEL_DIR"), ("dev_file", "DEV_FILE")):  # a private model's paths
        header["command"] = header["command"].replace(getattr(args, key), placeholder)
        header["settings"][key] = placeholder
    payload = {
        **header,
        "description": "ONNX Runtime dynamic int8 quantization of a trained model's export, held to the quality gate "
                       "against ONNX Runtime fp32 on the model's dev split",
        "versions": common.versions("paddle", "onnxruntime", "onnx", "numpy"),
        "env": env,
        "cpu_features": features,
        "vnni": bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(features["flags"])),
        "dev_reviews": len(texts),
        "max_length": manifest["max_length"],
        "constants_moved_to_initializers": moved,
        "gate": {"min_agreement": gate.MIN_AGREEMENT, "max_macro_f1_change": gate.MAX_MACRO_F1_CHANGE},
        "variants": {name: VARIANTS[name] for name in results},
        "results": results,
        "any_passed": any(r["passed"] for r in results.values()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    common.write_json(args.output, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
