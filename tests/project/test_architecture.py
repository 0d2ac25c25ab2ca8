"""The layering of the repository (tools/architecture.py): no circles, no imports up or sideways, short files in the
package, no sys.path edits; and the checker finds each of these when they are planted."""

import os

from tools.architecture import draw, problems

ROOT = os.path.dirname(os.path.abspath(__file__))
while not os.path.isfile(os.path.join(ROOT, "train.py")):  # the repository root, wherever tests/ groups this file
    ROOT = os.path.dirname(ROOT)


def test_the_repository_keeps_its_layering():
    assert problems(ROOT) == []


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_planted_faults_are_each_reported(tmp_path):
    root = str(tmp_path)
    _write(root, "fastformer/__init__.py", "")
    _write(root, "fastformer/cli.py", "from fastformer import modeling\n")  # utilities -> model: up
    _write(root, "fastformer/modeling.py", "from .cli import x\n")
    _write(root, "fastformer/a.py", "from . import b\n")  # a <-> b: a circle
    _write(root, "fastformer/b.py", "import fastformer.a\n")
    _write(root, "fastformer/long.py", "x = 1\n" * 451)
    _write(root, "fastformer/reference.py", "import torch\n")
    _write(root, "fastformer/convert.py", "def load():\n    import torch\n")  # lazy: fine
    _write(root, "fastformer/training/__init__.py", "from fastformer.inference import p\n")  # sideways
    _write(root, "fastformer/inference/__init__.py", "")
    _write(root, "fastformer/inference/p.py", "from fastformer.training import q\n")  # sideways
    _write(root, "fastformer/training/q.py", "")
    _write(root, "data_process/__init__.py", "")
    _write(root, "data_process/reader.py", "")
    _write(root, "data_process/prepare.py", "from .reader import x\n")  # relative, inside the package: fine
    _write(root, "fastformer/metrics.py", "import fastformer_data\n")  # metrics -> data (installed name): up
    _write(root, "train.py", "import fastformer.cli\nfrom fastformer_data.reader import x\n")  # fine
    _write(root, "predict.py", "from data_process.reader import x\n")  # the folder's name, not the installed one
    _write(root, "tools/hack.py", "import sys\nsys.path.insert(0, '.')\n")
    _write(root, "benchmarks/b.py", "from tools import hack\n")  # between check-only rooms: fine
    _write(root, "stray.py", "")
    found = problems(root)
    expected = [
        "fastformer/cli.py: imports fastformer.modeling (utilities -> model, up)",
        "fastformer/long.py: 451 lines (the package's files stay under 450)",
        "fastformer/reference.py: imports torch (check-only code stays out of the installed package)",
        "fastformer/training/__init__.py: imports fastformer.inference.p (training -> inference, sideways)",
        "fastformer/inference/p.py: imports fastformer.training.q (inference -> training, sideways)",
        "fastformer/metrics.py: imports data_process (metrics -> data, up)",
        "predict.py: imports data_process by its folder name (the installed name is fastformer_data)",
        "tools/hack.py: edits sys.path (import the installed package instead)",
        "stray.py: in no room (add a rule to ROOMS in tools/architecture.py)",
        "circle: fastformer.a -> fastformer.b",
    ]
    for line in expected:
        assert line in found
    assert not [p for p in found if p.startswith(("fastformer/convert.py", "train.py", "benchmarks/", "data_process/"))]
    assert len([p for p in found if p.startswith("circle:")]) == 2  # a <-> b, and training <-> inference


def test_the_picture_is_drawn(tmp_path):
    out = tmp_path / "architecture.png"
    draw(ROOT, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
