"""Fastformer (Wu et al., 2021, "Fastformer: Additive Attention Can Be All You Need", arXiv 2108.09084).

The math and the parameter layout follow the official code (github.com/wuch15/Fastformer): additive
global query, element-wise query-key product, global key pooled from that product, value = query,
`transform(global_key * q) + q`, BERT-style post-LayerNorm blocks and masked attention pooling.
Shapes: B batch, L length, H hidden, N heads, D = H / N head size.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddlenlp.transformers import PretrainedModel, register_base_model
from paddlenlp.transformers.activations import ACT2FN

from . import cpu_layers as cpu
from .configuration import FastformerConfig
from .cpu_layers import GELU, Dropout, LayerNorm, Linear
from .outputs import FastformerClassifierOutput, FastformerModelOutput, attention_fields

__all__ = [
    "FastformerPretrainedModel",
    "FastformerModel",
    "FastformerForSequenceClassification",
    "SHIFT_INVARIANT_BIASES",
]

# Parameter-name suffixes whose gradient is identically zero in exact arithmetic: the biases of the scorers whose
# scores go through a softmax over the sequence (`query_att`, `key_att`, `att_fc2`), which a constant shift leaves
# unchanged. Their float gradient is rounding noise (~1e-9) that Adam's 1/sqrt(v) turns into steps of about the
# learning rate, so their values depend on the summation order while the model's outputs do not.
SHIFT_INVARIANT_BIASES = ("query_att.bias", "key_att.bias", "att_fc2.bias")

# Additive mask value of the official code. Paddle's CPU softmax clips (x - max) at -64, so the masked
# weights are also multiplied by the 0/1 mask to make them exactly 0, as exp(-1e4) is in PyTorch.
MASK_VALUE = -10000.0


def additive_mask(attention_mask: paddle.Tensor, dtype) -> paddle.Tensor:
    """[B, L] 1/0 mask -> [B, 1, L] additive mask (0 keep, -1e4 drop)."""
    return (1.0 - attention_mask.astype(dtype).unsqueeze(1)) * MASK_VALUE


class FastformerEmbeddings(nn.Layer):
    """Word + learned position embeddings, LayerNorm, dropout."""

    def __init__(self, config: FastformerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layer_norm = LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: paddle.Tensor) -> paddle.Tensor:
        # CPU dygraph: [B, L] position ids (not [1, L] broadcast): a same-shape add, whose backward is not a slow reduce
        position_ids = paddle.arange(paddle.shape(input_ids)[1], dtype="int64").unsqueeze(0)  # [1, L]
        if cpu.dygraph_cpu(input_ids):
            position_ids = position_ids.expand_as(input_ids)  # [B, L]
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)  # [B, L, H]
        return self.dropout(self.layer_norm(x))


class FastSelfAttention(nn.Layer):
    """Additive attention: linear in L, no L x L matrix."""

    def __init__(self, config: FastformerConfig):
        super().__init__()
        h, n = config.hidden_size, config.num_attention_heads
        self.num_heads, self.head_size = n, h // n
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.query = Linear(h, h)
        self.query_att = Linear(h, n)
        self.key = Linear(h, h)
        self.key_att = Linear(h, n)
        self.value = Linear(h, h) if config.use_value_projection else None
        self.transform = Linear(h, h)

    def _pool(self, logits: paddle.Tensor, mask: paddle.Tensor, x: paddle.Tensor, keep: Optional[list] = None):
        """softmax over L of per-head logits [B, L, N], then weighted sum of x [B, L, H] -> [B, 1, H].
        The weights [B, N, L] are appended to `keep` when given."""
        b, n, d = paddle.shape(x)[0], self.num_heads, self.head_size
        weights = F.softmax(logits.transpose([0, 2, 1]) * self.scale + mask, axis=-1)  # [B, N, L]
        weights = weights * (mask == 0).astype(weights.dtype)  # exact 0 on padding
        if keep is not None:
            keep.append(weights)
        if cpu.dygraph_cpu(x):
            # Every head's weights against all H columns, then head n's own D columns (the block diagonal): one
            # batched matmul on x as it lies, no [B, N, L, D] transpose (a slow strided copy in CPU dygraph); N x
            # the FLOPs of the per-head product, still tiny next to the projections.
            pooled = paddle.matmul(weights, x).reshape([b, n, n, d])  # [B, N, N, D]
            return paddle.diagonal(pooled, axis1=1, axis2=2).transpose([0, 2, 1]).reshape([b, 1, n * d])
        # Per head (exported graphs, GPU): [B, N, 1, L] @ [B, N, L, D]; ONNX-exportable (no diagonal op).
        # (0 in a reshape keeps that dimension: one unknown dimension per shape, as ONNX Reshape requires)
        heads = x.reshape([0, 0, n, d]).transpose([0, 2, 1, 3])  # [B, N, L, D]
        return paddle.matmul(weights.unsqueeze(2), heads).reshape([0, 1, n * d])

    def forward(self, hidden_states: paddle.Tensor, mask: paddle.Tensor, output_attentions: bool = False):
        """[B, L, H] -> [B, L, H]; with `output_attentions`, also (alpha, beta), each [B, N, L]."""
        weights = [] if output_attentions else None
        q = self.query(hidden_states)  # [B, L, H]
        k = self.key(hidden_states)  # [B, L, H]
        # eq. 3-4: alpha_i = softmax(w_q . q_i / sqrt(d)); global query q = sum_i alpha_i q_i
        global_query = self._pool(self.query_att(q), mask, q, weights)  # [B, 1, H]
        # eq. 5: p_i = q * k_i
        p = k * cpu.expand(global_query, k)  # [B, L, H]
        # eq. 6-7: beta_i = softmax(w_k . p_i / sqrt(d)); global key k = sum_i beta_i p_i
        global_key = self._pool(self.key_att(p), mask, p, weights)  # [B, 1, H]
        # eq. 8: u_i = k * v_i, value = query unless a value projection is asked for
        v = q if self.value is None else self.value(hidden_states)
        # output r_i = transform(u_i) + q_i
        out = self.transform(cpu.expand(global_key, v) * v) + q  # [B, L, H]
        return (out, tuple(weights)) if output_attentions else out


class SoftmaxSelfAttention(nn.Layer):
    """Standard multi-head scaled dot-product self-attention (Vaswani et al., 2017), quadratic in L: the paper's
    Transformer baseline, in the same blocks as the additive attention (`attention_type="softmax"`)."""

    def __init__(self, config: FastformerConfig):
        super().__init__()
        h, n = config.hidden_size, config.num_attention_heads
        self.num_heads, self.head_size = n, h // n
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.query = Linear(h, h)
        self.key = Linear(h, h)
        self.value = Linear(h, h)

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.reshape([0, 0, self.num_heads, self.head_size]).transpose([0, 2, 1, 3])  # [B, N, L, D]

    def forward(self, hidden_states: paddle.Tensor, mask: paddle.Tensor, output_attentions: bool = False):
        """[B, L, H] -> [B, L, H]; with `output_attentions`, also the weights [B, N, L, L]."""
        q, k, v = (self._heads(layer(hidden_states)) for layer in (self.query, self.key, self.value))
        # softmax(q k^T / sqrt(d) + mask) v, per head
        mask = mask.unsqueeze(1)  # [B, 1, 1, L]
        weights = F.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale + mask, axis=-1)  # [B, N, L, L]
        weights = weights * (mask == 0).astype(weights.dtype)  # exact 0 on padding
        context = paddle.matmul(weights, v)  # [B, N, L, D]
        out = context.transpose([0, 2, 1, 3]).reshape([0, 0, self.num_heads * self.head_size])  # [B, L, H]
        return (out, weights) if output_attentions else out


class FastformerSelfOutput(nn.Layer):
    """BERT post-LayerNorm residual: LayerNorm(dropout(dense(x)) + input)."""

    def __init__(self, config: FastformerConfig, in_size: int):
        super().__init__()
        self.dense = Linear(in_size, config.hidden_size)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.layer_norm = LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)

    def forward(self, hidden_states: paddle.Tensor, input_tensor: paddle.Tensor) -> paddle.Tensor:
        return self.layer_norm(self.dropout(self.dense(hidden_states)) + input_tensor)


def _attention(config: FastformerConfig) -> nn.Layer:
    return SoftmaxSelfAttention(config) if config.attention_type == "softmax" else FastSelfAttention(config)


class FastformerLayer(nn.Layer):
    """Additive attention block + feed-forward block, each post-LayerNorm."""

    def __init__(self, config: FastformerConfig, attention: Optional[nn.Layer] = None):
        super().__init__()
        self.attention = attention if attention is not None else _attention(config)
        self.attention_output = FastformerSelfOutput(config, config.hidden_size)
        self.intermediate = Linear(config.hidden_size, config.intermediate_size)
        self.activation = GELU() if config.hidden_act == "gelu" else ACT2FN[config.hidden_act]
        self.output = FastformerSelfOutput(config, config.intermediate_size)

    def forward(self, hidden_states: paddle.Tensor, mask: paddle.Tensor, output_attentions: bool = False):
        """[B, L, H] -> [B, L, H]; with `output_attentions`, also the attention's weights."""
        weights = None
        if output_attentions:
            attention, weights = self.attention(hidden_states, mask, True)
        else:
            attention = self.attention(hidden_states, mask)
        attention_output = self.attention_output(attention, hidden_states)
        out = self.output(self.activation(self.intermediate(attention_output)), attention_output)
        return (out, weights) if output_attentions else out


