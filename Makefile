# Two commands on a fresh clone (Python >= 3.11 and make):
#   make verify   set up .venv with the core, then run the main job: python -m earlylin.verify --layers both --d 50
#   make test     set up .venv with the test extras, then ruff check . and python -m pytest (what CI runs: .ci/run)
#   make docs     the documentation site into docs/_build/html (Sphinx, warnings as errors; CI builds it too)
# Set-up creates .venv if it is missing and installs into it with pip, pinned by the lock (-c requirements/lock.txt):
#   make setup / make verify   pip install -e .                  (the core: numpy, scipy, torch, matplotlib, pooch, tqdm)
#   make test / make docs      pip install -e ".[test,nt,ray,docs]"   (the core, pytest/hypothesis/ruff, the nt oracle,
#                              ray, sphinx)
# Each install runs only when pyproject.toml or the lock changed since it last ran (the stamps .venv/.installed-core
# and .venv/.installed-test); otherwise it does nothing. The test install also contains the core, so it renews both
# stamps: a `make verify` after `make test` installs nothing.
# make lock: rewrites requirements/lock.txt from a fresh temporary venv (pip install -e ".[test,nt,ray]" without
# the lock, then pip freeze --all --exclude-editable --exclude pip).
# Variables: PYTHON (the interpreter that makes .venv), EXTRAS (those of `make test`), PYTEST_ARGS
# (e.g. PYTEST_ARGS=tests/cli/test_verify.py).

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,nt,ray,docs
PYTEST_ARGS ?=
LOCK := requirements/lock.txt
BIN := $(VENV)/bin
INSTALL := $(BIN)/python -m pip install -c $(LOCK)
CORE_STAMP := $(VENV)/.installed-core
TEST_STAMP := $(VENV)/.installed-test
CHECK_PYTHON = @$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else \"earlylin needs Python >= 3.11, $(PYTHON) is \" + sys.version.split()[0] + \": run make PYTHON=python3.11 ...\")"

.PHONY: setup setup-test verify test docs lock

setup: $(CORE_STAMP)

setup-test: $(TEST_STAMP)

$(BIN)/python:
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)

$(CORE_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e .
	touch $(CORE_STAMP)

$(TEST_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e ".[$(EXTRAS)]"
	touch $(TEST_STAMP) $(CORE_STAMP)

verify: setup
	$(BIN)/python -m earlylin.verify --layers both --d 50

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site into docs/_build/html, warnings as errors (-W), every page rebuilt (-E).
docs: setup-test
	$(BIN)/python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html

# A fresh venv in a temporary directory (removed afterwards), the test extras resolved without the lock,
# then the header and the frozen versions replace requirements/lock.txt: --all keeps setuptools and wheel (torch and
# astunparse need them at run time); left out are pip (the venv's own) and the editable earlylin.
lock:
	$(CHECK_PYTHON)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install -e ".[$(EXTRAS)]"; \
	{ printf '%s\n' \
	  "# The exact versions the test suite is measured with: a pip constraints file. Every install of the" \
	  "# Makefile passes it (pip install -c requirements/lock.txt ...); pyproject.toml keeps the version ranges." \
	  "# A constraint only pins a package that is being installed, so this one file serves both the core" \
	  "# install (make verify) and the test extras (make test)." \
	  "# Refresh: make lock (a fresh temporary venv, pip install -e \".[$(EXTRAS)]\" without this file, then" \
	  "# pip freeze --all --exclude-editable --exclude pip). Made with $$("$$tmp/venv/bin/python" -m pip --version | cut -d' ' -f1-2)," \
	  "# Python $$("$$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())') on $$(uname -sm)." \
	  "# torch==...+cpu is the CPU build; pip finds it where its find-links or index holds it (on other machines:" \
	  "# --extra-index-url https://download.pytorch.org/whl/cpu)."; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable --exclude pip; } > "$$tmp/lock.txt"; \
	mkdir -p $(dir $(LOCK)); mv "$$tmp/lock.txt" $(LOCK); echo "wrote $(LOCK)"
