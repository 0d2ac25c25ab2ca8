"""Export a trained model folder to a static graph for Paddle Inference, checked against the dynamic model, and
optionally to ONNX (docs/inference.md, "Export").

    python export_model.py --model_dir output/demo/model --output_dir output/demo/export [--max_length 256] [--onnx]
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from .. import encoding, model_folder
from ..cli import UserError
from ..fileio import atomic_dir, file_sha256, write_json
from . import gate
from . import precision as precisions
from .folders import INPUT_NAMES, MANIFEST_FILE, MODEL_PREFIX
from .fused import BF16_WEIGHTS, FUSED_BF16_PREFIX, FUSED_PREFIX, FusedClassifier, fusable, fused_unavailable
from .graph import LogitsModel, export_graph
from .quantize import INT8_FILE, quantize_int8
from .runners import InferenceRunner, onnxruntime_missing

__all__ = [
    "LogitsModel",
    "ExportParityError",
    "PARITY_TOLERANCE",
    "PARITY_TEXTS",
    "export_model",
    "check_parity",
    "export_onnx",
    "no_install_env",
]

PARITY_TOLERANCE = 1e-5
FORMAT_VERSION = 2  # 2: the manifest records the SHA-256 of the model and params files

# Review-like texts of very different lengths: one padded batch of them exercises padding, masking and the
# dynamic length; the last one is longer than any max_length and is truncated to it.
PARITY_TEXTS = [
    "Great!",
    "Works fine.",
    "Stopped working after two days, waste of money.",
    "Great sound, works perfectly and the battery lasts all day.",
    "The cable is too short and the plug feels cheap, but it charges my phone quickly enough for the price.",
    "I bought this keyboard for my home office. The keys are quiet, the battery lasted three months and the "
    "receiver is tiny. After a year two keys started to stick, so four stars instead of five. Customer service "
    "answered within a day and offered a replacement, which I appreciated. Would buy again.",
    " ".join(["The screen is bright and sharp, the speakers are weak, and the remote stopped pairing twice."] * 60),
]

# Operators of this model that paddle2onnx (2.1.0) cannot convert; the conversion aborts the process on them.
ONNX_UNSUPPORTED_OPS = {
    "diagonal": "pd_op.diagonal (FastSelfAttention._pool in fastformer/modeling.py takes the per-head block "
    "diagonal of one batched matmul)",
}


class ExportParityError(RuntimeError):
    """The exported model does not reproduce the dynamic model's logits."""


