"""`after_import(name, callback)`: run `callback()` once module `name` has loaded, now if it already has, else right
after its import (a finder in `sys.meta_path` that wraps its loader). No paddle: `fastformer.env` and
`fastformer.auto` use it to act after paddle or PaddleNLP loads without importing them.
"""

from __future__ import annotations

import importlib.abc
import sys
import types
from typing import Callable, Dict, List, Optional

__all__ = ["after_import"]

_waiting: Dict[str, List[Callable[[], None]]] = {}


def _loaded(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def after_import(name: str, callback: Callable[[], None]) -> None:
    if _loaded(name):
        callback()
        return
    _waiting.setdefault(name, []).append(callback)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds a waited-for module as the other finders do and wraps its loader."""

    def find_spec(self, fullname: str, path, target=None):
        if fullname not in _waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenCall(spec.loader, fullname)
                return spec
        return None


class _ThenCall(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, name: str):
        self.loader, self.name = loader, name

    def create_module(self, spec) -> Optional[types.ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        callbacks = _waiting.pop(self.name, [])
        if not _waiting and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for callback in callbacks:
            callback()

    def __getattr__(self, attr: str):  # get_source, get_filename ... as the wrapped loader's
        return getattr(self.loader, attr)


_finder = _Finder()
