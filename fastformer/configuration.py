"""Fastformer model configuration, and the allowed values of its fields (`check_config_values`)."""

from __future__ import annotations

import math
from typing import Mapping

from paddlenlp.transformers.activations import ACT2FN
from paddlenlp.transformers.configuration_utils import PretrainedConfig

__all__ = ["FastformerConfig", "POOLER_TYPES", "ATTENTION_TYPES", "HIDDEN_ACTS", "check_config_values"]

POOLER_TYPES = ("attention", "mean", "first")
ATTENTION_TYPES = ("additive", "softmax")
HIDDEN_ACTS = tuple(sorted(ACT2FN))  # PaddleNLP's activations by name: a config names one, it never imports code

_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
          "max_position_embeddings")
_FLAGS = ("use_value_projection", "share_attention_layers")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config_values(values: Mapping) -> None:
    """A ValueError naming the first field of `values` (config fields, e.g. a config.json's) whose value is not
    allowed: sizes are positive integers, heads divide hidden_size, probabilities lie in [0, 1), hidden_act is one
    of `HIDDEN_ACTS`, pooler_type / attention_type known names, pad_token_id a token id. Absent fields are not
    checked. Cheap and allocation-free: it runs before anything is built from a config file."""
    def bad(name, allowed):
        return ValueError(f"{name} must be {allowed}, got {values[name]!r}")

    for name in _SIZES:
        if name in values and not (_is_int(values[name]) and values[name] >= 1):
            raise bad(name, "a positive integer")
    if "num_labels" in values and not (_is_int(values["num_labels"]) and values["num_labels"] >= 1):
        raise bad("num_labels", "a positive integer")
    hidden, heads = values.get("hidden_size"), values.get("num_attention_heads")
    if hidden is not None and heads is not None and hidden % heads:
        raise ValueError(f"hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads})")
    for name in ("hidden_dropout_prob", "classifier_dropout"):
        if name in values and not (_is_number(values[name]) and 0 <= values[name] < 1):
            raise bad(name, "a number in [0, 1)")
    if "layer_norm_eps" in values and not (_is_number(values["layer_norm_eps"]) and values["layer_norm_eps"] > 0):
        raise bad("layer_norm_eps", "a positive number")
    if "initializer_range" in values and not (_is_number(values["initializer_range"])
                                              and values["initializer_range"] >= 0):
        raise bad("initializer_range", "a number >= 0")
    for name, allowed in (("hidden_act", HIDDEN_ACTS), ("pooler_type", POOLER_TYPES),
                          ("attention_type", ATTENTION_TYPES)):
        if name in values and (not isinstance(values[name], str) or values[name] not in allowed):
            raise bad(name, f"one of {allowed}")
    for name in _FLAGS:
        if name in values and not isinstance(values[name], bool):
            raise bad(name, "true or false")
    pad, vocab = values.get("pad_token_id"), values.get("vocab_size")
    if "pad_token_id" in values and not (_is_int(pad) and pad >= 0 and (vocab is None or pad < vocab)):
        raise bad("pad_token_id", f"a token id in [0, vocab_size{'' if vocab is None else f' = {vocab}'})")


class FastformerConfig(PretrainedConfig):
    r"""
    Configuration of a Fastformer (Wu et al., 2021, arXiv 2108.09084) encoder. The defaults are the paper's
    Amazon setting, as in the official `fastformer.json`.

    Args:
        vocab_size (int): Size of the word vocabulary; set it from the tokenizer. Defaults to 30000.
        hidden_size (int): Width of embeddings and every layer. Defaults to 256.
        num_hidden_layers (int): Number of Fastformer layers. Defaults to 2.
        num_attention_heads (int): Heads of the additive attention; must divide `hidden_size`. Defaults to 16.
        intermediate_size (int): Width of the feed-forward layer. Defaults to 256.
        hidden_act (str): Feed-forward activation. Defaults to "gelu".
        hidden_dropout_prob (float): Dropout on embeddings and after each sub-layer. Defaults to 0.2.
        max_position_embeddings (int): Longest sequence the learned positions cover. Defaults to 512.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12.
        initializer_range (float): Std of the normal initialiser of Linear and Embedding weights.
            Defaults to 0.02.
        pad_token_id (int): Id of the padding token; its embedding row starts at zero. Defaults to 0.
        pooler_type (str): How the sequence vector is made: "attention" (the paper's masked additive
            attention pooling), "mean" (masked mean) or "first" (first token). Defaults to "attention".
        use_value_projection (bool): Use a separate value projection instead of value = query (the paper
            shares them). Defaults to False.
        share_attention_layers (bool): One additive-attention module (query/key projections and their
            attention layers) shared by all layers: the paper's layer-wise parameter sharing.
            Defaults to False.
        classifier_dropout (float): Dropout before the classifier. Defaults to 0.0, as the official classifier
            has none.
        attention_type (str): "additive" (Fastformer) or "softmax": standard multi-head scaled dot-product
            self-attention in the same blocks (embeddings, post-LayerNorm layers, pooler and classifier unchanged),
            the paper's Transformer baseline. Defaults to "additive".
        num_labels / id2label / label2id: the classes (PaddleNLP's `PretrainedConfig` fields); 5 star ratings
            by default.
    """

    model_type = "fastformer"
    attribute_map = {**PretrainedConfig.attribute_map, "dropout": "hidden_dropout_prob"}

    def __init__(
        self,
        vocab_size: int = 30000,
        hidden_size: int = 256,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 16,
        intermediate_size: int = 256,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.2,
        max_position_embeddings: int = 512,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        pad_token_id: int = 0,
        pooler_type: str = "attention",
        use_value_projection: bool = False,
        share_attention_layers: bool = False,
        classifier_dropout: float = 0.0,
        attention_type: str = "additive",
        **kwargs,
    ):
        kwargs.setdefault("return_dict", True)  # task heads return ModelOutput objects unless told otherwise
        if "id2label" not in kwargs:
            kwargs.setdefault("num_labels", 5)
        fields = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        check_config_values({**fields, **{k: kwargs[k] for k in ("num_labels",) if k in kwargs}})
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.pooler_type = pooler_type
        self.use_value_projection = use_value_projection
        self.share_attention_layers = share_attention_layers
        self.classifier_dropout = classifier_dropout
        self.attention_type = attention_type
