"""`fastformer.pipeline(model_dir)(["text", ...])`: predictions in one line, in the spirit of PaddleNLP's Taskflow and
Hugging Face's `pipeline` (docs/library.md). A thin wrapper over `loader.load_predictor`; results as
`Predictor.predict`.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Union

from .loader import load_predictor
from .predictor import Predictor

__all__ = ["Pipeline", "pipeline"]

Result = Dict[str, object]


class Pipeline:
    """Calls `predictor.predict`: a string gives one result, a list of strings a list of results in input order."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def __call__(self, texts: Union[str, Sequence[str]]) -> Union[Result, List[Result]]:
        if isinstance(texts, str):
            return self.predictor.predict([texts])[0]
        return self.predictor.predict(list(texts))

    def __repr__(self) -> str:
        return f"Pipeline({self.predictor!r})"


def pipeline(model_dir: str, **kwargs) -> Pipeline:
    """A `Pipeline` over `load_predictor(model_dir, **kwargs)`: an export folder (export_model.py) or a trained model
    folder (train.py); keyword arguments as `load_predictor`'s (precision, batch_size, device, ...)."""
    return Pipeline(load_predictor(model_dir, **kwargs))
