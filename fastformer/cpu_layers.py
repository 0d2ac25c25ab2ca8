"""The CPU training speed-ups of the model's layers (docs/training.md, "CPU kernels").

`Linear`, `LayerNorm`, `GELU` and `Dropout` keep the parameters and forward kernels of Paddle's layers (bit-identical
outputs) and compute the same gradients faster in CPU dygraph: Linear's from matmuls, the others in the compiled
multi-threaded kernels of `cpu_ops`, in training mode only. Eval mode, export, inference, to_static and GPU run
Paddle's own layers, so inference never compiles C++.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from . import cpu_ops

try:
    from paddle.base.dygraph.base import in_sot_simulation_mode
except ImportError:  # a Paddle without SOT

    def in_sot_simulation_mode() -> bool:
        return False


__all__ = ["dygraph_cpu", "custom_grad", "kernels_for", "expand", "Linear", "LayerNorm", "GELU", "Dropout"]


def dygraph_cpu(x: paddle.Tensor) -> bool:
    return (
        paddle.in_dynamic_mode()
        and not in_sot_simulation_mode()  # to_static's SOT tracing (the Trainer's `to_static`): Paddle's layers
        and x.place.is_cpu_place()
    )


def custom_grad(x: paddle.Tensor, *params: paddle.Tensor) -> bool:
    return (
        dygraph_cpu(x)
        and not x.stop_gradient
        and all(p is not None and not p.stop_gradient for p in params)
    )


def kernels_for(x: paddle.Tensor) -> bool:
    """The compiled CPU kernels (`cpu_ops`) take float32 tensors in CPU dygraph, where they could be built."""
    return x.dtype == paddle.float32 and dygraph_cpu(x) and cpu_ops.available()


def expand(x: paddle.Tensor, like: paddle.Tensor) -> paddle.Tensor:
    """`x` expanded to `like`'s shape in CPU dygraph (a same-shape multiply is fast there, a broadcast one and its
    backward reduce are slow), else left to broadcasting (exported graphs stay ONNX-friendly)."""
    return x.expand_as(like) if dygraph_cpu(like) else x


def _column_sum(x: paddle.Tensor) -> paddle.Tensor:
    """[M, K] -> [K] as ones[1, M] @ x (a GEMV: many times faster than Paddle's CPU sum over axis 0)."""
    return paddle.matmul(paddle.ones([1, x.shape[0]], dtype=x.dtype), x).reshape([-1])


class _LinearFunction(PyLayer):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        out = paddle.addmm(bias, x.reshape([-1, x.shape[-1]]), weight)  # b + x W, bias added by the GEMM (beta 1)
        return out.reshape(x.shape[:-1] + weight.shape[-1:])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        grad_2d = grad.reshape([-1, grad.shape[-1]])  # [M, out]
        grad_x = paddle.matmul(grad, weight, transpose_y=True)  # g W^T
        grad_w = paddle.matmul(x.reshape([-1, x.shape[-1]]), grad_2d, transpose_x=True)  # x^T g
        return grad_x, grad_w, _column_sum(grad_2d)  # db = sum over rows of g


class _LayerNormFunction(PyLayer):
    @staticmethod
    def forward(ctx, x, weight, bias, epsilon):
        ctx.save_for_backward(x, weight)
        ctx.epsilon = epsilon
        return F.layer_norm(x, x.shape[-1:], weight, bias, epsilon)  # x_hat * w + b

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        return cpu_ops.layer_norm_backward(x, weight, grad, ctx.epsilon)  # compiled, multi-threaded


class _GeluFunction(PyLayer):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.gelu(x)  # exact (erf) GELU

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensor()
        return cpu_ops.gelu_backward(x, grad)  # compiled, multi-threaded


class _DropoutFunction(PyLayer):
    @staticmethod
    def forward(ctx, x, p):
        out, mask = cpu_ops.dropout(x, p)  # compiled, multi-threaded
        ctx.save_for_backward(mask)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensor()
        return cpu_ops.dropout_backward(mask, grad, ctx.p)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same output) with the fast CPU backward."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if custom_grad(x, self.weight, self.bias):
            return _LinearFunction.apply(x, self.weight, self.bias)
        return super().forward(x)


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last axis (same parameters, same output) with the compiled CPU backward
    (`cpu_ops`; Paddle's own where it could not be built)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.training and len(self._normalized_shape) == 1 and custom_grad(x, self.weight, self.bias) \
                and kernels_for(x):  # eval mode (inference) never builds the compiled kernels
            return _LayerNormFunction.apply(x, self.weight, self.bias, self._epsilon)
        return super().forward(x)


class GELU(nn.Layer):
    """Exact GELU (`F.gelu`, PaddleNLP's "gelu") with the compiled CPU backward."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.training and custom_grad(x) and kernels_for(x):  # eval mode never builds the compiled kernels
            return _GeluFunction.apply(x)
        return F.gelu(x)


class Dropout(nn.Dropout):
    """`nn.Dropout` that is no op at all outside training (eval-mode `nn.Dropout` still puts a dropout op, a full
    copy of its input, into exported graphs), with the compiled kernel in CPU dygraph training."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.mode == "upscale_in_train" and self.axis is None and kernels_for(x):
            return _DropoutFunction.apply(x, self.p)
        return super().forward(x)
