"""Fastformer in PaddleNLP's Auto classes: `AutoModel*` and `AutoTokenizer.from_pretrained(model_dir)`
(docs/library.md).

PaddleNLP 2.8.1 maps a folder's `architectures` / `tokenizer_class` to a name through mappings in
`paddlenlp.transformers.auto` and then imports `paddlenlp.transformers.<name>.modeling` (or `.tokenizer`).
`register()` adds "Fastformer" -> "fastformer" to those mappings and names fastformer's modules under
`paddlenlp.transformers.fastformer` in `sys.modules`; PaddleNLP's files stay as they are. `import fastformer` calls
`register_when_loaded()`: now if paddlenlp.transformers is loaded, else right after it loads (`import_hooks`), so
`import fastformer` itself does not load paddle.
"""

from __future__ import annotations

import importlib
import sys
import types

from .import_hooks import after_import

__all__ = ["register", "register_when_loaded", "is_registered"]

TRIGGER = "paddlenlp.transformers"
NAME = "fastformer"  # the model's name in PaddleNLP's mappings (paddlenlp.transformers.fastformer.*)
FLAG = "Fastformer"  # class-name prefix the Auto classes match in `architectures`
SUBMODULES = ("configuration", "modeling", "tokenizer")
_registered = False


def _alias(name: str, target: str) -> types.ModuleType:
    """A module named `name` whose attributes are `target`'s, imported on first use (not while paddlenlp loads)."""
    module = types.ModuleType(name, f"{target} under PaddleNLP's name (fastformer.auto)")
    module.__getattr__ = lambda attr: getattr(importlib.import_module(target), attr)  # type: ignore[method-assign]
    return module


def register() -> None:
    """Adds Fastformer to PaddleNLP's Auto mappings (once; paddlenlp.transformers must be loaded)."""
    global _registered
    if _registered:
        return
    _registered = True
    from paddlenlp.transformers.auto import modeling as auto_modeling
    from paddlenlp.transformers.auto import tokenizer as auto_tokenizer

    package = _alias(f"{TRIGGER}.{NAME}", "fastformer")
    package.__path__ = []  # type: ignore[attr-defined]
    sys.modules.setdefault(package.__name__, package)
    for sub in SUBMODULES:  # an attribute too: AutoTokenizer imports the package and reads `.tokenizer`
        setattr(package, sub, sys.modules.setdefault(f"{package.__name__}.{sub}",
                                                      _alias(f"{package.__name__}.{sub}", f"fastformer.{sub}")))
    # first, so that no other model's name inside "Fastformer..." is matched before it
    auto_modeling.MAPPING_NAMES[FLAG] = NAME
    auto_modeling.MAPPING_NAMES.move_to_end(FLAG, last=False)
    for task, auto_name in auto_modeling.MAPPING_TASKS.items():  # each Auto class copied the mapping when defined
        mapping = getattr(getattr(auto_modeling, auto_name, None), "_name_mapping", None)
        if isinstance(mapping, dict):
            mapping[f"{FLAG}Model_Import_Class"] = FLAG + task
            mapping[FLAG + task] = NAME
    auto_tokenizer.TOKENIZER_MAPPING_NAMES[f"{FLAG}Tokenizer"] = NAME
    auto_tokenizer.AutoTokenizer._name_mapping[f"{FLAG}Tokenizer"] = NAME


def is_registered() -> bool:
    return _registered


def register_when_loaded() -> None:
    """`register()` now if paddlenlp.transformers is loaded, else as soon as it is."""
    after_import(TRIGGER, register)
