"""Python versions: `make` refuses a Python that cannot run the project in one line, before any venv exists; a
half-made venv is made again; requirements.txt gives each supported Python one pin per package; without
paddle2onnx (Python 3.13) `export_model.py --onnx` says so in one line and the Paddle export is still written.

The Pythons are stand-ins (a script that runs tools/check_python.py under another `sys.version_info`), so no other
interpreter is needed and nothing is installed."""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

FAKE = '''#!{exe}
"""A stand-in for Python {version}: runs tools/check_python.py as that version; `-m venv DIR` {venv_doc}."""
import os, runpy, sys
sys.version_info = {info!r}
if {no_venv}:
    sys.modules["ensurepip"] = None  # as on Debian without python3-venv
if sys.argv[1:2] == ["tools/check_python.py"]:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
elif sys.argv[1:3] == ["-m", "venv"] and {makes_venv}:
    venv = sys.argv[3]
    os.makedirs(os.path.join(venv, "bin"))
    with open(os.path.join(venv, "pyvenv.cfg"), "w") as f:
        f.write("version = {version}.0\\n")
    with open(os.path.join(venv, "bin", "python"), "w") as f:
        f.write("#!/bin/sh\\necho 'ERROR: no network' >&2\\nexit 1\\n")
    os.chmod(os.path.join(venv, "bin", "python"), 0o755)
else:
    sys.exit("fake python: cannot run " + " ".join(sys.argv[1:]))
'''


def fake_python(tmp_path, version, venv_module=True, makes_venv=False):
    path = tmp_path / f"python{version}"
    info = tuple(int(x) for x in version.split(".")) + (0, "final", 0)
    path.write_text(FAKE.format(exe=sys.executable, version=version, info=info, no_venv=not venv_module,
                                makes_venv=makes_venv, venv_doc="makes a venv whose pip fails" if makes_venv
                                else "fails"))
    path.chmod(0o755)
    return str(path)


def make(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON", "VENV")}
    return subprocess.run(["make", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def lines(done):
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@needs_make
@pytest.mark.parametrize("version", ["3.9", "3.14"])
def test_make_refuses_an_unsupported_python_in_one_line_before_any_venv(tmp_path, version):
    venv = tmp_path / "venv"
    done = make("demo", f"PYTHON={fake_python(tmp_path, version)}", f"VENV={venv}")
    assert done.returncode != 0
    (line,) = lines(done)
    assert f"Python {version}" in line and "3.10, 3.11, 3.12 or 3.13" in line, line
    assert "make demo PYTHON=python3.12" in line, line
    assert not venv.exists()


@needs_make
def test_make_refuses_a_python_without_venv_and_a_missing_one(tmp_path):
    venv = tmp_path / "venv"
    done = make("install", f"PYTHON={fake_python(tmp_path, '3.12', venv_module=False)}", f"VENV={venv}")
    (line,) = lines(done)
    assert done.returncode != 0 and "apt install python3.12-venv" in line, line
    done = make("install", f"PYTHON={tmp_path / 'no-such-python'}", f"VENV={venv}")
    (line,) = lines(done)
    assert done.returncode != 0 and "does not run" in line and "PYTHON=python3.12" in line, line
    assert not venv.exists()


@needs_make
@pytest.mark.parametrize("version", SUPPORTED)
def test_make_accepts_each_supported_python(tmp_path, version):
    venv = tmp_path / "venv"
    python = fake_python(tmp_path, version)
    done = make("-n", "install", f"PYTHON={python}", f"VENV={venv}")
    assert done.returncode == 0, done.stderr
    assert f"{python} -m venv {venv}" in done.stdout
    assert "pip install --no-deps -r requirements-nodeps.txt" in done.stdout
    assert not venv.exists()


@needs_make
def test_an_explicit_python_must_match_the_python_of_a_finished_venv(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n")
    (venv / ".runtime").touch()
    done = make("-n", "install", f"PYTHON={fake_python(tmp_path, '3.12')}", f"VENV={venv}")
    (line,) = lines(done)
    assert done.returncode != 0 and "venv of Python 3.11, not 3.12" in line and "VENV=" in line, line
    assert make("-n", "install", f"PYTHON={fake_python(tmp_path, '3.11')}", f"VENV={venv}").returncode == 0


@needs_make
def test_a_half_made_venv_is_made_again_and_a_failed_install_leaves_none(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("version = 3.12.1\n")  # no .runtime stamp: an install that stopped half-way
    (venv / "left-over").touch()
    done = make("install", f"PYTHON={fake_python(tmp_path, '3.12', makes_venv=True)}", f"VENV={venv}")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "is incomplete: making it again" in out and "ERROR: no network" in out, out
    assert f"installing into {venv} failed" in out
    assert not venv.exists()


@needs_make
def test_a_folder_that_is_not_a_venv_is_refused_and_kept(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "notes.txt").write_text("mine")
    done = make("install", f"PYTHON={fake_python(tmp_path, '3.12', makes_venv=True)}", f"VENV={venv}")
    assert done.returncode != 0 and "is a folder but not a venv" in done.stdout + done.stderr
    assert (venv / "notes.txt").read_text() == "mine"


def active_requirements(path, python):
    """name -> [requirement strings] of a requirements file for `python` ("3.12"), markers evaluated."""
    from packaging.requirements import Requirement

    found = {}
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        for line in f:
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")):
                continue
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"python_version": python, "python_full_version": python}):
                found.setdefault(req.name.lower().replace("_", "-"), []).append(str(req.specifier))
    return found


def test_each_supported_python_gets_one_pin_per_package():
    reference = active_requirements("requirements.txt", "3.11")
    assert reference["paddlenlp"] == ["==2.8.1"] and reference["numpy"] == ["==1.26.4"]
    for python in SUPPORTED:
        runtime = active_requirements("requirements.txt", python)
        nodeps = active_requirements("requirements-nodeps.txt", python)
        both = {**runtime, **nodeps}
        assert all(len(specs) == 1 for specs in both.values()), (python, both)
        assert not set(runtime) & set(nodeps), python
        pinned = {name for name, (spec,) in both.items() if spec.startswith("==")}
        missing = {name for name in reference if name not in both}
        # no paddle2onnx release supports Paddle 3 on 3.13 (the ONNX export says so there)
        assert missing == ({"paddle2onnx"} if python == "3.13" else set()), (python, missing)
        assert {n for n, (s,) in reference.items() if s.startswith("==")} - {"paddle2onnx"} <= pinned, python


def test_pyproject_and_the_makefile_state_the_same_versions():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        assert re.search(r'^requires-python = ">=3.10,<3.14"', f.read(), re.M)
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        assert "3.10 to 3.13" in f.read()


def test_onnx_without_paddle2onnx_is_one_line_and_the_paddle_export_is_written(tmp_path, monkeypatch, capsys):
    import export_model as export_script
    from tiny_model import saved_tiny_model

    monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # as on Python 3.13, where no paddle2onnx installs
    model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
    saved_tiny_model(model_dir, ["good sound and a long battery", "the cable broke"], seed=3)
    code = export_script.main(["--model_dir", model_dir, "--output_dir", export_dir, "--onnx", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert code == 3
    (line,) = [line for line in err.splitlines() if line.startswith("ONNX")]
    assert "paddle2onnx is not installed" in line and "the Paddle export is valid" in line, line
    files = set(os.listdir(export_dir))
    assert {"model.json", "model.pdiparams", "manifest.json"} <= files and "model.onnx" not in files
