"""PyTorch reference of the official Fastformer classifier (github.com/wuch15/Fastformer, `Fastformer.ipynb`).

Written independently from the official module layout and math so that a state dict saved from the official
`Model` loads into `Model` here unchanged (same module names, same shapes), without HF `transformers`: the three
BERT blocks the official code imports (`BertSelfOutput`, `BertIntermediate`, `BertOutput`) are re-stated here.
It exists to check the Paddle port (`reproduction.alignment`) and to feed the converter (`fastformer.convert`).
Only imported when PyTorch is wanted. Shapes: B batch, L length, H hidden, N heads, D = H / N, C labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "TorchFastformerConfig",
    "AttentionPooling",
    "FastSelfAttention",
    "BertSelfOutput",
    "BertIntermediate",
    "BertOutput",
    "FastAttention",
    "FastformerLayer",
    "FastformerEncoder",
    "Model",
]


@dataclass
class TorchFastformerConfig:
    """The fields of the official `fastformer.json` the model reads (defaults: the official file, 4 AG News labels)."""

    vocab_size: int = 100000
    hidden_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 16
    intermediate_size: int = 256
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.2
    max_position_embeddings: int = 256
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    num_labels: int = 4
    pooler_type: str = "weightpooler"


def _init_linear_embedding(module: nn.Module, std: float) -> None:
    """The official `init_weights`: N(0, std) for Linear/Embedding (padding row 0), zero bias, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=std)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].fill_(0)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()


class AttentionPooling(nn.Module):
    """Official weight pooler: alpha = exp(fc2(tanh(fc1(x)))) * mask / (sum + 1e-8); returns sum_i alpha_i x_i."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.att_fc1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.att_fc2 = nn.Linear(config.hidden_size, 1)
        self.apply(lambda m: _init_linear_embedding(m, config.initializer_range))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        bz = x.shape[0]
        alpha = torch.exp(self.att_fc2(torch.tanh(self.att_fc1(x))))  # [B, L, 1], no max shift (as official)
        if attn_mask is not None:
            alpha = alpha * attn_mask.unsqueeze(2)
        alpha = alpha / (torch.sum(alpha, dim=1, keepdim=True) + 1e-8)  # [B, L, 1]
        return torch.bmm(x.permute(0, 2, 1), alpha).reshape(bz, -1)  # [B, H]


class FastSelfAttention(nn.Module):
    """Official additive attention; value = query, output transform(global_key * q) + q."""

    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads != 0:
            raise ValueError(
                f"The hidden size ({config.hidden_size}) is not a multiple of the number of attention heads "
                f"({config.num_attention_heads})"
            )
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.query_att = nn.Linear(self.all_head_size, self.num_attention_heads)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.key_att = nn.Linear(self.all_head_size, self.num_attention_heads)
        self.transform = nn.Linear(self.all_head_size, self.all_head_size)
        self.softmax = nn.Softmax(dim=-1)
        self.apply(lambda m: _init_linear_embedding(m, config.initializer_range))

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, H] -> [B, N, L, D]."""
        x = x.view(*x.shape[:-1], self.num_attention_heads, self.attention_head_size)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """hidden_states [B, L, H], attention_mask the extended additive mask [B, 1, L] -> [B, L, H]."""
        batch_size, seq_len, _ = hidden_states.shape
        scale = math.sqrt(self.attention_head_size)
        mixed_query_layer = self.query(hidden_states)  # [B, L, H]
        mixed_key_layer = self.key(hidden_states)  # [B, L, H]
        query_for_score = self.query_att(mixed_query_layer).transpose(1, 2) / scale  # [B, N, L]
        query_for_score = query_for_score + attention_mask
        query_weight = self.softmax(query_for_score).unsqueeze(2)  # [B, N, 1, L]
        query_layer = self.transpose_for_scores(mixed_query_layer)  # [B, N, L, D]
        pooled_query = torch.matmul(query_weight, query_layer)  # [B, N, 1, D]
        pooled_query = pooled_query.transpose(1, 2).reshape(-1, 1, self.all_head_size)  # [B, 1, H]
        mixed_query_key_layer = mixed_key_layer * pooled_query.repeat(1, seq_len, 1)  # [B, L, H]
        query_key_score = (self.key_att(mixed_query_key_layer) / scale).transpose(1, 2)  # [B, N, L]
        query_key_score = query_key_score + attention_mask
        query_key_weight = self.softmax(query_key_score).unsqueeze(2)  # [B, N, 1, L]
        key_layer = self.transpose_for_scores(mixed_query_key_layer)  # [B, N, L, D]
        pooled_key = torch.matmul(query_key_weight, key_layer)  # [B, N, 1, D]
        weighted_value = (pooled_key * query_layer).transpose(1, 2)  # value = query: [B, L, N, D]
        weighted_value = weighted_value.reshape(batch_size, seq_len, self.all_head_size)  # [B, L, H]
        return self.transform(weighted_value) + mixed_query_layer  # [B, L, H]


