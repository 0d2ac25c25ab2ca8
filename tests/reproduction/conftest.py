"""These tests compare with the PyTorch reference: without PyTorch installed they are not collected (a header line
says so)."""

import importlib.util

HAS_TORCH = importlib.util.find_spec("torch") is not None
collect_ignore_glob = [] if HAS_TORCH else ["test_*.py"]


def pytest_report_header(config):
    return None if HAS_TORCH else "PyTorch is not installed: tests/reproduction (alignment with PyTorch) skipped"
