# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo-output
# Test processes: most tests wait on servers and subprocesses, so more than the cores.
TEST_WORKERS ?= 6

.PHONY: demo test lint typecheck unit bench clean system-deps

# Node packages the browser tests use: axe-core, for the accessibility audit of the app.
NODE_STAMP := $(VENV)/node/.installed
$(NODE_STAMP): | $(BIN)/python
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node axe-core@4 >/dev/null
	touch $(NODE_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

# Debian packages the tests use: the age tool, for interoperability,
# Chromium, for the web pages (driven headless, with JavaScript off),
# shellcheck, for the deployment scripts, and nginx, to run deploy/nginx.conf.
system-deps:
	@missing=""; \
	command -v age >/dev/null 2>&1 || missing="$$missing age"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v shellcheck >/dev/null 2>&1 || missing="$$missing shellcheck"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make: please install the Debian packages:$$missing (apt-get install$$missing)"; exit 1; fi; \
	fi

demo: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 vault client server migrations
	@DEMO_DIR=$(DEMO_DIR) ./demo/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy vault/ client/ server/

# The tests start thousands of Python processes: compile the sources once, so
# that none of them compiles them again (PYTHONDONTWRITEBYTECODE stops imports
# from writing bytecode, not this).
unit: $(STAMP) system-deps $(NODE_STAMP)
	$(BIN)/python -m compileall -q -j 0 vault client server tests migrations
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --durations=30

test: lint typecheck unit

bench: $(STAMP) system-deps
	$(BIN)/python bench/age_speed.py
	$(BIN)/python bench/merkle_speed.py
	$(BIN)/python bench/keystore_unlock.py
	$(BIN)/python bench/upload_speed.py
	$(BIN)/python bench/add_speed.py
	$(BIN)/python bench/folder_add.py
	$(BIN)/python bench/ls_items.py
	$(BIN)/python bench/duress_timing.py
	$(BIN)/python bench/checkin_guessing.py
	$(BIN)/python bench/sweep_scale.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
