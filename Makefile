# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# `make test`: lint + the fast tier (tiny synthetic models only); `make test-all`: lint + every test,
# the real packaged models included (what CI runs). pytest exits 5 when no test is collected: a failure.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-all lint install clean

$(BIN)/prompt-audit: pyproject.toml requirements-dev.txt requirements-models-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-models-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(BIN)/prompt-audit

demo: install
	$(BIN)/prompt-audit demo --out reports/demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
