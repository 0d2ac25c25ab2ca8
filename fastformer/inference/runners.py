"""What runs the network: Paddle Inference on an export, or the dygraph model of a model folder."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .folders import INPUT_NAMES

__all__ = ["DEVICES", "check_device", "InferenceRunner", "DynamicRunner"]

DEVICES = ("cpu", "gpu")


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
    ):
        from paddle import inference

        check_device(device)
        config = inference.Config(model_file, params_file)
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
        config.disable_glog_info()
        self.device = device
        self.enable_mkldnn = bool(enable_mkldnn and device == "cpu")
        self.precision = precision if self.enable_mkldnn else "fp32"
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