class FastformerPooler(nn.Layer):
    """Sequence vector from token states: masked additive attention (tanh MLP), masked mean or first token."""

    def __init__(self, config: FastformerConfig):
        super().__init__()
        self.pooler_type = config.pooler_type
        if self.pooler_type == "attention":
            self.att_fc1 = Linear(config.hidden_size, config.hidden_size)
            self.att_fc2 = Linear(config.hidden_size, 1)

    def attention_weights(self, hidden_states: paddle.Tensor, attention_mask: paddle.Tensor) -> paddle.Tensor:
        """[B, L] weights summing to 1 over the real tokens, 0 on padding."""
        logits = self.att_fc2(paddle.tanh(self.att_fc1(hidden_states))).squeeze(-1)  # [B, L]
        mask = attention_mask.astype(logits.dtype)
        return F.softmax(logits + (1.0 - mask) * MASK_VALUE, axis=-1) * mask  # exact 0 on padding

    def forward(self, hidden_states: paddle.Tensor, attention_mask: paddle.Tensor, output_attentions: bool = False):
        """[B, L, H] -> [B, H]; with `output_attentions`, also the token weights [B, L]."""
        if self.pooler_type == "first":
            pooled = hidden_states[:, 0]
            if not output_attentions:
                return pooled
            first = F.one_hot(paddle.zeros(paddle.shape(attention_mask)[:1], "int64"), attention_mask.shape[1])
            return pooled, first.astype(hidden_states.dtype)  # all the weight on the first token
        if self.pooler_type == "attention":
            weights = self.attention_weights(hidden_states, attention_mask)  # [B, L]
        else:
            mask = attention_mask.astype(hidden_states.dtype)
            weights = mask / paddle.clip(mask.sum(axis=1, keepdim=True), min=1.0)  # [B, L]
        pooled = paddle.matmul(weights.unsqueeze(1), hidden_states).squeeze(1)  # [B, H]
        return (pooled, weights) if output_attentions else pooled


