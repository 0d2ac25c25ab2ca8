"""The CPU the suite sees: `pytest --fake_cpu avx2` (or `avx512`: AVX-512 without avx512_bf16) runs every test with
`fastformer.inference.precision`'s CPU report replaced by such a CPU's, so a machine with avx512_bf16 runs the suite as an
AVX2 machine does (`ONEDNN_MAX_CPU_ISA=AVX2` also limits oneDNN's own kernels). `bf16_cpu`: a test's CPU has bf16,
with a stand-in bf16 runner (tests/fake_cpu.py), on any machine.
"""

from __future__ import annotations

import pytest

FAKE_CPUS = ("avx2", "avx512")


def pytest_addoption(parser):
    parser.addoption("--fake_cpu", choices=FAKE_CPUS, default=None,
                     help="run as on a CPU without avx512_bf16: fastformer.inference.precision sees an AVX2 or AVX-512 CPU")


def pytest_report_header(config):
    kind = config.getoption("--fake_cpu")
    return f"fastformer.inference.precision CPU report: {'faked as ' + kind if kind else 'this CPU'}"


@pytest.fixture(scope="session", autouse=True)
def _fake_cpu_for_the_run(request):
    kind = request.config.getoption("--fake_cpu")
    if kind is None:
        yield
        return
    import fake_cpu
    from fastformer.inference import precision

    cpu = f"{precision.cpu_features()['cpu']} (reported as {kind} by --fake_cpu)"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "cpu_features", lambda: fake_cpu.report(kind, cpu))
        yield


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that has bf16, and a bf16 runner whose logits the test controls (`bf16_cpu.perturb = ...`). The fused
    operator is left out (as where it cannot be built): the stand-in runner is no measure of its speed."""
    import fake_cpu
    from fastformer.inference import fused
    from fastformer.inference import precision
    from fastformer.inference import predictor as predictor_module

    monkeypatch.setattr(fused, "_state", {"error": "not built (bf16 stand-in tests)"})
    monkeypatch.setattr(precision, "cpu_features", lambda: fake_cpu.report("bf16"))
    monkeypatch.setattr(predictor_module, "InferenceRunner", fake_cpu.PerturbingRunner)
    monkeypatch.setattr(fake_cpu.PerturbingRunner, "built_precisions", [])
    monkeypatch.setattr(fake_cpu.PerturbingRunner, "perturb", staticmethod(lambda logits: logits))
    return fake_cpu.PerturbingRunner
