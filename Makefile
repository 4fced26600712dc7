# hf-unlearn: `make demo` and `make test` work on a fresh machine (they create .venv when missing).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One pip command: the pinned torch is taken from the local CPU wheel; GPU users see README.md.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q --durations=10

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/hf-unlearn demo --output_dir demo_out

bench: $(STAMP)
	$(PY) benchmarks/logging_overhead.py --quick

clean:
	rm -rf demo_out .pytest_cache
