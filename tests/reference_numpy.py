"""A float64 numpy Fastformer written from the paper's equations (Wu et al. 2021, eq. 3-8) and the official code's
blocks, for the tests: no paddle, no torch. It reads a Paddle state dict (numpy arrays; Linear weights [in, out]).

Also `realistic_weights`, which re-draws a model's parameters at the scale of a trained model. Freshly initialised
weights (std 0.02) make every attention weight nearly 1/L: pooling is then a plain mean whatever the head split, the
1/sqrt(d) scaling or the GELU approximation, and porting bugs of that kind move the logits by less than 1e-5.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
from scipy.special import erf

__all__ = ["logits", "realistic_weights"]


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased variance, as torch/paddle
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))  # exact (erf) GELU, the official "gelu"


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def pool_weights(scores, mask, num_heads, hidden):
    """alpha[b, i, n] = softmax_i(w_n . x_i / sqrt(d)) over real tokens: scores [B, L, N] (unscaled) -> [B, L, N]."""
    scores = np.where(mask[:, :, None] > 0, scores / np.sqrt(hidden // num_heads), -np.inf)
    return softmax(scores, axis=1)


def additive_pool(x, scores, mask, num_heads):
    """eq. 3-4 / 6-7: alpha[b, i, n] = softmax_i(w_n . x_i / sqrt(d)) over real tokens; head n pools its own d columns
    of x (columns n*d .. n*d + d - 1). x [B, L, H], scores [B, L, N] (before scaling), mask [B, L] -> [B, 1, H]."""
    b, length, h = x.shape
    d = h // num_heads
    alpha = pool_weights(scores, mask, num_heads, h)  # [B, L, N]
    heads = x.reshape(b, length, num_heads, d)
    return np.einsum("bln,blnd->bnd", alpha, heads).reshape(b, 1, h)


def logits(state: Mapping[str, np.ndarray], config, input_ids: np.ndarray, attention_mask: Optional[np.ndarray] = None,
           weights_out: Optional[dict] = None):
    """Logits [B, C] of `FastformerForSequenceClassification` with the parameters `state`, in float64.
    `weights_out`, when given, receives "alpha" and "beta" (per layer, [B, N, L]) and "pooling" ([B, L])."""
    keep = {"alpha": [], "beta": []}
    p = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    ids = np.asarray(input_ids)
    mask = (ids != config.pad_token_id) if attention_mask is None else np.asarray(attention_mask) > 0
    mask = mask.astype(np.float64)
    eps, n = config.layer_norm_eps, config.num_attention_heads
    act = {"gelu": gelu}[config.hidden_act]

    def linear(x, name):
        return x @ p[name + ".weight"] + p[name + ".bias"]

    def norm(x, name):
        return layer_norm(x, p[name + ".weight"], p[name + ".bias"], eps)

    e = "fastformer.embeddings."
    h = p[e + "word_embeddings.weight"][ids] + p[e + "position_embeddings.weight"][np.arange(ids.shape[1])][None]
    h = norm(h, e + "layer_norm")
    for i in range(config.num_hidden_layers):
        a = f"fastformer.layers.{i}.attention."
        q, k = linear(h, a + "query"), linear(h, a + "key")
        global_query = additive_pool(q, linear(q, a + "query_att"), mask, n)  # eq. 3-4
        qk = k * global_query  # eq. 5
        global_key = additive_pool(qk, linear(qk, a + "key_att"), mask, n)  # eq. 6-7
        if weights_out is not None:
            keep["alpha"].append(pool_weights(linear(q, a + "query_att"), mask, n, q.shape[-1]).transpose(0, 2, 1))
            keep["beta"].append(pool_weights(linear(qk, a + "key_att"), mask, n, q.shape[-1]).transpose(0, 2, 1))
        v = linear(h, a + "value") if config.use_value_projection else q  # value = query unless projected
        attention = linear(global_key * v, a + "transform") + q  # eq. 8 and the output transform + query residual
        layer = f"fastformer.layers.{i}."
        h = norm(linear(attention, layer + "attention_output.dense") + h, layer + "attention_output.layer_norm")
        ffn = linear(act(linear(h, layer + "intermediate")), layer + "output.dense")
        h = norm(ffn + h, layer + "output.layer_norm")  # BERT post-LayerNorm blocks
    if config.pooler_type == "attention":
        scores = linear(np.tanh(linear(h, "fastformer.pooler.att_fc1")), "fastformer.pooler.att_fc2")[..., 0]
        weights = softmax(np.where(mask > 0, scores, -np.inf), axis=1)
    elif config.pooler_type == "mean":
        weights = mask / mask.sum(1, keepdims=True)
    else:  # first
        weights = np.zeros_like(mask)
        weights[:, 0] = 1.0
    pooled = np.einsum("bl,blh->bh", weights, h)
    if weights_out is not None:
        weights_out.update(keep, pooling=weights)
    return linear(pooled, "classifier")


def realistic_weights(model, seed: int = 0, std: float = 0.4, embedding_std: float = 0.05) -> None:
    """Re-draw every parameter of a Paddle model in place, at the scale of a trained model: Linear weights N(0, std),
    biases N(0, 0.1), LayerNorm gains 1 + N(0, 0.2), embeddings N(0, embedding_std) (small, as trained embeddings
    are, so that the embedding LayerNorm's epsilon matters), the padding row kept at 0."""
    import paddle

    rng = np.random.default_rng(seed)
    pad = model.config.pad_token_id
    for name, param in model.named_parameters():
        shape = tuple(param.shape)
        if "layer_norm" in name:
            value = (1.0 if name.endswith("weight") else 0.0) + rng.normal(0.0, 0.2, shape)
        elif "embeddings" in name:
            value = rng.normal(0.0, embedding_std, shape)
            if "word_embeddings" in name:
                value[pad] = 0.0
        elif name.endswith("bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, std, shape)
        param.set_value(paddle.to_tensor(value.astype(np.float32)))
