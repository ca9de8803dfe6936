# One virtual environment in .venv. CPU machines get the CPU build of torch;
# GPU users: `make setup TORCH_SPEC=torch` (or install their own torch into .venv first).
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
OUTPUT ?= outputs/quickstart

.PHONY: setup test quickstart bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,train,demo,lora]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

quickstart: setup
	$(BIN)/showo quickstart --output $(OUTPUT)

bench: setup
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/versus_naive.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/training.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
