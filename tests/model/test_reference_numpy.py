"""The Paddle model against a float64 numpy re-implementation of the paper's equations (`reference_numpy.py`), on
weights at a trained model's scale, on each of its code paths. No torch needed.

The paths: eval dygraph on CPU (block-diagonal attention pooling, Paddle's own layers), per-head pooling (what exported
graphs and GPUs run), and training with gradients on (the matmul-backward Linear and the compiled LayerNorm/GELU
kernels). The exported graph is compared the same way in `test_export_predict.py`.
"""

import numpy as np
import paddle
import pytest

import reference_numpy as ref
from fastformer import FastformerConfig, FastformerForSequenceClassification, cpu_layers, modeling

TOL = 1e-5  # max abs logits difference, float32 against float64
BASE = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
            max_position_embeddings=32, hidden_dropout_prob=0.1, num_labels=3)
VARIANTS = {
    "paper": dict(),  # attention pooling, value = query, LayerNorm epsilon 1e-12
    # LayerNorm epsilon 1e-3: a LayerNorm that ignores the config (Paddle's default 1e-5, or 1e-12) shows
    "options": dict(pooler_type="mean", use_value_projection=True, share_attention_layers=True, layer_norm_eps=1e-3),
    "first": dict(pooler_type="first", num_hidden_layers=1, layer_norm_eps=1e-6),
}
LENGTHS = [12, 7, 3, 1, 12, 9]


def make(variant, seed=0):
    paddle.seed(seed)
    model = FastformerForSequenceClassification(FastformerConfig(**dict(BASE, **VARIANTS[variant])))
    ref.realistic_weights(model, seed=seed)
    return model


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(LENGTHS), max(LENGTHS)), dtype="int64")
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = rng.integers(1, BASE["vocab_size"], size=n)
    return ids, (ids != 0).astype("int64")


def reference(model, ids, mask):
    return ref.logits({k: v.numpy() for k, v in model.state_dict().items()}, model.config, ids, mask)


def paddle_logits(model, ids, mask, path, monkeypatch):
    if path == "per_head":  # the pooling of exported graphs and GPUs, in dygraph
        monkeypatch.setattr(cpu_layers, "dygraph_cpu", lambda x: False)
    if path == "train":  # gradients on: the fast CPU training layers; dropout off to compare
        model.train()
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.Dropout):
                layer.p = 0.0
        return model(paddle.to_tensor(ids), paddle.to_tensor(mask)).logits.numpy()
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(ids), paddle.to_tensor(mask)).logits.numpy()


@pytest.mark.parametrize("path", ["eval", "per_head", "train"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_logits_match_the_numpy_reference(variant, path, monkeypatch):
    model = make(variant)
    ids, mask = inputs()
    expected = reference(model, ids, mask)
    got = paddle_logits(model, ids, mask, path, monkeypatch)
    assert np.abs(got - expected).max() <= TOL, np.abs(got - expected).max()


def test_layer_norms_use_the_config_epsilon():
    model = make("options")
    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.LayerNorm)]
    assert len(norms) == 1 + 2 * BASE["num_hidden_layers"]  # embeddings + two per layer
    assert all(layer._epsilon == 1e-3 for layer in norms)


def test_weights_are_at_a_scale_where_porting_bugs_show(monkeypatch):
    """The comparison above can fail: on these weights each realistic porting bug moves the reference's own logits
    by far more than TOL (on the official init, std 0.02, most of them stay under it)."""
    model = make("paper")
    ids, mask = inputs()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    exact = ref.logits(state, model.config, ids, mask)

    def tanh_gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))

    def pool_without_scaling(x, scores, mask, num_heads):
        return pool(x, scores * np.sqrt(x.shape[-1] // num_heads), mask, num_heads)

    def pool_wrong_head_split(x, scores, mask, num_heads):  # H split as [D, N]: head n pools every N-th column
        b, length, h = x.shape
        mixed = x.reshape(b, length, h // num_heads, num_heads).transpose(0, 1, 3, 2).reshape(b, length, h)
        return pool(mixed, scores, mask, num_heads)

    pool = ref.additive_pool
    bugs = {"tanh GELU": ("gelu", tanh_gelu), "no 1/sqrt(d)": ("additive_pool", pool_without_scaling),
            "head split": ("additive_pool", pool_wrong_head_split)}
    moved = {}
    for bug, (name, fn) in bugs.items():
        with monkeypatch.context() as m:
            m.setattr(ref, name, fn)
            moved[bug] = np.abs(ref.logits(state, model.config, ids, mask) - exact).max()
    config = FastformerConfig(**dict(BASE, layer_norm_eps=1e-5))  # Paddle's default epsilon instead of 1e-12
    moved["LayerNorm epsilon 1e-5"] = np.abs(ref.logits(state, config, ids, mask) - exact).max()
    assert all(diff > 10 * TOL for diff in moved.values()), moved
