# Two commands do all the set-up on a fresh machine (Python 3.10-3.13 with venv):
#   make series   - install into .venv and run the five notebooks (tiny profile, embedded data)
#   make test     - install into .venv and run the test suite (unit tests, papermill, nbval)
# PROFILE=full make series runs another profile; ARGS passes more runner options.
# TEST_WORKERS=1 make test runs the tests in one process (default 2: tests/conftest.py keeps
# the tests that must share a worker together).
# make bench ARGS="--data-dir data" times the guide's pipelines against ours.
# make colab REPOSITORY=https://github.com/OWNER/NAME REF=v0.1.0 publishes the notebooks for Colab:
# the URL and tag go into pyproject.toml, every badge and every install cell (nbhelpers/colab.py).
# The exact versions installed are constraints.txt's; pyproject.toml holds the ranges.

VENV ?= .venv
PYTHON ?= python3
PROFILE ?= tiny
ARGS ?=
CONSTRAINTS ?= constraints.txt
REPOSITORY ?=
REF ?=
TEST_WORKERS ?= 2
BIN := $(VENV)/bin

.PHONY: setup series test lab bench colab

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev,lab]"
	touch $@

setup: $(VENV)/.installed

series: setup
	$(BIN)/python -m nbhelpers.run --profile $(PROFILE) $(ARGS)

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --nbval-lax tests notebooks

lab: setup
	$(BIN)/jupyter lab notebooks

bench: setup
	$(BIN)/python bench/speed.py $(ARGS)

colab: setup
	$(BIN)/python -m nbhelpers.colab --root . --repository "$(REPOSITORY)" $(if $(REF),--ref "$(REF)")
