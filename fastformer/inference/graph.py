"""The network an export holds: the classifier's eval-mode arithmetic regrouped into fewer, fusable operators.

`export_graph(model)` returns `FoldedClassifier` for additive-attention models (the same function as the model's
forward, checked against it by the export's parity check) and `LogitsModel` (the model's own forward) otherwise.
What is folded and why: docs/inference_speed.md, "The exported graph".
"""

from __future__ import annotations

import math
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..modeling import MASK_VALUE

__all__ = ["LogitsModel", "FoldedClassifier", "export_graph"]


class LogitsModel(nn.Layer):
    """The classifier as a graph of two named inputs and one output, the logits [B, C]."""

    def __init__(self, model: nn.Layer):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask, return_dict=False)[0]


def _f64(tensor) -> np.ndarray:
    return tensor.numpy().astype(np.float64)


class _Weights(nn.Layer):
    """Float32 parameters made from float64 arrays, set as attributes of the given names."""

    def add(self, **arrays: np.ndarray) -> None:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array, dtype=np.float32)
            setattr(self, name, self.create_parameter(list(array.shape), dtype="float32",
                                                      default_initializer=nn.initializer.Assign(array)))


class _FoldedLayer(_Weights):
    """One Fastformer layer (attention block + feed-forward block, post-LayerNorm), folded."""

    def __init__(self, layer: nn.Layer, epsilon: float):
        super().__init__()
        att, out1, out2 = layer.attention, layer.attention_output, layer.output
        scale = 1.0 / math.sqrt(att.head_size)
        wq, bq = _f64(att.query.weight), _f64(att.query.bias)
        wt, bt = _f64(att.transform.weight), _f64(att.transform.bias)
        wd, bd = _f64(out1.dense.weight), _f64(out1.dense.bias)
        bo = _f64(out2.dense.bias)
        wi = _f64(layer.intermediate.weight)
        self.value = att.value is not None
        if self.value:
            self.add(wv=_f64(att.value.weight), bv=_f64(att.value.bias))
        self.add(
            wq=wq, bq=bq, wk=_f64(att.key.weight), bk=_f64(att.key.bias),
            # scorer biases dropped: a softmax over the sequence ignores a per-head constant
            wqa=_f64(att.query_att.weight) * scale, wka=_f64(att.key_att.weight) * scale,
            # dense(transform(u) + q) + x = u (Wt Wd) + x (Wq Wd + I) + (bq + bt) Wd + bd
            wu=wt @ wd, wx=wq @ wd + np.eye(wq.shape[0]), bx=(bq + bt) @ wd + bd,
            # the output bias bo rides on the first LayerNorm's shift (a' = a + bo), taken back in the intermediate bias
            ln1_w=_f64(out1.layer_norm.weight), ln1_b=_f64(out1.layer_norm.bias) + bo,
            wi=wi, bi=_f64(layer.intermediate.bias) - bo @ wi, wo=_f64(out2.dense.weight),
            ln2_w=_f64(out2.layer_norm.weight), ln2_b=_f64(out2.layer_norm.bias),
        )
        self.activation = layer.activation
        self.epsilon, self.hidden = epsilon, wq.shape[0]

    @staticmethod
    def _pool(x, scorer, mask, head_mask):
        """Per-head softmax over the sequence of x W [B, L, N] (+ mask), each head's weighted sum of x -> [B, 1, H]."""
        weights = F.softmax(paddle.matmul(x, scorer) + mask, axis=1)  # [B, L, N]
        every_head = paddle.matmul(weights, x, transpose_x=True)  # [B, N, H]: all heads against all columns
        return (every_head * head_mask).sum(axis=1, keepdim=True)  # each column from its own head

    def forward(self, x, mask, head_mask):
        q = F.linear(x, self.wq, self.bq)
        k = F.linear(x, self.wk, self.bk)
        v = F.linear(x, self.wv, self.bv) if self.value else q
        global_query = self._pool(q, self.wqa, mask, head_mask)
        global_key = self._pool(k * global_query, self.wka, mask, head_mask)
        a = F.layer_norm(paddle.matmul(global_key * v, self.wu) + F.linear(x, self.wx, self.bx), [self.hidden],
                         self.ln1_w, self.ln1_b, self.epsilon)
        h = self.activation(F.linear(a, self.wi, self.bi))
        return F.layer_norm(paddle.matmul(h, self.wo) + a, [self.hidden], self.ln2_w, self.ln2_b, self.epsilon)


