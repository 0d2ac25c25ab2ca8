"""pyproject.toml: the wheel holds both packages, every module and the C++ sources the CPU kernels are compiled from,
and carries the runtime pins of requirements.txt."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("fastformer", "fastformer/training", "fastformer/inference", "data_process")


def package_files():
    """Every file the installed packages need: their modules and the kernel sources (fastformer/csrc)."""
    files = {f"{p}/{f}" for p in PACKAGES for f in os.listdir(os.path.join(ROOT, p)) if f.endswith(".py")}
    return files | {f"fastformer/csrc/{f}" for f in os.listdir(os.path.join(ROOT, "fastformer", "csrc"))}


def test_wheel_holds_every_module_and_the_kernel_sources(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel without network needs setuptools installed")
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to pyproject.toml
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for package in ("fastformer", "data_process", "reproduction"):  # reproduction must stay out of the wheel
        shutil.copytree(os.path.join(ROOT, package), src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = list((tmp_path / "dist").glob("fastformer_paddle-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "fastformer/csrc/cpu_ops.cc" in names
    assert package_files() <= names, sorted(package_files() - names)
    assert not any(name.startswith("reproduction/") for name in names)  # the PyTorch checks stay out of the wheel
    requires = {line.split(":", 1)[1].split(";")[0].strip()  # without the environment markers
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert {"paddlepaddle==3.3.1", "paddlenlp==2.8.1", "numpy==1.26.4"} <= requires
