"""Install and smoke-run the project on each Python: the figures of docs/python_versions.md.

    python -m benchmarks.python_versions --output benchmarks/results/python_versions.json

For each Python (default: pyenv's 3.10 to 3.13 where present) into a new venv: `make install` (timed, with an empty
pip cache unless --warm_cache), `make smoke` (tiny train, export, predict, evaluate; timed), `export_model.py
--onnx` on the smoke model, `pip check`, and `pip freeze` before and after these runs. Pythons the project refuses
(default: pyenv's 3.9) go through `make install` too, to record its one-line answer and how long it took.
Nothing here imports paddle.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from benchmarks.common import ROOT, machine_info

PYENV = os.path.expanduser("~/.pyenv/versions")
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")


def pyenv_pythons(minors: Sequence[str]) -> List[str]:
    """The newest pyenv interpreter of each minor version, where installed."""
    found = []
    for minor in minors:
        paths = sorted(glob.glob(os.path.join(PYENV, f"{minor}.*", "bin", "python")),
                       key=lambda p: [int(x) for x in re.findall(r"\d+", p.split(os.sep)[-3])])
        found += paths[-1:]
    return found


def cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return [flag for flag in FLAGS if flag in flags]


def run(cmd: Sequence[str], env: Optional[dict] = None, timeout: float = 1800) -> dict:
    """Run a command from the repository root: exit code, seconds, and the output's last lines."""
    start = time.perf_counter()
    done = subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 1),
            "stdout": done.stdout, "stderr": done.stderr}


def tail(text: str, n: int = 3) -> List[str]:
    return [line for line in text.strip().splitlines() if line.strip()][-n:]


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True).stdout.strip()


def check_supported(python: str, venv_root: str, env: dict) -> dict:
    version = python_version(python)
    row = {"python": python, "version": version}
    install = run(["make", "install", f"PYTHON={python}", f"VENV={os.path.join(venv_root, 'venv-' + version)}"],
                  env=env)
    row["install"] = {"returncode": install["returncode"], "seconds": install["seconds"],
                      "last_lines": tail(install["stdout"] + install["stderr"])}
    if install["returncode"]:
        return row
    venv = os.path.join(venv_root, "venv-" + version)
    py = os.path.join(venv, "bin", "python")
    freeze = run([py, "-m", "pip", "freeze", "--exclude-editable"], env=env)["stdout"].split()
    smoke = run(["make", "smoke", f"PYTHON={python}", f"VENV={venv}"], env=env)
    out = re.search(r"smoke run in (\S+)", smoke["stdout"])
    row["smoke"] = {"returncode": smoke["returncode"], "seconds": smoke["seconds"],
                    "last_lines": tail(smoke["stdout"] + smoke["stderr"])}
    if out and smoke["returncode"] == 0:
        out = out.group(1)
        with open(os.path.join(out, "test_results.json")) as f:
            results = json.load(f)
        with open(os.path.join(out, "export", "manifest.json")) as f:
            manifest = json.load(f)
        with open(os.path.join(out, "eval_test", "eval_results.json")) as f:
            evaluation = json.load(f)
        row["smoke"].update({
            "train_metrics": {k: results[k] for k in ("dev_macro_f1", "dev_accuracy", "test_macro_f1",
                                                      "test_accuracy")},
            "export_parity_max_abs_logits_diff": manifest["parity"]["max_abs_logits_diff"],
            "evaluate_export": {k: evaluation[k] for k in ("backend", "precision", "accuracy", "macro_f1")},
        })
        # PIP_NO_INDEX: paddle2onnx 2.x tries to pip-install onnxruntime when it converts
        onnx = run([py, "export_model.py", "--model_dir", os.path.join(out, "model"), "--output_dir",
                    os.path.join(out, "export_onnx"), "--onnx", "--precision", "fp32"],
                   env=dict(env, PIP_NO_INDEX="1"))
        row["onnx"] = {"returncode": onnx["returncode"], "seconds": onnx["seconds"],
                       "lines": [line for line in (onnx["stdout"] + onnx["stderr"]).splitlines()
                                 if line.startswith("ONNX")]}
    check = run([py, "-m", "pip", "check"], env=env)
    row["pip_check"] = tail(check["stdout"] + check["stderr"], 10)
    row["pip_freeze"] = freeze
    after = run([py, "-m", "pip", "freeze", "--exclude-editable"], env=env)["stdout"].split()
    row["pip_freeze_changed_by_the_runs"] = sorted(set(freeze) ^ set(after))
    return row


def check_refused(python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        done = run(["make", "install", f"PYTHON={python}", f"VENV={venv}"])
        return {"python": python, "version": python_version(python), "returncode": done["returncode"],
                "seconds": done["seconds"], "output": (done["stdout"] + done["stderr"]).strip().splitlines(),
                "venv_created": os.path.exists(venv)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pythons", nargs="*", help="interpreters to install on (default: pyenv's 3.10 to 3.13)")
    parser.add_argument("--refused", nargs="*", help="interpreters make should refuse (default: pyenv's 3.9)")
    parser.add_argument("--venv_root", help="where the venvs are made and kept (default: a temporary folder, removed)")
    parser.add_argument("--warm_cache", action="store_true", help="use pip's own cache instead of an empty one")
    parser.add_argument("--output", help="results JSON")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    pythons = args.pythons if args.pythons is not None else pyenv_pythons(["3.10", "3.11", "3.12", "3.13"])
    refused = args.refused if args.refused is not None else pyenv_pythons(["3.9"])
    venv_root = args.venv_root or tempfile.mkdtemp(prefix="fastformer-pythons.")
    env = dict(os.environ)
    if not args.warm_cache:
        env["PIP_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastformer-pip-cache.")
    try:
        return measure(args, pythons, refused, venv_root, env)
    finally:  # a few GB each
        if not args.warm_cache:
            shutil.rmtree(env["PIP_CACHE_DIR"], ignore_errors=True)
        if not args.venv_root:
            shutil.rmtree(venv_root, ignore_errors=True)


def measure(args: argparse.Namespace, pythons: Sequence[str], refused: Sequence[str], venv_root: str,
            env: dict) -> int:
    payload = {"benchmark": "python_versions", "command": " ".join(["python", "benchmarks/python_versions.py",
                                                                     *(sys.argv[1:] if argv is None else argv)]),
               "machine": dict(machine_info(), cpu_flags=cpu_flags()), "pip_cache": "warm" if args.warm_cache
               else "empty", "supported": [], "refused": []}
    for python in refused:
        row = check_refused(python)
        payload["refused"].append(row)
        print(f"{row['version']}: exit {row['returncode']} in {row['seconds']} s: {' | '.join(row['output'])}")
    for python in pythons:
        row = check_supported(python, venv_root, env)
        payload["supported"].append(row)
        smoke, onnx = row.get("smoke", {}), row.get("onnx", {})
        print(f"{row['version']}: install exit {row['install']['returncode']} in {row['install']['seconds']} s; "
              f"smoke exit {smoke.get('returncode')} in {smoke.get('seconds')} s, test macro-F1 "
              f"{smoke.get('train_metrics', {}).get('test_macro_f1')}; --onnx exit {onnx.get('returncode')}")
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, args.output)
        print(f"wrote {args.output}")
    failed = [r for r in payload["supported"] if r["install"]["returncode"] or r.get("smoke", {}).get("returncode")]
    return 1 if failed or any(r["returncode"] == 0 for r in payload["refused"]) else 0


if __name__ == "__main__":
    sys.exit(main())
