# Two entry points for a fresh machine with Python 3.11+ and make: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/default

.PHONY: setup run test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What running needs (the package), and what testing needs besides (the test extras); each redone when
# pyproject.toml changes.
$(VENV)/installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/installed-test

# Trains on the corpus bundled in the package (default config), then prints neighbours and scores.
run: $(VENV)/installed-run
	$(BIN)/python train.py --config configs/default.py --workdir $(WORKDIR)

test: $(VENV)/installed-test
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .
