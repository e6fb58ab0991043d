# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(if $(FLAWSCOPE_DATA),$(FLAWSCOPE_DATA),../shared/datasets)
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first: pinned, and taken from this machine's local wheels when present.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/flawscope demo --out demo-out

# The whole suite (a few minutes on 2 cores); tests marked slow (> ~20 s each, e.g. 2-process DDP) included.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Quick iteration: everything but the slow tests.
test-fast: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --data $(DATA) --out bench-out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo-out bench-out