class FastformerPretrainedModel(PretrainedModel):
    """Base class: config class, weight initialisation (as the official `init_weights`), file names."""

    config_class = FastformerConfig
    base_model_prefix = "fastformer"
    model_config_file = "config.json"
    resource_files_names = {"model_state": "model_state.pdparams"}
    pretrained_init_configuration = {}
    pretrained_resource_files_map = {"model_state": {}}

    def _init_weights(self, layer: nn.Layer):
        if isinstance(layer, (nn.Linear, nn.Embedding)):
            weight = paddle.normal(mean=0.0, std=self.config.initializer_range, shape=layer.weight.shape)
            if isinstance(layer, nn.Embedding) and layer._padding_idx is not None:
                weight[layer._padding_idx] = 0.0
            layer.weight.set_value(weight.astype(layer.weight.dtype))
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                layer.bias.set_value(paddle.zeros_like(layer.bias))
        elif isinstance(layer, nn.LayerNorm):
            layer.weight.set_value(paddle.ones_like(layer.weight))
            layer.bias.set_value(paddle.zeros_like(layer.bias))


@register_base_model
class FastformerModel(FastformerPretrainedModel):
    """Fastformer encoder: embeddings, `num_hidden_layers` Fastformer layers and a pooler."""

    def __init__(self, config: FastformerConfig):
        super().__init__(config)
        self.embeddings = FastformerEmbeddings(config)
        shared = _attention(config) if config.share_attention_layers else None
        self.layers = nn.LayerList([FastformerLayer(config, shared) for _ in range(config.num_hidden_layers)])
        self.pooler = FastformerPooler(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: paddle.Tensor,
        attention_mask: Optional[paddle.Tensor] = None,
        output_hidden_states: bool = False,
        return_dict: Optional[bool] = None,
        output_attentions: bool = False,
    ) -> Union[FastformerModelOutput, Tuple[paddle.Tensor, ...]]:
        """
        Args:
            input_ids: [B, L] token ids.
            attention_mask: [B, L], 1 for real tokens and 0 for padding; `input_ids != pad_token_id` if None.
            output_hidden_states: also return the embeddings and every layer's output.
            return_dict: return a `FastformerModelOutput` rather than a tuple; `config.return_dict` if None.
            output_attentions: also return the per-token weights (`fastformer.outputs`); the other outputs are
                the same.
        """
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).astype("int64")
        hidden_states = self.embeddings(input_ids)  # [B, L, H]
        mask = additive_mask(attention_mask, hidden_states.dtype)  # [B, 1, L]
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_weights, pooling_weights = ([], None) if output_attentions else (None, None)
        for layer in self.layers:
            if output_attentions:
                hidden_states, weights = layer(hidden_states, mask, True)
                all_weights.append(weights)
            else:
                hidden_states = layer(hidden_states, mask)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
        pooled = self.pooler(hidden_states, attention_mask, output_attentions)  # [B, H]
        if output_attentions:
            pooled, pooling_weights = pooled
        if not return_dict and not output_attentions:
            return (hidden_states, pooled) + ((tuple(all_hidden_states),) if output_hidden_states else ())
        output = FastformerModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            pooling_weights=pooling_weights,
            **attention_fields(all_weights),
        )
        return output if return_dict else output.to_tuple()


