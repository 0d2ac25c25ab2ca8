"""Fastformer for PaddleNLP: configuration, models and the word-level tokenizer.

The public classes load on first use (`from fastformer import FastformerConfig` works as usual), so that
`import fastformer.cli` or the data pipeline do not load paddle (0.07 s instead of 5 s). Importing `fastformer`
registers the model with PaddleNLP's Auto classes (`fastformer.auto`), and `fastformer.pipeline(model_dir)` predicts.
"""

from importlib import import_module
from typing import Any

from . import env as _env  # before paddle loads: MKL_DEBUG_CPU_TYPE
from .auto import register_when_loaded as _register_when_loaded

_EXPORTS = {
    "FastformerConfig": "configuration",
    "FastformerPretrainedModel": "modeling",
    "FastformerModel": "modeling",
    "FastformerForSequenceClassification": "modeling",
    "FastformerTokenizer": "tokenizer",
    "Predictor": "inference.predictor",
    "load_predictor": "inference.loader",
    "pipeline": "inference.pipeline",
}

__all__ = list(_EXPORTS)

_register_when_loaded()


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
