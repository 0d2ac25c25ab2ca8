"""Output classes of the Fastformer models: PaddleNLP's, plus the per-token weights of `output_attentions=True`.

Additive attention (the paper's) gives per layer alpha (`query_weights`) and beta (`key_weights`), each [B, N, L];
the softmax baseline gives `attentions` [B, N, L, L]; `pooling_weights` [B, L] are the pooler's token weights.
All sum to 1 over the real tokens and are exactly 0 on padding. See docs/explanations.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import paddle
from paddlenlp.transformers.model_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

__all__ = ["FastformerModelOutput", "FastformerClassifierOutput", "attention_fields"]


@dataclass
class FastformerModelOutput(BaseModelOutputWithPooling):
    query_weights: Optional[Tuple[paddle.Tensor, ...]] = None  # alpha per layer, [B, N, L]
    key_weights: Optional[Tuple[paddle.Tensor, ...]] = None  # beta per layer, [B, N, L]
    pooling_weights: Optional[paddle.Tensor] = None  # [B, L]


@dataclass
class FastformerClassifierOutput(SequenceClassifierOutput):
    query_weights: Optional[Tuple[paddle.Tensor, ...]] = None
    key_weights: Optional[Tuple[paddle.Tensor, ...]] = None
    pooling_weights: Optional[paddle.Tensor] = None


def attention_fields(layer_weights: Optional[Sequence]) -> Dict[str, Tuple[paddle.Tensor, ...]]:
    """The output fields of the layers' weights: (alpha, beta) pairs -> query/key_weights, matrices -> attentions."""
    if not layer_weights:
        return {}
    if isinstance(layer_weights[0], tuple):
        return {"query_weights": tuple(w[0] for w in layer_weights), "key_weights": tuple(w[1] for w in layer_weights)}
    return {"attentions": tuple(layer_weights)}
