# hf-unlearn: `make demo` and `make test` work on a fresh machine (they create .venv when missing).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One pip command: the pinned torch is taken from the local CPU wheel; GPU users see README.md.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# The lowest versions pyproject.toml allows; `make test-min` runs the fast suite against them.
MIN_VENV := .venv-min
MIN_SPEC := "transformers==5.0.0" "peft==0.18.0" "accelerate==1.3.0" "datasets==3.0.0" "evaluate==0.4.0" "huggingface_hub==1.3.0"

.PHONY: install test test-fast test-min lint format demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q --durations=10

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow"

$(MIN_VENV)/.installed: pyproject.toml Makefile
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" $(MIN_SPEC) -e ".[dev]"
	touch $@

# The docs blocks are version-independent text and run in `make test`; on evaluate 0.4.0 their in-process
# metric import leaves a module cache that test_metrics then cannot load from.
test-min: $(MIN_VENV)/.installed
	OMP_NUM_THREADS=1 $(MIN_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider --ignore=tests/test_docs.py

lint: $(STAMP)
	$(VENV)/bin/ruff check hf_unlearn tests benchmarks
	$(VENV)/bin/ruff format --check hf_unlearn tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix hf_unlearn tests benchmarks
	$(VENV)/bin/ruff format hf_unlearn tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/hf-unlearn demo --output_dir demo_out

bench: $(STAMP)
	$(PY) benchmarks/logging_overhead.py --quick

clean:
	rm -rf demo_out .pytest_cache $(MIN_VENV)
