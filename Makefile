# Two commands for a newcomer:  `make demo` (install + train on generated demo data)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= output/demo

.PHONY: install install-dev demo test

# The pinned packages, then the project itself as an editable package (pyproject.toml): `fastformer` and
# `data_process` import from any folder of this venv, and edits to the sources take effect without reinstalling.
$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

# torch's CPU wheel (the torch==X+cpu line of requirements-dev.txt) from PyTorch's CPU index, alone (on PyPI torch is the
# CUDA build), then the rest of requirements-dev.txt (torch's own dependencies included).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --no-deps --extra-index-url $(TORCH_INDEX) "$$(grep -E '^torch==' requirements-dev.txt)"
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Generate synthetic reviews, train (dev macro-F1 per epoch, test metrics at the end), evaluate the test split
# (per-class report + confusion matrix), export for Paddle Inference (parity-checked) and predict two reviews.
demo: $(VENV)/.runtime
	$(PY) train.py configs/demo.json --output_dir $(OUT)
	$(PY) evaluate.py --model_dir $(OUT)/model
	$(PY) export_model.py --model_dir $(OUT)/model --output_dir $(OUT)/export
	$(PY) predict.py --model_dir $(OUT)/export \
		"Excellent sound quality and the battery life is outstanding. Highly recommend it to anyone!" \
		"It stopped working after two days. Waste of money, do not buy this."

test: $(VENV)/.dev
	$(PY) -m pytest -q
