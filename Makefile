# One command each: `make demo` (the main job) and `make test` (the whole suite).
# Each sets up its own virtual environment in .venv from pyproject.toml:
# `make demo` installs only what the package needs to run; `make test` adds the
# dev extras (linters, pytest, the S3 server, Spark, Playwright) and Debian's
# chromium for the dashboard's browser test; `make notebook` adds JupyterLab.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
NOTEBOOK := $(VENV)/.installed-notebook
# apt-get needs root: sudo when we are not root (CI runs as root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test venv notebook browser native clean bench bench-quick

venv: $(RUNTIME)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# setup.py builds the compiled parts (axon_audit/_native/leafhash.c, ingest.c) into the tree.
$(RUNTIME): pyproject.toml setup.py axon_audit/_native/leafhash.c axon_audit/_native/ingest.c | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV): $(RUNTIME) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NOTEBOOK): $(RUNTIME) pyproject.toml
	$(PY) -m pip install --quiet -e '.[notebook]'
	touch $@

# The dashboard's browser test drives Debian's chromium through Playwright (whose own
# browser download cannot work without the open internet); install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard's browser test"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# The Merkle log's compiled path needs a C compiler and OpenSSL's headers; the package
# installs without them (hashing through polars, ~3x slower), but the tests and the
# README's figures are of the compiled path, so `make test` installs them and rebuilds.
native: $(RUNTIME)
	@$(PY) -c "import axon_audit._native.leafhash, axon_audit._native.ingest" 2>/dev/null || { \
	  { command -v cc >/dev/null 2>&1 && [ -f /usr/include/openssl/sha.h ]; } || { \
	    echo "installing a C compiler and OpenSSL's headers for axon_audit._native"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev libssl-dev; }; \
	  $(PY) -m pip install --quiet -e . && $(PY) -c "import axon_audit._native.leafhash, axon_audit._native.ingest"; }

test: $(DEV) native browser
	$(VENV)/bin/ruff check axon_audit tests benchmarks
	$(VENV)/bin/mypy
	AXON_AUDIT_REQUIRE_NATIVE=1 $(PY) -m pytest

# Options: make demo DEMO_ARGS="--events 200000 --out /tmp/audit_demo --seed 1"
DEMO_ARGS ?=

demo: $(RUNTIME)
	@$(VENV)/bin/axon-audit demo $(DEMO_ARGS)

# JupyterLab on the analysis notebook (notebooks/compliance_analysis.ipynb); as root
# (a container) JupyterLab refuses to start without --allow-root.
NOTEBOOK_ARGS ?= $(if $(SUDO),,--allow-root)
notebook: $(NOTEBOOK)
	$(VENV)/bin/jupyter lab $(NOTEBOOK_ARGS) notebooks/compliance_analysis.ipynb

# Benchmarks against the baselines (see benchmarks/ and the README's performance section).
bench: $(DEV)
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(DEV)
	$(PY) -m benchmarks --quick --out benchmarks/results/quick

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info axon_audit/_native/*.so
