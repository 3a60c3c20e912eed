# One command each: `make demo` (the main job) and `make test` (the whole suite).
# Each sets up its own virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test venv clean bench bench-quick

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check axon_audit tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest

# Options: make demo DEMO_ARGS="--events 200000 --out /tmp/audit_demo --seed 1"
DEMO_ARGS ?=

demo: $(STAMP)
	@$(VENV)/bin/axon-audit demo $(DEMO_ARGS)

# Benchmarks against the baselines (see benchmarks/ and the README's performance section).
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick --out benchmarks/results/quick

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
