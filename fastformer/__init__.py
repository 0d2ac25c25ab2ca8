"""Fastformer for PaddleNLP: configuration, models and the word-level tokenizer."""

import os

# Paddle's CPU wheel ships an MKL that takes a slow path on AMD CPUs unless this is set before paddle loads
# (about 3x on sgemm, see README). A value the user set is kept.
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")

from .configuration import FastformerConfig  # noqa: E402
from .modeling import (  # noqa: E402
    FastformerForSequenceClassification,
    FastformerModel,
    FastformerPretrainedModel,
)
from .tokenizer import FastformerTokenizer  # noqa: E402

__all__ = [
    "FastformerConfig",
    "FastformerPretrainedModel",
    "FastformerModel",
    "FastformerForSequenceClassification",
    "FastformerTokenizer",
]
