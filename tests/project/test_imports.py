"""Every module of the repository imports. A broken import fails here; it is never turned into a skip (only a module
that needs PyTorch may skip, and only where PyTorch is not installed)."""

import importlib
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("fastformer", "fastformer_data", "reproduction")
FOLDERS = {"fastformer_data": "data_process"}  # installed name -> folder (pyproject.toml's package-dir)
MODULE_FOLDERS = ("tools", "benchmarks")  # run as modules (`python -m tools.x`); imported here without running main()


def _package_modules(package):
    first, *rest = package.split(".")
    folder = os.path.join(ROOT, FOLDERS.get(first, first), *rest)
    names = [package]
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py") and f != "__init__.py":
            names.append(f"{package}.{f[:-3]}")
        elif os.path.isfile(os.path.join(folder, f, "__init__.py")):
            names += _package_modules(f"{package}.{f}")
    return names


def repo_modules():
    names = [f[:-3] for f in sorted(os.listdir(ROOT)) if f.endswith(".py") and f not in ("conftest.py", "setup.py")]
    for package in PACKAGES:
        names += _package_modules(package)
    return names


def script_modules():
    return [f"{folder}.{f[:-3]}" for folder in MODULE_FOLDERS if os.path.isdir(os.path.join(ROOT, folder))
            for f in sorted(os.listdir(os.path.join(ROOT, folder))) if f.endswith(".py")]


def _skip_only_for_missing_torch(exc: ModuleNotFoundError):
    if exc.name == "torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("needs PyTorch, which is not installed")
    raise exc


def test_the_module_list_is_not_empty():
    assert {"fastformer.modeling", "fastformer.training.trainer", "fastformer.inference.loader",
            "fastformer_data.reader", "reproduction.alignment", "train", "export_model"} <= set(repo_modules())


@pytest.mark.parametrize("name", repo_modules())
def test_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        _skip_only_for_missing_torch(exc)


@pytest.mark.parametrize("name", script_modules())
def test_tool_and_benchmark_modules_import(name):
    try:
        importlib.import_module(name)  # not "__main__": main() does not run
    except ModuleNotFoundError as exc:
        _skip_only_for_missing_torch(exc)
