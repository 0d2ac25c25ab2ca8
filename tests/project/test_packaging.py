"""pyproject.toml: the wheel holds the packages (`fastformer`, `fastformer_data` from data_process/, `fastformer_cli`
from the root's scripts), the C++ sources of the CPU kernels, the shipped model and the license; its dependencies are
ranges without Paddle itself (an extra); the fastformer-* commands of an installed wheel answer --help, and
fastformer-predict rates a review with the wheel's own model."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = {"fastformer": "fastformer", "fastformer/training": "fastformer/training",
            "fastformer/inference": "fastformer/inference", "data_process": "fastformer_data"}  # folder: in the wheel
SHIPPED = "fastformer-amazon-reviews-rating"  # models/: the model predict.py uses without --model_dir
SCRIPTS = {"train": "fastformer-train", "evaluate": "fastformer-evaluate", "predict": "fastformer-predict",
           "export_model": "fastformer-export", "serve": "fastformer-serve"}


def package_files():
    """Every file the installed packages need: their modules, the scripts and the kernel sources (fastformer/csrc)."""
    files = {f"{name}/{f}" for folder, name in PACKAGES.items()
             for f in os.listdir(os.path.join(ROOT, folder)) if f.endswith(".py")}
    files |= {f"fastformer_cli/{script}.py" for script in SCRIPTS} | {"fastformer/training/train_help.txt"}
    shipped = os.path.join(ROOT, "models", SHIPPED)
    files |= {f"fastformer_models/{SHIPPED}/{f}" for f in os.listdir(shipped)}
    return files | {f"fastformer/csrc/{f}" for f in os.listdir(os.path.join(ROOT, "fastformer", "csrc"))}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools", reason="building the wheel without network needs setuptools installed")
    tmp_path = tmp_path_factory.mktemp("wheel")
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to pyproject.toml
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", *(f"{s}.py" for s in SCRIPTS)):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for package in ("fastformer", "data_process", "models", "reproduction"):  # reproduction stays out of the wheel
        shutil.copytree(os.path.join(ROOT, package), src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = list((tmp_path / "dist").glob("fastformer_paddle-*.whl"))
    return path


def test_wheel_holds_every_module_the_scripts_and_the_license(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert package_files() <= names, sorted(package_files() - names)
    assert not any(name.startswith(("reproduction/", "data_process/", "tests/")) for name in names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "License-Expression: Apache-2.0" in metadata
    for script, command in SCRIPTS.items():
        assert f"{command} = fastformer_cli.{script}:console_main" in entry_points


def test_dependencies_are_ranges_and_paddle_is_an_extra(wheel):
    with zipfile.ZipFile(wheel) as z:
        metadata = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [r for r in requires if "==" in r.split(";")[0]], requires  # exact pins stay in requirements*.txt
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("paddlenlp") for r in plain)
    assert not [r for r in plain if r.startswith("paddlepaddle")]  # the CPU or the GPU build: the user's choice
    assert any(r.startswith("paddlepaddle") and 'extra == "cpu"' in r for r in requires)


def test_installed_commands_answer_help(wheel, tmp_path):
    target = tmp_path / "installed"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(target))  # the installed copy, before the editable checkout
    work = tmp_path / "elsewhere"  # not the repository root: nothing imports from the checkout's folder
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import fastformer_cli.train as t, fastformer_data as d; "
                            "print(t.__file__); print(d.__file__)"], capture_output=True, text=True, env=env,
                           cwd=work, timeout=120)
    assert where.returncode == 0 and all(line.startswith(str(target)) for line in where.stdout.split()), where
    for script, command in SCRIPTS.items():
        done = subprocess.run([str(target / "bin" / command), "--help"], capture_output=True, text=True, env=env,
                              cwd=work, timeout=300)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert done.stdout.startswith(f"usage: {command}"), (command, done.stdout[:200])
    done = subprocess.run([str(target / "bin" / "fastformer-predict"), "--format", "jsonl", "--precision", "fp32",
                           "Great product, works perfectly."], capture_output=True, text=True, env=env, cwd=work,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rating"] == 5  # the wheel's own model, found without --model_dir
