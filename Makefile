# Two commands for a newcomer:  `make demo` (install + train on generated demo data, then rate reviews with that
# model and with the one that comes with the repository)  and  `make test`.
# Another Python (3.10 to 3.13, docs/python_versions.md): `make demo PYTHON=python3.12 VENV=.venv-3.12`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= output/demo

.PHONY: install install-dev demo test smoke

# Before anything else: a Python that cannot run the project stops make here, in one line (tools/check_python.py).
# An explicit PYTHON must also match the Python of an existing VENV.
CHECK_VENV := $(if $(filter command environment,$(firstword $(origin PYTHON))),--venv $(VENV))
PYTHON_PROBLEM := $(shell out=$$("$(PYTHON)" tools/check_python.py $(CHECK_VENV) 2>&1); rc=$$?; \
	if [ $$rc = 1 ]; then echo "$$out"; elif [ $$rc != 0 ]; then echo "'$(PYTHON)' does not run ($$(echo "$$out" \
	| head -n 1)); pick a Python with PYTHON=, e.g. make demo PYTHON=python3.12 (this project runs on 3.10 to 3.13)"; fi)
ifneq ($(PYTHON_PROBLEM),)
$(error $(PYTHON_PROBLEM))
endif

# The pinned packages (requirements.txt, then requirements-nodeps.txt without dependencies), then the project itself
# as an editable package (pyproject.toml): `fastformer` and `fastformer_data` (data_process/) import from any folder,
# the fastformer-* commands exist, and edits to the sources take effect without reinstalling. The stamp .runtime is written last: a venv without it (an
# install that was interrupted) is made again from scratch, and a new venv whose install fails is removed.
$(VENV)/.runtime: requirements.txt requirements-nodeps.txt pyproject.toml
	@if [ -f $(VENV)/pyvenv.cfg ] && [ ! -f $@ ]; then echo "$(VENV) is incomplete: making it again"; rm -rf $(VENV); fi
	@if [ -n "$$(ls -A $(VENV) 2>/dev/null)" ] && [ ! -f $(VENV)/pyvenv.cfg ]; then \
		echo "$(VENV) is a folder but not a venv: name another one with VENV="; exit 1; fi
	[ -f $(VENV)/pyvenv.cfg ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt && \
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt && \
	$(PY) -m pip install --no-deps -e . || \
	{ [ -f $@ ] || rm -rf $(VENV); echo "installing into $(VENV) failed (see above)"; exit 1; }
	touch $@

# torch's CPU wheel (the torch==X+cpu line of requirements-dev.txt) from PyTorch's CPU index, alone (on PyPI torch is the
# CUDA build), then the rest of requirements-dev.txt (torch's own dependencies included). Where that index cannot
# be reached or has no build for this Python, the rest is installed without torch and the PyTorch tests skip.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	@if $(PY) -m pip install --no-deps --extra-index-url $(TORCH_INDEX) "$$(grep -E '^torch==' requirements-dev.txt)"; \
	then $(PY) -m pip install -r requirements-dev.txt; \
	else echo "NOTE: no $$(grep -E '^torch==' requirements-dev.txt) from $(TORCH_INDEX) for this Python:" \
		"installing requirements-dev.txt without it; the tests against the PyTorch reference will be skipped"; \
		grep -E '^[A-Za-z]' requirements-dev.txt | grep -v -E '^torch==' > $(VENV)/requirements-dev-without-torch.txt; \
		$(PY) -m pip install -r $(VENV)/requirements-dev-without-torch.txt; fi
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Generate synthetic reviews, train (dev macro-F1 per epoch, test metrics at the end), evaluate the test split
# (per-class report + confusion matrix), export for Paddle Inference (parity-checked), then rate the same reviews
# with that model and with the one that comes with the repository (trained on real reviews), each labelled.
DEMO_REVIEWS := "Great product, works perfectly." "Stopped working after two days. Waste of money." \
	"Excellent sound quality and the battery life is outstanding. Highly recommend it to anyone!"
demo: $(VENV)/.runtime
	$(PY) train.py configs/demo.json --output_dir $(OUT)
	$(PY) evaluate.py --model_dir $(OUT)/model
	$(PY) export_model.py --model_dir $(OUT)/model --output_dir $(OUT)/export
	@echo; echo "== the demo model just trained on SYNTHETIC reviews ($(OUT)/export): it only exercises the pipeline"
	$(PY) predict.py --model_dir $(OUT)/export $(DEMO_REVIEWS)
	@echo; echo "== the model that comes with the repository (models/fastformer-amazon-reviews-rating, trained on" \
		"real Amazon reviews): predict.py without --model_dir"
	$(PY) predict.py $(DEMO_REVIEWS)

test: $(VENV)/.dev
	$(PY) -m pytest -q

# The whole pipeline at the tests' tiny size (a minute), in a new folder: what CI runs on each Python it checks.
smoke: $(VENV)/.runtime
	@set -e; out=$$(mktemp -d "$${TMPDIR:-/tmp}/fastformer-smoke.XXXXXX"); echo "smoke run in $$out"; set -x; \
	$(PY) train.py configs/tiny.json --output_dir $$out; \
	$(PY) export_model.py --model_dir $$out/model --output_dir $$out/export; \
	$(PY) predict.py --model_dir $$out/export "Great sound, works perfectly." "Broke after two days."; \
	$(PY) evaluate.py --model_dir $$out/export
