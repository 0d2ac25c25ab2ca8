"""Can Paddle Inference run this model in int8 on CPU? The probes behind `fastformer.inference.precision.INT8_UNAVAILABLE`.

Each probe runs in its own child process (one of them changes a Paddle flag that must be set before import) on a
small random Fastformer and its `paddle.jit.save` export (PIR: model.json + model.pdiparams):

1. `inference_int8_flag`: the fp32 export with `config.enable_mkldnn_int8()` (oneDNN on) against the same export
   without it: max abs logits difference (0 means nothing ran in int8).
2. `static_ptq`: `paddle.static.quantization.PostTrainingQuantization` (the post-training quantization Paddle
   Inference's oneDNN int8 passes were made for) on the export.
3. `legacy_program_export`: the same export as a legacy program (`FLAGS_enable_pir_api=0`), which those passes and
   the static PTQ need.
4. `dygraph_ptq`: `paddle.quantization.PTQ` (abs-max observers on every Linear, calibrated on 4 batches), converted
   and exported with a dynamic [batch, length] shape, and, where that fails, with a fixed shape; the fixed-shape
   export run by Paddle Inference with oneDNN and `enable_mkldnn_int8()`, against the fp32 export (0 means the
   quantize/dequantize ops were dropped), and the dygraph quantized model against fp32 (what int8 rounding does).

    python -m benchmarks.probe_int8 --output benchmarks/results/int8_probe_cpu.json    # ~1 min

Nothing here is timed: the answers do not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from typing import Optional, Sequence


from benchmarks import common

HERE = os.path.dirname(os.path.abspath(__file__))

PROBES = ("inference_int8_flag", "static_ptq", "legacy_program_export", "dygraph_ptq")
BATCH, LENGTH = 8, 32


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--child_case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work_dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child_output", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _error(exc: BaseException) -> str:
    """The exception's type, the last line of its message (Paddle puts the cause there) and where it was raised."""
    import traceback

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    where = f"{os.path.relpath(frame.filename, os.path.dirname(os.path.dirname(frame.filename)))}:{frame.lineno}"
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else '(no message)'} (raised in {where} {frame.name})"


def _inputs():
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, size=(BATCH, LENGTH)).astype("int64")
    return ids, np.ones_like(ids)


def _run(model_file: str, params_file: str, int8: bool):
    from fastformer.inference.runners import InferenceRunner

    if int8:  # InferenceRunner has no int8 switch: the same config with it
        from paddle import inference

        config = inference.Config(model_file, params_file)
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(1)
        config.enable_mkldnn()
        config.enable_mkldnn_int8()
        config.switch_ir_optim(True)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        arrays = dict(zip(("input_ids", "attention_mask"), _inputs()))
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            handle.reshape(list(arrays[name].shape))
            handle.copy_from_cpu(arrays[name])
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    return InferenceRunner(model_file, params_file, num_threads=1).run(*_inputs())


def _build(work: str):
    """A random tiny model folder and its fp32 export in `work` (once; later probes reuse them)."""
    import paddle

    from fastformer import model_folder
    from fastformer.inference.export import export_model
    from fastformer.tokenizer import FastformerTokenizer

    model_dir, export_dir = os.path.join(work, "model"), os.path.join(work, "export")
    if not os.path.isfile(os.path.join(export_dir, "manifest.json")):
        corpus = [" ".join(f"w{(i * 7 + j) % 60}" for j in range(12)) for i in range(40)]
        tokenizer = FastformerTokenizer.build_from_corpus(corpus, min_freq=1)
        paddle.seed(0)
        model = model_folder.build_model(tokenizer, hidden_size=32, num_attention_heads=4, intermediate_size=32,
                                 num_hidden_layers=1, max_position_embeddings=64)
        model_folder.save_model_dir(model, tokenizer, model_dir)
        export_model(model_dir, export_dir, max_length=LENGTH, log=lambda *a: None, precision="fp32")
    return model_dir, export_dir