class BertSelfOutput(nn.Module):
    """LayerNorm(dropout(dense(x)) + input), as HF BERT."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertIntermediate(nn.Module):
    """gelu(dense(x)), HF BERT's `gelu` being the exact erf GELU."""

    def __init__(self, config):
        super().__init__()
        if config.hidden_act != "gelu":
            raise ValueError(f"only the official hidden_act 'gelu' is supported, got {config.hidden_act!r}")
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden_states))  # [B, L, I]


class BertOutput(nn.Module):
    """LayerNorm(dropout(dense(x)) + input), x of width intermediate_size."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class FastAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = FastSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, input_tensor: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(input_tensor, attention_mask), input_tensor)


class FastformerLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = FastAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class FastformerEncoder(nn.Module):
    """Positions + LayerNorm + dropout on given word embeddings, the layers, then pooler `pooler_index`."""

    def __init__(self, config, pooler_count: int = 1):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList([FastformerLayer(config) for _ in range(config.num_hidden_layers)])
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.poolers = nn.ModuleList()
        if getattr(config, "pooler_type", "weightpooler") == "weightpooler":
            for _ in range(pooler_count):
                self.poolers.append(AttentionPooling(config))
        self.apply(lambda m: _init_linear_embedding(m, config.initializer_range))

    def forward(self, input_embs: torch.Tensor, attention_mask: torch.Tensor, pooler_index: int = 0) -> torch.Tensor:
        """input_embs [B, L, H], attention_mask [B, L] float 1/0 -> [B, H]."""
        extended_attention_mask = attention_mask.unsqueeze(1).to(dtype=next(self.parameters()).dtype)  # [B, 1, L]
        extended_attention_mask = (1.0 - extended_attention_mask) * -10000.0
        batch_size, seq_length, _ = input_embs.shape
        position_ids = torch.arange(seq_length, dtype=torch.long, device=input_embs.device)
        position_ids = position_ids.unsqueeze(0).expand(batch_size, -1)  # [B, L]
        embeddings = input_embs + self.position_embeddings(position_ids)  # [B, L, H]
        hidden_states = self.dropout(self.LayerNorm(embeddings))
        for layer_module in self.encoders:
            hidden_states = layer_module(hidden_states, extended_attention_mask)
        assert len(self.poolers) > pooler_index
        return self.poolers[pooler_index](hidden_states, attention_mask)  # [B, H]


class Model(nn.Module):
    """The official classifier: word embedding (padding_idx 0), `FastformerEncoder`, `dense_linear`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.dense_linear = nn.Linear(config.hidden_size, config.num_labels)
        self.word_embedding = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=0)
        self.fastformer_model = FastformerEncoder(config)
        self.criterion = nn.CrossEntropyLoss()
        self.apply(lambda m: _init_linear_embedding(m, config.initializer_range))

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor):
        """input_ids [B, L] (0 = padding), targets [B] -> (mean cross-entropy, logits [B, C])."""
        mask = input_ids.bool().float()  # [B, L]
        embds = self.word_embedding(input_ids)  # [B, L, H]
        text_vec = self.fastformer_model(embds, mask)  # [B, H]
        score = self.dense_linear(text_vec)  # [B, C]
        loss = self.criterion(score, targets)
        return loss, score