class FastformerForSequenceClassification(FastformerPretrainedModel):
    """Fastformer with a linear classifier on the pooled vector (the official `dense_linear`)."""

    def __init__(self, config: FastformerConfig):
        super().__init__(config)
        self.fastformer = FastformerModel(config)
        self.num_labels = config.num_labels
        self.dropout = Dropout(config.classifier_dropout)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def forward(
        self,
        input_ids: paddle.Tensor,
        attention_mask: Optional[paddle.Tensor] = None,
        labels: Optional[paddle.Tensor] = None,
        output_hidden_states: bool = False,
        return_dict: Optional[bool] = None,
        output_attentions: bool = False,
    ) -> Union[FastformerClassifierOutput, Tuple[paddle.Tensor, ...]]:
        """
        Args:
            input_ids, attention_mask, output_hidden_states, output_attentions: as in `FastformerModel`.
            labels: [B] class ids; when given, the mean cross-entropy is returned as `loss`.
            return_dict: return a `FastformerClassifierOutput` rather than a tuple; `config.return_dict` if None.
        """
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        outputs = self.fastformer(input_ids, attention_mask, output_hidden_states=output_hidden_states,
                                  return_dict=True, output_attentions=output_attentions)
        logits = self.classifier(self.dropout(outputs.pooler_output))  # [B, C]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.reshape([-1]).astype("int64"))
        if not return_dict and not output_attentions:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        output = FastformerClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
            query_weights=outputs.query_weights, key_weights=outputs.key_weights,
            pooling_weights=outputs.pooling_weights,
        )
        return output if return_dict else output.to_tuple()