def probe(case: str, work: str) -> dict:
    import numpy as np
    import paddle

    from fastformer.inference.export import LogitsModel
    from fastformer.inference.folders import INPUT_NAMES

    model_dir, export_dir = _build(work)
    model_file, params_file = os.path.join(export_dir, "model.json"), os.path.join(export_dir, "model.pdiparams")
    out = {"probe": case, "paddle": paddle.__version__,
           "pir_api": bool(paddle.get_flags(["FLAGS_enable_pir_api"])["FLAGS_enable_pir_api"])}
    if case == "inference_int8_flag":
        from fastformer.inference import precision

        fp32, int8 = _run(model_file, params_file, False), _run(model_file, params_file, True)
        out["max_abs_logits_diff_vs_fp32"] = float(np.abs(fp32 - int8).max())
        out["cpu_features"] = precision.cpu_features()  # the flags (VNNI, AMX, ...) and what oneDNN detects
        return out
    if case == "static_ptq":
        from paddle.static.quantization import PostTrainingQuantization

        paddle.enable_static()

        def batches():
            for _ in range(4):
                yield list(_inputs())

        try:
            ptq = PostTrainingQuantization(
                executor=paddle.static.Executor(paddle.CPUPlace()), model_dir=export_dir, model_filename="model.json",
                params_filename="model.pdiparams", data_loader=batches, batch_nums=4, algo="abs_max",
                quantizable_op_type=["matmul_v2", "matmul", "mul"], onnx_format=True)
            ptq.quantize()
            out["result"] = "quantized"
        except Exception as exc:  # noqa: BLE001 - the failure is the finding
            out["result"] = "failed"
            out["error"] = _error(exc)
        return out
    from fastformer import model_folder

    model, tokenizer = model_folder.load_model_dir(model_dir)
    model.eval()
    if case == "legacy_program_export":
        spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=n) for n in INPUT_NAMES]
        try:
            paddle.jit.save(paddle.jit.to_static(LogitsModel(model), input_spec=spec, full_graph=True),
                            os.path.join(work, "legacy", "model"))
            out["result"] = "saved"
            out["files"] = sorted(os.listdir(os.path.join(work, "legacy")))
        except Exception as exc:  # noqa: BLE001
            out["result"] = "failed"
            out["error"] = _error(exc)
        return out
    # dygraph_ptq
    from paddle.quantization import PTQ, QuantConfig
    from paddle.quantization.observers import AbsmaxObserver

    from fastformer import modeling

    config = QuantConfig(activation=None, weight=None)
    config.add_type_config(modeling.Linear, activation=AbsmaxObserver(quant_bits=8),
                           weight=AbsmaxObserver(quant_bits=8))
    ptq = PTQ(config)
    observed = ptq.quantize(model, inplace=False)
    ids, mask = _inputs()
    with paddle.no_grad():
        for _ in range(4):
            observed(paddle.to_tensor(ids), paddle.to_tensor(mask))
    quantized = ptq.convert(observed, inplace=False)
    with paddle.no_grad():
        fp32_dy = model(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)[0].numpy()
        int8_dy = quantized(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)[0].numpy()
    out["dygraph_quantized_max_abs_logits_diff_vs_fp32"] = float(np.abs(fp32_dy - int8_dy).max())
    for shape in ([None, None], [BATCH, LENGTH]):
        name = "dynamic_shape" if shape[0] is None else "fixed_shape"
        prefix = os.path.join(work, f"ptq_{name}", "model")
        spec = [paddle.static.InputSpec(shape=shape, dtype="int64", name=n) for n in INPUT_NAMES]
        try:
            wrapper = LogitsModel(quantized)
            wrapper.eval()
            paddle.jit.save(paddle.jit.to_static(wrapper, input_spec=spec, full_graph=True), prefix)
        except Exception as exc:  # noqa: BLE001
            out[name] = {"result": "export failed", "error": _error(exc)}
            continue
        with open(prefix + ".json", encoding="utf-8") as f:
            ops = sorted(set(re.findall(r'"#":"1\.([A-Za-z0-9_]+)"', f.read())))
        logits = _run(prefix + ".json", prefix + ".pdiparams", True)
        out[name] = {"result": "exported", "quant_ops_in_program": [op for op in ops if "quant" in op],
                     "inference_int8_max_abs_logits_diff_vs_fp32_export": float(
                         np.abs(logits - _run(model_file, params_file, False)).max())}
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child_case:
        common.quiet_paddle()
        common.write_child_output(args.child_output, probe(args.child_case, args.work_dir))
        return 0
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="probe_int8_") as work:
        for case in PROBES:
            env = dict(common.cpu_env(1))
            if case == "legacy_program_export":
                env["FLAGS_enable_pir_api"] = "0"
            print(f"{case} ...", flush=True)
            results[case] = common.run_child(__file__, ["--child_case", case, "--work_dir", work], env=env)
            print("  " + json.dumps({k: v for k, v in results[case].items() if k not in ("probe", "paddle")}),
                  flush=True)
    flag = results["inference_int8_flag"].get("max_abs_logits_diff_vs_fp32")
    fixed = results["dygraph_ptq"].get("fixed_shape", {})
    print(f"\nenable_mkldnn_int8() on the fp32 export: max abs logits difference {flag}; PTQ export run with it: "
          f"{fixed.get('inference_int8_max_abs_logits_diff_vs_fp32_export')} (dygraph int8 simulation: "
          f"{results['dygraph_ptq'].get('dygraph_quantized_max_abs_logits_diff_vs_fp32')}); "
          f"{time.perf_counter() - start:.0f} s")
    payload = {**common.result_header("int8_probe", __file__, args, argv),
               "description": "what Paddle Inference does with int8 requests for this model on CPU (see docstring)",
               "versions": common.versions("paddle", "paddlenlp", "numpy"), "results": results}
    common.write_json(args.output, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