def _dynamic_logits(model: nn.Layer, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        out = model(paddle.to_tensor(input_ids), paddle.to_tensor(attention_mask), return_dict=False)[0]
    return out.numpy()


def check_parity(
    model: nn.Layer,
    tokenizer,
    model_file: str,
    params_file: str,
    max_length: int,
    texts: Sequence[str] = PARITY_TEXTS,
    enable_mkldnn_options: Sequence[bool] = (True, False),
) -> Dict[str, object]:
    """Max abs logits difference between the exported model (Paddle Inference, CPU) and the dynamic model.

    Inputs: one batch of all `texts` padded to the longest (varied lengths, padding), and each text alone (no
    padding), each through Paddle Inference with oneDNN on and off.
    """
    ids = encoding.encode_texts(tokenizer, texts, max_length)
    pad = tokenizer.pad_token_id
    batches = [encoding.pad_batch(ids, pad)] + [encoding.pad_batch([seq], pad) for seq in ids]
    model.eval()
    references = [_dynamic_logits(model, *batch) for batch in batches]
    diffs = {}
    for mkldnn in enable_mkldnn_options:
        runner = InferenceRunner(model_file, params_file, device="cpu", enable_mkldnn=mkldnn)
        worst = 0.0
        for batch, ref in zip(batches, references):
            out = runner.run(*batch)
            if out.shape != ref.shape or not np.all(np.isfinite(out)):
                raise ExportParityError(f"exported model returned shape {out.shape} (all finite: "
                                        f"{bool(np.all(np.isfinite(out)))}), expected {ref.shape}")
            worst = max(worst, float(np.abs(out - ref).max()))
        diffs["onednn" if mkldnn else "plain"] = worst
    return {
        "max_abs_logits_diff": max(diffs.values()),
        "by_backend": diffs,
        "num_texts": len(texts),
        "token_lengths": [len(seq) for seq in ids],
        "padded_batch_shape": list(batches[0][0].shape),
    }


def _op_names(model_file: str) -> List[str]:
    """Paddle operator names of a PIR `.json` program (empty for a legacy `.pdmodel`)."""
    if not model_file.endswith(".json"):
        return []
    with open(model_file, encoding="utf-8") as f:
        return sorted(set(re.findall(r'"#":"1\.([A-Za-z0-9_]+)"', f.read())))


# optimize_tool="None": paddle2onnx's default, "polygraphy", sets POLYGRAPHY_AUTOINSTALL_DEPS=1 itself, and polygraphy's
# constant folding then pip-installs onnxruntime and onnx_graphsurgeon and upgrades numpy; "onnxoptimizer" names a
# pass that does not exist in paddle2onnx 2.1.0 and always falls back. The converter's own passes
# (enable_optimize) still run.
_ONNX_CHILD = r"""
import sys
import paddle2onnx
paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], opset_version=int(sys.argv[4]), enable_onnx_checker=True,
                   enable_optimize=True, optimize_tool="None")
"""


def no_install_env(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """`base` (default: os.environ) for a child process in which pip cannot install anything: no index, no
    find-links, no pip configuration file (which may name either), and polygraphy's auto-install off."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, POLYGRAPHY_AUTOINSTALL_DEPS="0")
    return env


def export_onnx(
    model_file: str,
    params_file: str,
    save_file: str,
    opset_version: int = 13,
    check_inputs: Optional[Sequence[np.ndarray]] = None,
    reference_logits: Optional[np.ndarray] = None,
    tolerance: float = PARITY_TOLERANCE,
    timeout: float = 600,
) -> Dict[str, object]:
    """Convert the exported static model to ONNX with paddle2onnx, in a child process.

    paddle2onnx aborts its process (SIGABRT) on an operator it cannot convert, hence the child, which runs with
    `no_install_env` (nothing it imports can install packages into the environment). Returns
    {"status": "ok", "file", "paddle2onnx_version", "opset_version", "max_abs_logits_diff"?} or
    {"status": "unsupported" | "failed", "reason"}; never raises on a conversion failure. When `check_inputs`
    and `reference_logits` are given, the ONNX file is run with onnx's reference evaluator (pure numpy; no
    onnxruntime needed) and compared.
    """
    try:
        import paddle2onnx

        version = paddle2onnx.__version__
    except ImportError as exc:
        where = (f"no paddle2onnx release supports Paddle 3 on Python {sys.version_info[0]}.{sys.version_info[1]}"
                 if sys.version_info >= (3, 13) else "pip install -r requirements.txt installs it")
        return {"status": "unsupported", "reason": f"paddle2onnx is not installed ({exc}; {where})"}
    if os.path.exists(save_file):
        os.remove(save_file)
    env = dict(no_install_env(), GLOG_minloglevel="2")
    proc = subprocess.run(
        [sys.executable, "-c", _ONNX_CHILD, model_file, params_file, save_file, str(opset_version)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if proc.returncode != 0 or not os.path.isfile(save_file):
        log = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
        known = [ONNX_UNSUPPORTED_OPS[op] for op in _op_names(model_file) if op in ONNX_UNSUPPORTED_OPS]
        lines = [line for line in log if "ERROR" in line or "not supported" in line.lower()] or log[-3:]
        reason = (f"paddle2onnx {version} could not convert {os.path.basename(model_file)} "
                  f"(exit code {proc.returncode}): ")
        reason += " | ".join(line.strip().rstrip(".") for line in lines[-3:])
        if known:
            reason += f". The model uses operators paddle2onnx {version} has no converter for: {'; '.join(known)}"
        return {"status": "unsupported" if known else "failed", "reason": reason, "paddle2onnx_version": version}
    result: Dict[str, object] = {
        "status": "ok",
        "file": os.path.basename(save_file),
        "sha256": file_sha256(save_file),
        "paddle2onnx_version": version,
        "opset_version": opset_version,
    }
    if check_inputs is not None and reference_logits is not None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        try:
            onnx_model = onnx.load(save_file)
            onnx.checker.check_model(onnx_model)
            names = [i.name for i in onnx_model.graph.input]
            out = ReferenceEvaluator(onnx_model).run(None, dict(zip(names, check_inputs)))[0]
            diff = float(np.abs(np.asarray(out, dtype=np.float32) - reference_logits).max())
        except Exception as exc:  # noqa: BLE001 - any failure to run the file means the conversion is unusable
            diff, problem = None, f"{type(exc).__name__}: {exc}"
        else:
            problem = None if diff <= tolerance else f"max abs logits difference {diff:.3g} > {tolerance:g}"
        if problem:
            os.remove(save_file)  # a file that does not reproduce the model is not left behind
            return {"status": "failed", "paddle2onnx_version": version,
                    "reason": f"paddle2onnx {version} wrote an ONNX file that does not reproduce the model when run "
                              f"by onnx's reference evaluator ({problem}); removed"}
        result["max_abs_logits_diff"] = diff
    return result


def export_model(
    model_dir: str,
    output_dir: str,
    max_length: Optional[int] = None,
    onnx: bool = False,
    tolerance: float = PARITY_TOLERANCE,
    parity_texts: Sequence[str] = PARITY_TEXTS,
    log=print,
    allow_pickle: bool = False,
    precision: str = "auto",
    precision_data: Optional[str] = None,
) -> Dict[str, object]:
    """Export `model_dir` (a `model_folder.save_model_dir` / train.py folder) to `output_dir`; returns the manifest.

    `max_length` (default: the model folder's truncation length, i.e. the training max_length) is stored in the
    manifest and as the tokenizer's `model_max_length`. Raises `ExportParityError` when the exported model's logits
    differ from the dynamic model's by more than `tolerance`. An ONNX conversion failure does not raise: the
    manifest's "onnx" entry says what happened. Unless `precision` is "fp32", the bf16 quality gate
    (`inference.gate`) then compares bf16 with fp32 on the dev split (`precision_data`, default data/dev.jsonl
    next to `model_dir`) where this CPU has bf16, and records the result (or why it could not run) in the manifest's
    "quality_gate". The folder is built next to `output_dir` and replaces it only when all of this has succeeded
    (`fileio.atomic_dir`: an old export is removed, a folder holding other files is kept renamed); on any error
    `output_dir` is left as it was. `allow_pickle`: see `model_folder.load_model_dir`.
    """
    target = os.path.realpath(output_dir)  # through a link to a folder: the link stays, its target is replaced
    if os.path.exists(target) and not os.path.isdir(target):
        raise UserError(f"--output_dir {output_dir!r} is a file, not a folder")
    if os.path.isdir(model_dir) and os.path.exists(target) and os.path.samefile(model_dir, target):
        raise UserError(f"--output_dir {output_dir!r} is the model folder: give the export a folder of its own")
    model, tokenizer = model_folder.load_model_dir(model_dir, allow_pickle=allow_pickle)
    config = model.config
    # default: the model folder's truncation length (the training max_length; see model_folder.load_tokenizer)
    max_length = encoding.check_max_length(max_length or tokenizer.model_max_length, config)
    encoding.set_model_max_length(tokenizer, max_length)  # the export's tokenizer_config.json records it too
    if precision != "fp32":
        precisions.check_precision(precision)
    replaced = glob.escape(target) + ".replaced-*"
    kept_before = set(glob.glob(replaced))
    with atomic_dir(target) as staging:
        manifest = _export_into(staging, model, tokenizer, max_length, onnx, tolerance, parity_texts, log)
        if precision != "fp32":
            data_file = precision_data or gate.default_data_file(model_dir)
            fused = ["fused", "fused-bf16"] if (manifest.get("fused") or {}).get("status") == "ok" else []
            candidates = (list(precisions.REDUCED_PRECISIONS) + fused
                          + (["onnxruntime", "onnxruntime-int8"] if onnx else []))
            for candidate in candidates:
                record = gate.run_quality_gate(staging, candidate, data_file, when="export", max_length=max_length)
                manifest.setdefault(gate.GATE_KEY, {})[candidate] = record
                log(f"{candidate} quality gate: {gate.describe_record(record)}")
    for kept in sorted(set(glob.glob(replaced)) - kept_before):
        log(f"the previous {output_dir} held files an export does not write: it was kept as {kept}")
    return manifest


def _export_fused(model, graph, tokenizer, folder: str, max_length: int, parity_texts: Sequence[str],
                  tolerance: float, log) -> Dict[str, object]:
    """model.fused.json + .pdiparams: `graph` as one fused operator (`fused.FusedClassifier`), held to the same parity
    check; where it cannot be made (model kind, no compiler) the record says why and the export is still complete."""
    ok, why = fusable(graph)
    why = why if not ok else fused_unavailable()
    if why:
        log(f"fused operator: not exported ({why})")
        return {"status": "unavailable", "reason": why}
    files = _save_fused(FusedClassifier(graph), os.path.join(folder, FUSED_PREFIX))
    parity = check_parity(model, tokenizer, *files, max_length, parity_texts, enable_mkldnn_options=(False,))
    if not parity["max_abs_logits_diff"] <= tolerance:
        for file in files:
            os.remove(file)
        log(f"fused operator: not exported (max abs logits difference {parity['max_abs_logits_diff']:.3g} > "
            f"{tolerance:g})")
        return {"status": "failed", "reason": f"max abs logits difference {parity['max_abs_logits_diff']:.3g} > "
                                              f"{tolerance:g}", "max_abs_logits_diff": parity["max_abs_logits_diff"]}
    log(f"fused operator: wrote {FUSED_PREFIX}.json (max abs logits difference {parity['max_abs_logits_diff']:.3g})")
    # the same in bf16: not exact, so held to the quality gate on the dev split where it runs (CPUs with bf16)
    bf16 = _save_fused(FusedClassifier(graph, bf16=True), os.path.join(folder, FUSED_BF16_PREFIX))
    log(f"fused operator: wrote {FUSED_BF16_PREFIX}.json (products in bf16; run where the CPU has bf16 and its quality "
        "gate passed)")
    return {"status": "ok", **_files_record(files), "max_abs_logits_diff": parity["max_abs_logits_diff"],
            "bf16": {"status": "ok", **_files_record(bf16), "bf16_weights": list(BF16_WEIGHTS)}}


def _save_fused(fused: FusedClassifier, prefix: str) -> List[str]:
    fused.eval()
    input_spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=name) for name in INPUT_NAMES]
    paddle.jit.save(paddle.jit.to_static(fused, input_spec=input_spec, full_graph=True), prefix)
    return [prefix + ".json", prefix + ".pdiparams"]


def _files_record(files: Sequence[str]) -> Dict[str, object]:
    return {"model_file": os.path.basename(files[0]), "params_file": os.path.basename(files[1]),
            "sha256": {os.path.basename(f): file_sha256(f) for f in files}}


def _export_into(folder: str, model, tokenizer, max_length: int, onnx: bool, tolerance: float,
                 parity_texts: Sequence[str], log) -> Dict[str, object]:
    """Write the static model, config, tokenizer, optional ONNX file and (last, after the parity check)
    manifest.json into the empty `folder`; returns the manifest."""
    config = model.config
    model.eval()
    wrapper = export_graph(model)  # FoldedClassifier: fewer operators, same logits (graph.py)
    input_spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=name) for name in INPUT_NAMES]
    static = paddle.jit.to_static(wrapper, input_spec=input_spec, full_graph=True)
    prefix = os.path.join(folder, MODEL_PREFIX)
    paddle.jit.save(static, prefix)
    model_file = next((prefix + ext for ext in (".json", ".pdmodel") if os.path.isfile(prefix + ext)), None)
    params_file = prefix + ".pdiparams"
    if model_file is None or not os.path.isfile(params_file):
        raise RuntimeError(f"paddle.jit.save wrote none of {MODEL_PREFIX}.json / {MODEL_PREFIX}.pdmodel + "
                           f"{MODEL_PREFIX}.pdiparams in {folder!r}: {sorted(os.listdir(folder))}")
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    runner = InferenceRunner(model_file, params_file, device="cpu")
    parity = check_parity(model, tokenizer, model_file, params_file, max_length, parity_texts)
    parity["tolerance"] = tolerance
    log(f"export parity: max abs logits difference {parity['max_abs_logits_diff']:.3g} "
        f"(oneDNN {parity['by_backend'].get('onednn', float('nan')):.3g}, "
        f"plain {parity['by_backend'].get('plain', float('nan')):.3g}; tolerance {tolerance:g})")
    if not parity["max_abs_logits_diff"] <= tolerance:
        raise ExportParityError(
            f"the exported model does not match the dynamic model: max abs logits difference "
            f"{parity['max_abs_logits_diff']:.3g} > {tolerance:g} ({parity['by_backend']}); nothing was exported"
        )

    import paddlenlp

    labels = [config.id2label[i] for i in range(config.num_labels)]
    manifest: Dict[str, object] = {
        "format": "fastformer-paddle-inference",
        "format_version": FORMAT_VERSION,
        "paddle_version": paddle.__version__,
        "paddlenlp_version": paddlenlp.__version__,
        "model_file": os.path.basename(model_file),
        "params_file": os.path.basename(params_file),
        "sha256": {os.path.basename(f): file_sha256(f) for f in (model_file, params_file)},
        "program_format": "pir-json" if model_file.endswith(".json") else "legacy-pdmodel",
        "graph": type(wrapper).__name__,
        "input_names": list(runner.input_names),
        "input_dtype": "int64",
        "input_shape": ["batch", "length"],
        "output_name": runner.output_name,
        "output": "logits",
        "labels": labels,
        "max_length": max_length,
        "max_position_embeddings": config.max_position_embeddings,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": config.vocab_size,
        "parity": parity,
        "fused": _export_fused(model, wrapper, tokenizer, folder, max_length, parity_texts, tolerance, log),
        "onnx": None,
    }
    if onnx:
        check = encoding.pad_batch(encoding.encode_texts(tokenizer, parity_texts, max_length), tokenizer.pad_token_id)
        manifest["onnx"] = export_onnx(
            model_file, params_file, os.path.join(folder, MODEL_PREFIX + ".onnx"),
            check_inputs=check, reference_logits=_dynamic_logits(model, *check), tolerance=tolerance,
        )
        if manifest["onnx"]["status"] == "ok":
            diff = manifest["onnx"].get("max_abs_logits_diff")
            log(f"ONNX: wrote {manifest['onnx']['file']} (max abs logits difference {diff:.3g} with onnx's reference "
                "evaluator)" if diff is not None else f"ONNX: wrote {manifest['onnx']['file']}")
            missing = onnxruntime_missing()  # int8 for the onnxruntime backend, where it is installed
            manifest["onnx"]["int8"] = ({"status": "unavailable", "reason": missing} if missing else quantize_int8(
                os.path.join(folder, MODEL_PREFIX + ".onnx"), os.path.join(folder, INT8_FILE)))
            if manifest["onnx"]["int8"]["status"] == "ok":
                log(f"ONNX int8: wrote {INT8_FILE} ({manifest['onnx']['int8']['quantized_matmuls']} matrix products "
                    "in int8; used only where the quality gate passes)")
        else:
            log(f"ONNX export not supported with this combination: {manifest['onnx']['reason']}")
    write_json(os.path.join(folder, MANIFEST_FILE), manifest)
    return manifest
