"""Nothing installs at run time: the ONNX export's child process cannot install packages, `export_model.py --onnx`
leaves the environment's distributions as they were, and `.ci/run` fails when the suite changes the venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from fastformer.inference.export import no_install_env

from tiny_model import saved_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAKE_PIP = """import sys
with open({log!r}, "a", encoding="utf-8") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
sys.exit("pip is replaced by a recorder in this test")
"""


def _distributions() -> list:
    """name==version of every distribution this interpreter sees, read in a fresh process."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _wheel(folder, name="tinypkg", version="1.0") -> str:
    """A minimal pure-Python wheel, for pip to find in a local folder."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}/__init__.py", "")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return path


def test_the_child_environment_gives_pip_nothing_to_install_from(tmp_path):
    """PIP_NO_INDEX alone still lets pip install from find-links (given in the environment or a pip.conf); the
    ONNX child's environment closes both."""
    wheels = str(tmp_path / "wheels")
    _wheel(wheels)
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {wheels}\n")
    base = dict(os.environ, PIP_CONFIG_FILE=str(conf), PIP_FIND_LINKS=wheels, PIP_NO_INDEX="1")

    def download(env, dest):
        return subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "-d", str(dest), "tinypkg"], env=env, capture_output=True, text=True, timeout=300)

    reachable = download(base, tmp_path / "got")
    assert reachable.returncode == 0 and os.listdir(tmp_path / "got"), reachable.stderr
    for env in (no_install_env(base), no_install_env(dict(base, PIP_FIND_LINKS=""))):
        blocked = download(env, tmp_path / "blocked")
        assert blocked.returncode != 0 and "No matching distribution" in blocked.stderr
        assert not (tmp_path / "blocked").exists() or not os.listdir(tmp_path / "blocked")
    env = no_install_env(base)
    assert env["PIP_NO_INDEX"] == "1" and env["PIP_CONFIG_FILE"] == os.devnull and "PIP_FIND_LINKS" not in env
    assert env["POLYGRAPHY_AUTOINSTALL_DEPS"] == "0"


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="no paddle2onnx for Python 3.13 (docs/python_versions.md)")
def test_onnx_export_installs_nothing(tmp_path):
    """The real `export_model.py --onnx`: ONNX written and checked, no pip run, the same distributions after."""
    model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
    saved_tiny_model(model_dir, ["great product , works well .", "broke after a week , waste of money ."], seed=3)
    # `python -m pip` anywhere below this process finds this recorder first (PYTHONPATH), so even an export that
    # tries to install changes nothing; the attempt is what fails the test
    log = tmp_path / "pip_calls.txt"
    (tmp_path / "fake_pip" / "pip").mkdir(parents=True)
    (tmp_path / "fake_pip" / "pip" / "__init__.py").write_text("")
    (tmp_path / "fake_pip" / "pip" / "__main__.py").write_text(FAKE_PIP.format(log=str(log)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path / "fake_pip"),
                                                                    os.environ.get("PYTHONPATH")])))
    before = _distributions()
    done = subprocess.run([sys.executable, os.path.join(ROOT, "export_model.py"), "--model_dir", model_dir,
                           "--output_dir", export_dir, "--onnx", "--precision", "fp32"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(export_dir, "manifest.json")) as f:
        onnx = json.load(f)["onnx"]
    assert onnx["status"] == "ok" and onnx["max_abs_logits_diff"] <= 1e-5
    assert os.path.isfile(os.path.join(export_dir, "model.onnx"))
    assert not log.exists(), f"pip was run: {log.read_text()}"
    after = _distributions()
    assert after == before
    assert not [d for d in after if d.lower().startswith(("onnxruntime", "onnx-graphsurgeon", "onnx_graphsurgeon"))]


# ------------------------------------------------------------------------------------------------------- .ci/run
STUB_MAKE = """#!/usr/bin/env bash
# As the Makefile: `make install-dev` makes the venv (here one whose `python -m pip freeze --all` prints
# .venv/state), `make test` makes it first if needed, then runs the suite, which installs a package when
# INSTALL_DURING_TEST is set and exits TEST_RC
set -e
if [ ! -d .venv ]; then
    mkdir -p .venv/bin
    printf 'numpy==1.26.4\\npaddlepaddle==3.3.1\\n' > .venv/state
    printf '#!/bin/sh\\n[ "$*" = "-m pip freeze --all" ] && cat "$(dirname "$0")/../state"\\n' > .venv/bin/python
    chmod +x .venv/bin/python
fi
if [ "$1" = test ]; then
    if [ -n "${INSTALL_DURING_TEST:-}" ]; then printf 'onnxruntime==1.32.0\\n' >> .venv/state; fi
    exit "${TEST_RC:-0}"
fi
"""


@pytest.mark.parametrize("install, test_rc, expected_rc", [(False, 0, 0), (True, 0, 1), (False, 1, 1), (True, 1, 1)])
def test_ci_fails_when_the_suite_changes_the_venv(tmp_path, install, test_rc, expected_rc):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "run").write_bytes(open(os.path.join(ROOT, ".ci", "run"), "rb").read())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "make").write_text(STUB_MAKE)
    os.chmod(tmp_path / "bin" / "make", 0o755)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", TEST_RC=str(test_rc))
    env.pop("INSTALL_DURING_TEST", None)
    if install:
        env["INSTALL_DURING_TEST"] = "1"
    done = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == expected_rc, done.stderr
    if install:
        assert "the venv changed while the tests ran" in done.stderr and "> onnxruntime==1.32.0" in done.stderr
    else:
        assert "venv changed" not in done.stderr
