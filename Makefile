# One task runner. `make help` lists the tasks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test lint fmt typecheck pytest bench schema clean

help:  ## List the tasks
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## Build a sample law-firm workspace and walk through a plan (./demo-workspace)
	$(BIN)/airlock demo --workspace demo-workspace --reset

test: lint typecheck pytest  ## The whole test suite: lint, types, and every test

lint: $(STAMP)  ## ruff check + ruff format --check
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: $(STAMP)  ## Format and auto-fix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)  ## mypy --strict
	$(BIN)/mypy

pytest: $(STAMP)  ## Every test (crash, fault, property and path tests included)
	$(BIN)/pytest

bench: $(STAMP)  ## Apply/validate/recovery benchmarks (prints figures and ratios)
	$(BIN)/python bench/bench_apply.py

schema: $(STAMP)  ## Regenerate schema/plan.schema.json
	$(BIN)/airlock schema > schema/plan.schema.json

clean:  ## Remove the virtualenv, caches and the demo workspace
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-workspace
