# Two entry points for a fresh clone:  `make demo`  and  `make test`.
# Both create .venv (once) and install sktransfer with what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned here (not in pyproject, which has loose ranges)
# to the release this project is tested with.
TORCH := "torch==2.14.1" "torchvision==0.29.1"

.PHONY: setup demo test test-oldest lint format docs docs-clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,lint]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/sktransfer demo

test: setup
	$(BIN)/python -m pytest

# The suite on the oldest supported versions: a separate venv with every
# dependency and extra at the floor pyproject declares (.ci/oldest-constraints.txt,
# used as PIP_CONSTRAINT so that the build environment gets the setuptools floor
# too; wheels only, as users get them). Rebuilt from scratch when either changes.
OLDEST_VENV ?= .venv-oldest
OLDEST := .ci/oldest-constraints.txt

$(OLDEST_VENV)/.installed: pyproject.toml $(OLDEST)
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	PIP_CONSTRAINT=$(abspath $(OLDEST)) $(OLDEST_VENV)/bin/python -m pip install \
		--quiet --only-binary=:all: -e ".[test-core]"
	$(OLDEST_VENV)/bin/python -m pip list --format=freeze > $(OLDEST_VENV)/installed.txt
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest

# ruff (lint and format check), as .ci/run and pre-commit run it
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The documentation site (docs/_build/html): API reference, user guide, and the
# gallery of examples/ executed offline. SPHINXOPTS="-W --keep-going" in CI.
SPHINXOPTS ?=
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	$(BIN)/python -m sphinx -b html $(SPHINXOPTS) docs docs/_build/html

docs-clean:
	rm -rf docs/_build docs/generated docs/auto_examples docs/sg_execution_times.rst
