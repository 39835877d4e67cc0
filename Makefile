# nmfdnn: `make train` installs into .venv, fetches MNIST and trains the default network;
# `make test` passes the tests. `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NMFDNN := $(VENV)/bin/nmfdnn
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train fetch test test-fast clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install nmfdnn (editable) with the test tools

fetch: install ## download, verify and cache MNIST
	$(NMFDNN) fetch mnist

train: install ## train the default configuration on MNIST (extra overrides: make train ARGS='hidden=[500]')
	$(NMFDNN) train $(ARGS)

test: install ## run the whole test suite (includes a real-MNIST end-to-end run and an install test)
	$(PY) -m pytest -q

test-fast: install ## unit and CLI tests only (skips tests marked slow)
	$(PY) -m pytest -q -m "not slow"

clean: ## remove the virtual environment and caches (not outputs/ nor the data cache)
	rm -rf $(VENV) .pytest_cache build *.egg-info
