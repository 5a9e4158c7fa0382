# Two entry points for a fresh machine with Python 3.11+ and make: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/default

.PHONY: setup run test lint

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/activate

setup: $(BIN)/activate

# Trains on the corpus bundled in the package (default config), then prints neighbours and scores.
run: setup
	$(BIN)/python train.py --config configs/default.py --workdir $(WORKDIR)

test: setup
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .
