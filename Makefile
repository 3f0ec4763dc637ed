# Two commands do all the set-up on a fresh machine: `make run` (the whole pipeline on the offline sample)
# and `make test` (the test suite). Both create .venv and install the pinned dependencies when needed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

# "<installation folder> <version>" of the interpreter $(1) (a venv's python names the one it was built from);
# empty when $(1) does not run
python_identity = $(shell $(1) -c 'import os, sys; print(os.path.realpath(sys.base_prefix), sys.version.split()[0])' 2>/dev/null)
describe_python = $(if $(word 2,$(1)),Python $(word 2,$(1)) of $(word 1,$(1)),an interpreter that no longer runs)

.PHONY: help check-python install run test bench paper shell clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# One line instead of a shell's "not found", and a venv of another interpreter is refused rather than used quietly.
# The checks are in the recipe's expansion, so they run only for the targets that need the venv (make -n too).
check-python:
	$(eval PYTHON_IS := $(call python_identity,$(PYTHON)))
	$(if $(PYTHON_IS),,$(error PYTHON=$(PYTHON) does not run here: install Python 3.11 (or 3.12), or run make with PYTHON=/path/to/python3.11))
	$(eval VENV_IS := $(if $(wildcard $(BIN)/python),$(or $(call python_identity,$(BIN)/python),gone)))
	$(if $(VENV_IS),$(if $(filter-out $(PYTHON_IS),$(VENV_IS))$(filter-out $(VENV_IS),$(PYTHON_IS)),$(error $(VENV) was built with $(call describe_python,$(VENV_IS)), not with PYTHON=$(PYTHON) ($(call describe_python,$(PYTHON_IS))): rebuild it with `rm -rf $(VENV)`, then run make again)))

$(STAMP): pyproject.toml | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: check-python $(STAMP)  ## create .venv and install the pinned dependencies

run: install  ## check params.yaml, then run every DVC stage (crawl of the offline sample -> evaluation)
	PATH=$(BIN):$$PATH python -m checks.params
	PATH=$(BIN):$$PATH dvc repro

test: install  ## lint and format check (ruff), then the test suite
	PATH=$(BIN):$$PATH ruff check .
	PATH=$(BIN):$$PATH ruff format --check .
	PATH=$(BIN):$$PATH pytest

bench: install  ## benchmarks: crawl, segmentation, features, training (figures in bench/results/)
	PATH=$(BIN):$$PATH python -m bench

paper: install  ## the paper's Tables 2-4 as queued DVC experiments -> reports/paper_tables.md (params: paper)
	PATH=$(BIN):$$PATH python -m tools.paper

shell: install  ## an interactive bash with .venv activated (dvc, pytest, python on PATH); exit to leave
	@bash --init-file $(BIN)/activate -i

clean-outputs:  ## delete everything the pipeline wrote (data/*, models, metrics, reports, plots)
	rm -rf data/sample_site data/raw data/clean data/splits data/segmented data/features models metrics reports plots
