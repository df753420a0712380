# Two commands on a fresh clone (Python >= 3.11 and make):
#   make verify   set up .venv, then run the main job: python -m earlylin.verify --layers both --d 50
#   make test     set up .venv, then ruff check . and python -m pytest (what CI runs: .ci/run)
# Set-up creates .venv if it is missing and installs the project into it with pip, but only when
# pyproject.toml changed since the last install (the stamp .venv/.installed); otherwise it does nothing.
# Variables: PYTHON (the interpreter that makes .venv), EXTRAS, PYTEST_ARGS (e.g. PYTEST_ARGS=tests/test_cli.py).

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,nt,ray
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup verify test

setup: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else \"earlylin needs Python >= 3.11, $(PYTHON) is \" + sys.version.split()[0] + \": run make PYTHON=python3.11 ...\")"
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

verify: setup
	$(BIN)/python -m earlylin.verify --layers both --d 50

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)
