"""Fastformer for PaddleNLP: configuration, models and the word-level tokenizer.

The public classes are imported on first use (`from fastformer import FastformerConfig` works as usual), so that
`import fastformer.cli` or the data pipeline do not load paddle.
"""

import os
from importlib import import_module
from typing import Any

# Paddle's CPU wheel ships an MKL that takes a slow path on AMD CPUs unless this is set before paddle loads
# (about 3x on sgemm, see README). A value the user set is kept.
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")

_EXPORTS = {
    "FastformerConfig": "configuration",
    "FastformerPretrainedModel": "modeling",
    "FastformerModel": "modeling",
    "FastformerForSequenceClassification": "modeling",
    "FastformerTokenizer": "tokenizer",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
