"""Every module of the repository imports. A broken import fails here; it is never turned into a skip (only a module
that needs PyTorch may skip, and only where PyTorch is not installed)."""

import importlib
import importlib.util
import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("fastformer", "data_process")
SCRIPT_FOLDERS = ("tools",)  # run as files (`python tools/x.py`); imported here without running main()


def repo_modules():
    names = [f[:-3] for f in sorted(os.listdir(ROOT)) if f.endswith(".py") and f not in ("conftest.py", "setup.py")]
    for package in PACKAGES:
        names.append(package)
        names += [f"{package}.{f[:-3]}" for f in sorted(os.listdir(os.path.join(ROOT, package)))
                  if f.endswith(".py") and f != "__init__.py"]
    return names


def script_files():
    return [os.path.join(folder, f) for folder in SCRIPT_FOLDERS if os.path.isdir(os.path.join(ROOT, folder))
            for f in sorted(os.listdir(os.path.join(ROOT, folder))) if f.endswith(".py")]


def _skip_only_for_missing_torch(exc: ModuleNotFoundError):
    if exc.name == "torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("needs PyTorch, which is not installed")
    raise exc


def test_the_module_list_is_not_empty():
    assert {"fastformer.modeling", "data_process.reader", "train", "export_model"} <= set(repo_modules())


@pytest.mark.parametrize("name", repo_modules())
def test_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        _skip_only_for_missing_torch(exc)


@pytest.mark.parametrize("path", script_files())
def test_tool_script_imports(path):
    try:
        runpy.run_path(os.path.join(ROOT, path), run_name="imported_by_test")  # not "__main__": main() does not run
    except ModuleNotFoundError as exc:
        _skip_only_for_missing_torch(exc)
