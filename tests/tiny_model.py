"""The tiny untrained classifier that the prediction, export and serving tests build from a made-up corpus."""

from __future__ import annotations

from typing import Sequence, Tuple

import fastformer  # noqa: F401
import paddle
from fastformer import model_folder
from fastformer.modeling import FastformerForSequenceClassification
from fastformer.tokenizer import FastformerTokenizer


def tiny_model(
    corpus: Sequence[str], seed: int, max_positions: int = 64
) -> Tuple[FastformerForSequenceClassification, FastformerTokenizer]:
    """A 1-layer, hidden-16, 4-head classifier (seeded init) and its tokenizer built from `corpus`."""
    tokenizer = FastformerTokenizer.build_from_corpus(corpus, min_freq=1)
    paddle.seed(seed)
    model = model_folder.build_model(tokenizer, hidden_size=16, num_attention_heads=4, intermediate_size=32,
                             num_hidden_layers=1, max_position_embeddings=max_positions)
    return model, tokenizer


def saved_tiny_model(
    model_dir: str, corpus: Sequence[str], seed: int, max_positions: int = 64
) -> Tuple[FastformerForSequenceClassification, FastformerTokenizer]:
    """`tiny_model`, saved as a model folder at `model_dir`."""
    model, tokenizer = tiny_model(corpus, seed, max_positions)
    model_folder.save_model_dir(model, tokenizer, model_dir)
    return model, tokenizer
