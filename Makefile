# Two commands: `make demo` (the demo pipeline on sample_data/) and `make test` (the test suite).
# Each creates .venv if missing and installs torch first (TORCH_SPEC, CPU build by default; a GPU
# user sets e.g. TORCH_SPEC="torch==2.13.0 --index-url <their CUDA index>"), then the project.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= -q --disable-pip-version-check
BIN := $(VENV)/bin
STAMP := $(VENV)/.medxlate-installed

.PHONY: demo test lint install

demo: $(STAMP)
	$(BIN)/medxlate run pipelines/ct2mr_2d.yaml --overwrite  # the demo replaces its own earlier outputs

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check medxlate tests benchmarks sample_data

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) $(TORCH_SPEC)
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[test]"
	touch $(STAMP)
