# solu-repro: two set-up commands work on a fresh machine.
#   make book   set up, build the data, train the model zoo (SCALE=cpu by default)
#   make test   set up and run the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Optional: e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only wheel.
TORCH_INDEX ?=
VENV ?= .venv
SCALE ?= cpu
BIN := $(VENV)/bin

.PHONY: setup test book data zoo benchmark clean-runs

# torch is pinned and installed first: an unpinned torch pulled in as another package's
# dependency would be the newest build, with several GB of CUDA packages.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed

test: setup
	$(BIN)/pytest --timeout 900

data: setup
	$(BIN)/solu-repro data --scale $(SCALE)

zoo: data
	$(BIN)/solu-repro zoo --scale $(SCALE)

# The main job. The executed notebooks and the HTML book are added on top of the zoo by the
# book issue; today this sets up, builds the corpus and trains the zoo at $(SCALE).
book: zoo

benchmark: setup
	$(BIN)/python benchmarks/train_throughput.py

clean-runs:
	rm -rf runs/$(SCALE)
