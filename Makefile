# The two commands of the README: `make run` (the embedded default) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install install-test bench bench-restarts schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench,embedded]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/badges dev

# ruff and mypy (configured in pyproject.toml) before the tests: seconds, not minutes
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m tests.typecheck_tree
	$(BIN)/mypy

test: lint
	$(BIN)/python -m tests.setup_browser
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-restarts: $(STAMP)
	$(BIN)/python -m bench.restarts $(BENCH_ARGS)

schemas: $(STAMP)
	$(BIN)/python -m badges.schemas.generate

clean:
	rm -rf $(VENV) build *.egg-info data artifacts .mypy_cache .ruff_cache
