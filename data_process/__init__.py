"""Data pipeline: read the Amazon review releases, sample and split them, and synthetic demo data.

The public names are imported lazily, so that `python -m data_process.prepare` and `python -m data_process.demo_data`
run their module once (as `__main__`), not a second copy imported by the package.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LABEL_NAMES": "prepare",
    "prepare_dataset": "prepare",
    "read_split": "prepare",
    "ReviewReader": "reader",
    "generate_demo_reviews": "demo_data",
    "load_glove_embeddings": "glove",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