class FoldedClassifier(_Weights):
    """`FastformerForSequenceClassification` in eval mode, regrouped: (input_ids, attention_mask) -> logits [B, C].

    Products of consecutive linear maps are precomputed (in float64), biases move where an addition already
    happens, the attention mask is built once, and every residual addition follows a matmul, where Paddle
    Inference's oneDNN passes fuse it. Weights are new tensors; the model is not changed.
    """

    def __init__(self, model: nn.Layer):
        super().__init__()
        config, encoder = model.config, model.fastformer
        heads, hidden = config.num_attention_heads, config.hidden_size
        size = hidden // heads
        self.heads, self.hidden, self.epsilon = heads, hidden, config.layer_norm_eps
        self.num_labels, self.pooler_type = config.num_labels, config.pooler_type
        emb = encoder.embeddings
        self.add(word=_f64(emb.word_embeddings.weight), position=_f64(emb.position_embeddings.weight),
                 ln_w=_f64(emb.layer_norm.weight), ln_b=_f64(emb.layer_norm.bias),
                 head_mask=np.kron(np.eye(heads), np.ones((1, size))),  # [N, H]: 1 where a column is in the head
                 wc=_f64(model.classifier.weight), bc=_f64(model.classifier.bias))
        self.layers = nn.LayerList([_FoldedLayer(layer, self.epsilon) for layer in encoder.layers])
        if self.pooler_type == "attention":
            pooler = encoder.pooler  # att_fc2's bias: shift-invariant, dropped
            self.add(w1=_f64(pooler.att_fc1.weight), b1=_f64(pooler.att_fc1.bias), w2=_f64(pooler.att_fc2.weight))

    def forward(self, input_ids, attention_mask):
        length = paddle.shape(input_ids)[1]
        keep = attention_mask.astype("float32").unsqueeze(-1)  # [B, L, 1]
        mask = (1.0 - keep) * MASK_VALUE  # 0 keep, -1e4 padding
        mask_heads = paddle.tile(mask, [1, 1, self.heads])  # [B, L, N], built once for every pooling
        x = F.embedding(input_ids, self.word) + self.position[:length]
        x = F.layer_norm(x, [self.hidden], self.ln_w, self.ln_b, self.epsilon)
        for layer in self.layers:
            x = layer(x, mask_heads, self.head_mask)
        if self.pooler_type == "first":
            pooled = x[:, :1]
        else:
            if self.pooler_type == "attention":
                weights = F.softmax(paddle.matmul(paddle.tanh(F.linear(x, self.w1, self.b1)), self.w2) + mask, axis=1)
            else:  # mean over the real tokens
                weights = keep / paddle.clip(keep.sum(axis=1, keepdim=True), min=1.0)
            pooled = paddle.matmul(weights, x, transpose_x=True)  # [B, 1, H]
        return F.linear(pooled, self.wc, self.bc).reshape([-1, self.num_labels])


def export_graph(model: nn.Layer) -> nn.Layer:
    """The layer to export for `model` (eval mode): `FoldedClassifier` where it applies, else `LogitsModel`."""
    config = model.config
    if getattr(config, "attention_type", "additive") == "additive" and config.pooler_type in ("attention", "mean",
                                                                                               "first"):
        graph = FoldedClassifier(model)
    else:
        graph = LogitsModel(model)
    graph.eval()
    return graph
