# Two commands do all the set-up on a fresh machine: `make run` (the whole pipeline on the offline sample)
# and `make test` (the test suite). Both create .venv and install the pinned dependencies when needed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run test bench paper clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependencies

run: install  ## run every DVC stage (crawl of the offline sample -> evaluation)
	PATH=$(BIN):$$PATH dvc repro

test: install  ## run the test suite
	PATH=$(BIN):$$PATH pytest

bench: install  ## benchmarks: crawl, segmentation, features, training (figures in bench/results/)
	PATH=$(BIN):$$PATH python -m bench

paper: install  ## the paper's Tables 2-4 as queued DVC experiments -> reports/paper_tables.md (params: paper)
	PATH=$(BIN):$$PATH python -m model.paper

clean-outputs:  ## delete everything the pipeline wrote (data/*, models, metrics, reports, plots)
	rm -rf data/sample_site data/raw data/clean data/splits data/segmented data/features models metrics reports plots
