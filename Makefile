# The two commands a new user needs (README.md): `make demo` and `make test`.
# Each installs what it needs on a fresh machine: Debian packages (only where missing),
# a virtual environment with the Python packages, and the MicroPython WebAssembly port.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := .make

# Debian packages the tests need, as `command:package` (installed only when the command is missing).
# chromium: the dashboard's browser test (tests/integration/test_dashboard_browser.py).
# pcscd, vsmartcard-vpcd: the PC/SC tier (tests/integration/test_chip_pcsc.py); swig and libpcsclite-dev
# (pcsc-spy is its command) build pyscard, which has no wheel for Linux.
APT_NEEDS := node:nodejs npm:npm mosquitto:mosquitto mosquitto_pub:mosquitto-clients pg_ctlcluster:postgresql \
	chromium:chromium pcscd:pcscd vpcd-config:vsmartcard-vpcd swig:swig pcsc-spy:libpcsclite-dev \
	rabbitmq-server:rabbitmq-server

.PHONY: demo test lint typecheck pytest setup clean

demo: setup
	$(BIN)/cccd-edge demo

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check cccd firmware collector sim tools agent tests
	$(BIN)/ruff format --check cccd firmware collector sim tools agent tests

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

setup: $(STAMP)/apt $(STAMP)/venv $(STAMP)/npm

$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	bash scripts/apt-ensure $(APT_NEEDS)
	@touch $@

$(STAMP)/venv: pyproject.toml | $(STAMP)/apt
	@mkdir -p $(STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(STAMP)/npm: package.json package-lock.json $(STAMP)/apt
	@mkdir -p $(STAMP)
	npm ci --silent --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) node_modules $(STAMP) .mypy_cache .ruff_cache .pytest_cache
