"""benchmarks/common.py: the package versions every result file records, and the warning on a pin mismatch."""

import argparse
import os
import sys


from benchmarks import common
from reproduction import machine  # where benchmarks.common's machine record comes from

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pins_are_read_from_the_requirement_files():
    pins = common.pinned_versions()
    numpy = "2.4.6" if sys.version_info >= (3, 13) else "1.26.4"  # environment markers: numpy 1.26 stops at 3.12
    assert pins["paddlepaddle"] == "3.3.1" and pins["numpy"] == numpy and pins["pytest"]
    assert all("#" not in v and " " not in v for v in pins.values())


def test_result_header_records_versions_and_flags_a_mismatch(monkeypatch, capsys):
    args = argparse.Namespace(steps=2)
    header = common.result_header("x", os.path.join(ROOT, "benchmarks", "bench_x.py"), args, ["--steps", "2"])
    assert header["command"] == "python -m benchmarks.bench_x --steps 2" and header["settings"] == {"steps": 2}
    installed = header["packages"]["installed"]
    assert set(installed) == set(common.pinned_versions()) and installed["pytest"]
    printed = capsys.readouterr().err
    assert ("WARNING" in printed) == bool(header["packages"]["mismatches"])

    pins = dict(common.pinned_versions(), numpy="0.0.1", **{"not-a-package": "1.0"})
    monkeypatch.setattr(machine, "pinned_versions", lambda: pins)
    header = common.result_header("x", os.path.join(ROOT, "benchmarks", "bench_x.py"), args, [])
    mismatches = header["packages"]["mismatches"]
    assert mismatches["numpy"]["pinned"] == "0.0.1" and mismatches["numpy"]["installed"]
    assert mismatches["not-a-package"] == {"pinned": "1.0", "installed": None}
    printed = capsys.readouterr().err
    assert "WARNING" in printed and "numpy" in printed and "(pinned 0.0.1)" in printed
    assert "not-a-package not installed" in printed


def test_a_local_build_matches_a_pin_without_local_part(monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(machine, "pinned_versions", lambda: {"torch": "2.13.0", "numpy": "1.26.4+cpu"})
    monkeypatch.setattr(metadata, "version", {"torch": "2.13.0+cpu", "numpy": "1.26.4"}.__getitem__)
    assert common.package_versions()["mismatches"] == {"numpy": {"pinned": "1.26.4+cpu", "installed": "1.26.4"}}
