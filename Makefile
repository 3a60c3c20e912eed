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

.PHONY: demo test venv notebook browser clean bench bench-quick

venv: $(RUNTIME)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
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

test: $(DEV) browser
	$(VENV)/bin/ruff check axon_audit tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest

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
	rm -rf $(VENV) .pytest_cache build *.egg-info
