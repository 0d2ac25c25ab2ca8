"""What runs the network: Paddle Inference on an export, or the dygraph model of a model folder."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .folders import INPUT_NAMES

__all__ = ["DEVICES", "ONNXRUNTIME_MISSING", "check_device", "onnxruntime_missing", "InferenceRunner", "OrtRunner",
           "DynamicRunner"]

DEVICES = ("cpu", "gpu")
ONNXRUNTIME_MISSING = ("onnxruntime is not installed (an optional backend: pip install -r benchmarks/requirements.txt "
                       "or pip install 'fastformer-paddle[onnxruntime]')")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "gpu":
        import paddle

        if not paddle.device.is_compiled_with_cuda():
            raise RuntimeError(
                f"device='gpu' was asked for, but this Paddle ({paddle.__version__}) is a CPU-only build: install "
                "paddlepaddle-gpu or use device='cpu'"
            )
        if paddle.device.cuda.device_count() < 1:
            raise RuntimeError("device='gpu' was asked for, but no CUDA device is visible; use device='cpu'")
    return device


class InferenceRunner:
    """A Paddle Inference predictor of an exported model: (input_ids, attention_mask) -> logits (numpy)."""

    def __init__(
        self,
        model_file: str,
        params_file: str,
        device: str = "cpu",
        num_threads: Optional[int] = None,
        enable_mkldnn: bool = True,
        gpu_id: int = 0,
        mkldnn_cache_capacity: int = 0,
        precision: str = "fp32",
        fused: bool = False,
    ):
        from paddle import inference

        from ..env import keep_freed_memory

        check_device(device)
        if fused:  # model.fused.json calls the compiled operator: registered with Paddle before the program loads
            from .fused import fused_unavailable

            why = fused_unavailable() if device == "cpu" else f"the fused operator runs on CPU, not {device!r}"
            if why:
                raise ValueError(f"the fused backend cannot run here: {why}")
            enable_mkldnn = False  # no oneDNN operators left in the program (its products call oneDNN's gemm)
        if device == "cpu":
            keep_freed_memory()  # no page faults for every activation on every forward (docs/inference_speed.md)
        config = inference.Config(model_file, params_file)
        config.disable_glog_info()  # first: enabling bf16 logs a line otherwise
        if device == "gpu":
            config.enable_use_gpu(256, gpu_id)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(num_threads or os.cpu_count() or 1))
            if enable_mkldnn:
                config.enable_mkldnn()
                if mkldnn_cache_capacity:
                    config.set_mkldnn_cache_capacity(mkldnn_cache_capacity)
                if precision == "bf16":  # callers check the CPU first (inference.loader)
                    config.enable_mkldnn_bfloat16()
            else:
                config.disable_mkldnn()
        config.switch_ir_optim(True)
        self.device = device
        self.enable_mkldnn = bool(enable_mkldnn and device == "cpu")
        self.precision = precision if self.enable_mkldnn or fused else "fp32"  # fused: its program's precision
        # the fused operator computes no padding after a text's last token: one pass per batch, no shapes to bucket
        self.skips_padding = bool(fused)
        try:
            self._predictor = inference.create_predictor(config)
        except (RuntimeError, ValueError, OSError) as exc:  # Paddle's many-line message: its first line
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ValueError(f"Paddle Inference cannot load {model_file!r} + {params_file!r} (damaged or not an "
                             f"export of this Paddle): {first}") from exc
        self.input_names = list(self._predictor.get_input_names())
        unknown = set(self.input_names) - set(INPUT_NAMES)
        if unknown:
            raise ValueError(f"{model_file!r} takes inputs {self.input_names}, expected {list(INPUT_NAMES)}")
        self.output_name = self._predictor.get_output_names()[0]
        self._inputs = {name: self._predictor.get_input_handle(name) for name in self.input_names}
        self._output = self._predictor.get_output_handle(self.output_name)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask}
        for name, handle in self._inputs.items():
            array = np.ascontiguousarray(arrays[name], dtype=np.int64)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self._predictor.run()
        return self._output.copy_to_cpu()


def onnxruntime_missing() -> Optional[str]:
    """None when onnxruntime can be imported, else the one-line reason (it is never installed at run time)."""
    import importlib.util

    return None if importlib.util.find_spec("onnxruntime") is not None else ONNXRUNTIME_MISSING


class OrtRunner:
    """ONNX Runtime (CPU) on an export's model.onnx (or model.int8.onnx): (input_ids, attention_mask) -> logits."""

    def __init__(self, onnx_file: str, num_threads: Optional[int] = None, precision: str = "fp32"):
        missing = onnxruntime_missing()
        if missing:
            raise ValueError(missing)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types; one line says which file
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ValueError(f"ONNX Runtime cannot load {onnx_file!r}: {first}") from exc
        self.input_names = [i.name for i in self._session.get_inputs()]
        if set(self.input_names) != set(INPUT_NAMES):
            raise ValueError(f"{onnx_file!r} takes inputs {self.input_names}, expected {list(INPUT_NAMES)}")
        self.device, self.enable_mkldnn, self.precision = "cpu", False, precision

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask}
        feeds = {name: np.ascontiguousarray(arrays[name], dtype=np.int64) for name in self.input_names}
        return self._session.run(None, feeds)[0]


class DynamicRunner:
    """The dygraph model of a trained model folder: (input_ids, attention_mask) -> logits (numpy)."""

    def __init__(self, model, device: str = "cpu", num_threads: Optional[int] = None):
        import paddle

        check_device(device)
        if num_threads:
            try:
                paddle.base.core.set_num_threads(int(num_threads))
            except AttributeError:  # pragma: no cover - older Paddle
                pass
        self._paddle = paddle
        self._place = paddle.CUDAPlace(0) if device == "gpu" else paddle.CPUPlace()
        if device == "gpu":
            model.to(device="gpu")
        model.eval()
        self.model = model
        self.device = device

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        paddle = self._paddle
        with paddle.no_grad():
            logits = self.model(
                paddle.to_tensor(input_ids, place=self._place),
                paddle.to_tensor(attention_mask, place=self._place),
                return_dict=False,
            )[0]
        return logits.numpy()
