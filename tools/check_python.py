"""Can this Python run the project? The Makefile asks before it makes a venv; no output means yes.

    python3.12 tools/check_python.py [--venv .venv]

Otherwise one line says why and how to pick another Python, and the exit code is 1. The supported versions are
pyproject.toml's `requires-python`. Written to run on any Python, 2.7 included, so that an old one gets the same line.
"""
from __future__ import print_function

import io
import os
import platform
import re
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = "make demo PYTHON=python3.12"


def supported_range(pyproject=os.path.join(ROOT, "pyproject.toml")):
    """((3, 10), (3, 14)) from `requires-python = ">=3.10,<3.14"`: the lowest minor and the first one excluded."""
    with io.open(pyproject, encoding="utf-8") as f:
        spec = re.search(r'^requires-python\s*=\s*"([^"]*)"', f.read(), re.M).group(1)
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    return (3, int(low.group(1))), (3, int(high.group(1)))


def supported_text(low, high):
    """'3.10, 3.11, 3.12 or 3.13'."""
    names = ["3.%d" % minor for minor in range(low[1], high[1])]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def venv_version(venv):
    """The "3.11" of a venv made by `python -m venv` (its pyvenv.cfg), or None."""
    try:
        with io.open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as f:
            found = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", f.read(), re.M)
    except (IOError, OSError):
        return None
    return found.group(1) if found else None


def problem(venv=None):
    """Why this interpreter cannot make the project's venv, in one line, or None."""
    low, high = supported_range()
    version = tuple(sys.version_info[:2])
    here = "%s (Python %d.%d)" % (sys.executable, version[0], version[1])
    pick = "pick one with PYTHON=, e.g. `%s`" % EXAMPLE
    if not low <= version < high:
        return "%s cannot run this project: it needs Python %s; %s" % (here, supported_text(low, high), pick)
    if platform.python_implementation() != "CPython":
        return "%s is %s: PaddlePaddle has builds for CPython only; %s" % (
            here, platform.python_implementation(), pick)
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "%s is a free-threaded build: PaddlePaddle has no build for it; %s" % (here, pick)
    try:
        import ensurepip  # noqa: F401 - `python -m venv` needs it to put pip in the venv
        import venv as _venv  # noqa: F401
    except ImportError:
        return ("%s cannot make a venv (no venv/ensurepip module; on Debian or Ubuntu: apt install python%d.%d-venv); "
                "or %s" % (here, version[0], version[1], pick))
    made_with = venv_version(venv) if venv and os.path.isfile(os.path.join(venv, ".runtime")) else None
    if made_with and made_with != "%d.%d" % version:
        return ("%s is a venv of Python %s, not %d.%d: name another folder for this Python, e.g. `%s VENV=.venv-%d.%d`"
                % (venv, made_with, version[0], version[1], EXAMPLE.replace("3.12", "%d.%d" % version), version[0],
                   version[1]))
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--venv"] and len(argv) == 2:
        venv = argv[1]
    elif not argv:
        venv = None
    else:
        print("usage: python tools/check_python.py [--venv DIR]", file=sys.stderr)
        return 2
    line = problem(venv)
    if line:
        print(line)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
