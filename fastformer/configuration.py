"""Fastformer model configuration."""

from __future__ import annotations

from paddlenlp.transformers.configuration_utils import PretrainedConfig

__all__ = ["FastformerConfig", "POOLER_TYPES", "ATTENTION_TYPES"]

POOLER_TYPES = ("attention", "mean", "first")
ATTENTION_TYPES = ("additive", "softmax")


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
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({num_attention_heads})"
            )
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        if pooler_type not in POOLER_TYPES:
            raise ValueError(f"pooler_type must be one of {POOLER_TYPES}, got {pooler_type!r}")
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
