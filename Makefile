# Two commands for a newcomer:  `make demo` (install + train on generated demo data)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= output/demo

.PHONY: install install-dev demo test

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Generate synthetic reviews, train, evaluate on the test split, export and predict two reviews.
demo: $(VENV)/.runtime
	$(PY) train.py configs/demo.json --output_dir $(OUT)
	$(PY) export_model.py --model_dir $(OUT)/model --output_dir $(OUT)/export
	$(PY) predict.py --model_dir $(OUT)/export "Great sound, works perfectly and the battery lasts all day." \
		"Stopped working after two days, waste of money."

test: $(VENV)/.dev
	$(PY) -m pytest -q
