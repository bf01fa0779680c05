# One task runner. `make help` lists the tasks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test lint fmt typecheck pytest pytest-unprivileged browser sandbox-tools bench bench-service bench-runs bench-capture bench-large bench-seed bench-cli bench-content schema clean

help:  ## List the tasks
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

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

browser:  ## Debian's chromium for the web page's browser tests (installed only if missing, as root)
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else \
			echo "chromium is missing and we are not root: run 'sudo apt-get install -y chromium'" \
				"(tests/test_web_browser.py is skipped without it)"; \
		fi; \
	fi

sandbox-tools:  ## Debian's bubblewrap, runsc (gVisor), fuse-overlayfs, uidmap and libseccomp for sandboxed runs (installed only if missing, as root)
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v runsc >/dev/null || missing="$$missing runsc"; \
	command -v fuse-overlayfs >/dev/null || missing="$$missing fuse-overlayfs"; \
	command -v newuidmap >/dev/null || missing="$$missing uidmap"; \
	ldconfig -p | grep -q 'libseccomp\.so\.2' || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
		else \
			echo "missing:$$missing; run 'sudo apt-get install -y$$missing'" \
				"(the sandbox tests are skipped without them)"; \
		fi; \
	fi

pytest: $(STAMP) browser sandbox-tools  ## Every test (crash, fault, property and path tests included)
	$(BIN)/pytest
	tests/run_unprivileged.sh

pytest-unprivileged: $(STAMP) sandbox-tools  ## bubblewrap's sandbox suite again as an unprivileged account (as root; CI runs it)
	tests/run_unprivileged.sh

bench: $(STAMP)  ## Apply/validate/recovery benchmarks (prints figures and ratios)
	$(BIN)/python bench/bench_apply.py

bench-runs: $(STAMP) sandbox-tools  ## Sandboxed runs: latency beside bare bwrap/runsc, capture time vs scope size
	$(BIN)/python bench/bench_runs.py

bench-capture: $(STAMP)  ## Capture of a 1 GiB file (peak memory, time beside sha256sum and cp) and a 100 GiB sparse file
	$(BIN)/python bench/bench_capture.py

bench-service: $(STAMP)  ## Load the HTTP service: 50 concurrent agents, then check nothing was lost
	$(BIN)/python bench/bench_service.py

bench-large: $(STAMP)  ## A 50,000-operation plan: validation beside a plain storage walk, its review page beside a 100-op plan's
	$(BIN)/python bench/bench_large_plans.py

bench-seed: $(STAMP)  ## The seed door beside a naive reference of its API: a 10,000-move plan through both, a rename loop, bytes read by validate (issue 10)
	$(BIN)/python bench/bench_seed_door.py

bench-cli: $(STAMP)  ## Start-up of `airlock --help`, `plan --help`, `plan list --help` and `plan list` beside `python -c pass` (issue 10: under 0.3 s)
	$(BIN)/python bench/bench_cli_startup.py

bench-content: $(STAMP)  ## File bodies: the server's memory for a 1 GiB write over HTTP, and `plan list` of 1,000 plans whatever their sizes (issue 10)
	$(BIN)/python bench/bench_content.py

schema: $(STAMP)  ## Regenerate schema/plan.schema.json
	$(BIN)/airlock schema > schema/plan.schema.json

clean:  ## Remove the virtualenv, caches and the demo workspace
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-workspace
