"""The record of where a measurement ran: CPU, load, Python, package versions (every results file holds it)."""

from __future__ import annotations

import os
import platform
import time
from typing import Dict, List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_average() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the figures were taken on; `load_average` > 0.5 means another process shared the cores."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1_5_15min": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def pinned_versions(files: Sequence[str] = ("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt")
                    ) -> Dict[str, str]:
    """`name==version` pins of the requirement files that apply to this Python (environment markers evaluated; names
    lower-cased, `_` as `-`); options and comments skipped."""
    from packaging.requirements import Requirement

    pins = {}
    for name in files:
        path = os.path.join(ROOT, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split(" #", 1)[0].strip()
                if "==" not in line or line.startswith(("#", "-")):
                    continue
                req = Requirement(line)
                if req.marker is None or req.marker.evaluate():
                    pins[req.name.lower().replace("_", "-")] = str(req.specifier).replace("==", "", 1)
    return pins


def package_versions() -> dict:
    """Installed versions of every pinned package, and those that differ from the pin ("mismatches"). A pin without
    a local part matches any local build of that version (torch==2.13.0 matches 2.13.0+cpu)."""
    from importlib import metadata

    installed, mismatches = {}, {}
    for package, pinned in pinned_versions().items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = None
        installed[package] = version
        if version != pinned and not ("+" not in pinned and version and version.split("+")[0] == pinned):
            mismatches[package] = {"pinned": pinned, "installed": version}
    return {"installed": installed, "mismatches": mismatches}


def versions(*modules: str) -> Dict[str, str]:
    out = {}
    for name in modules:
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            out[name] = "not installed"
    return out
