"""The compiled CPU training kernels (fastformer.cpu_ops) against Paddle's own kernels."""

import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from fastformer import cpu_ops
from fastformer.modeling import Dropout, GELU, LayerNorm

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="no C++ compiler: the model uses Paddle's own kernels (tested everywhere else)",
)


def test_kernels_build():
    assert cpu_ops.available(), cpu_ops.unavailable_reason()


def paddle_grads(fn, *inputs, grad):
    tensors = [paddle.to_tensor(a, stop_gradient=False) for a in inputs]
    fn(*tensors).backward(paddle.to_tensor(grad))
    return [t.grad.numpy() for t in tensors]


def test_layer_norm_backward_matches_paddle():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 50, 32)) * 2 + 1).astype("float32")
    w = rng.uniform(0.5, 1.5, 32).astype("float32")
    b = rng.standard_normal(32).astype("float32")
    g = rng.standard_normal(x.shape).astype("float32")
    ref = paddle_grads(lambda x_, w_, b_: F.layer_norm(x_, [32], w_, b_, 1e-12), x, w, b, grad=g)
    ours = cpu_ops.layer_norm_backward(paddle.to_tensor(x), paddle.to_tensor(w), paddle.to_tensor(g), 1e-12)
    for name, r, o in zip(("dx", "dw", "db"), ref, ours):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-4, atol=1e-5 * np.abs(r).max(), err_msg=name)
    # the same result on every call (per-thread partial sums are added in a fixed order)
    again = cpu_ops.layer_norm_backward(paddle.to_tensor(x), paddle.to_tensor(w), paddle.to_tensor(g), 1e-12)
    assert all(np.array_equal(a.numpy(), o.numpy()) for a, o in zip(again, ours))


def test_gelu_backward_matches_paddle():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 3, [0.0, -8.0, 8.0, 1e-6]]).astype("float32")
    g = rng.standard_normal(x.shape).astype("float32")
    (ref,) = paddle_grads(F.gelu, x, grad=g)
    ours = cpu_ops.gelu_backward(paddle.to_tensor(x), paddle.to_tensor(g)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_layers_use_the_kernels_and_give_paddles_results(monkeypatch):
    calls = []
    for name in ("layer_norm_backward", "gelu_backward"):
        kernel = getattr(cpu_ops, name)
        monkeypatch.setattr(cpu_ops, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 16)).astype("float32")
    g = rng.standard_normal(x.shape).astype("float32")
    ln = LayerNorm(16, epsilon=1e-12)
    for ours, ref in ((ln, lambda t: F.layer_norm(t, [16], ln.weight, ln.bias, 1e-12)), (GELU(), F.gelu)):
        a, b = paddle.to_tensor(x, stop_gradient=False), paddle.to_tensor(x, stop_gradient=False)
        out = ours(a)
        np.testing.assert_array_equal(out.numpy(), ref(b).numpy())  # Paddle's own forward kernels
        out.backward(paddle.to_tensor(g))
        ref(b).backward(paddle.to_tensor(g))
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
    assert calls == ["layer_norm_backward", "gelu_backward"]


def test_dropout_kernel():
    drop = Dropout(0.2)
    drop.train()
    x = paddle.ones([64, 128, 128])
    x.stop_gradient = False
    paddle.seed(3)
    y = drop(x)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.8) < 0.003  # 1M draws: the standard error is 0.0004
    assert np.all(y.numpy()[kept] == np.float32(1.25))  # upscaled in train
    g = np.random.default_rng(3).standard_normal(x.shape).astype("float32")
    y.backward(paddle.to_tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), g * kept * 1.25, rtol=1e-6)
    paddle.seed(3)
    assert np.array_equal(drop(x).numpy(), y.numpy())  # paddle.seed repeats the masks
    assert not np.array_equal(drop(x).numpy(), y.numpy())  # the next call draws a new one
    drop.eval()
    assert drop(x) is x  # no op (and none in exported graphs) outside training


FALLBACK = """
import warnings
import numpy as np, paddle
from fastformer import FastformerConfig, FastformerForSequenceClassification, cpu_ops
model = FastformerForSequenceClassification(FastformerConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                                             num_attention_heads=2, intermediate_size=16))
model.train()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")  # every warning raised is recorded: "once" is up to cpu_ops
    for _ in range(2):
        out = model(paddle.to_tensor([[1, 2, 3, 0]]), attention_mask=paddle.to_tensor([[1, 1, 1, 0]]),
                    labels=paddle.to_tensor([2]))
        out.loss.backward()
assert not cpu_ops.available() and cpu_ops.unavailable_reason() == "disabled by FASTFORMER_CPU_OPS=0"
assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters() if p.grad is not None)
ours = [w for w in caught if "compiled CPU kernels unavailable" in str(w.message)]
assert len(ours) == 1 and "FASTFORMER_CPU_OPS=0" in str(ours[0].message), [str(w.message) for w in caught]
print("fallback ok")
"""


def test_without_the_kernels_the_model_uses_paddles_and_warns_once():
    env = dict(os.environ, FASTFORMER_CPU_OPS="0")
    done = subprocess.run([sys.executable, "-c", FALLBACK], env=env, capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0 and "fallback ok" in done.stdout, done.stderr[-2000:]
