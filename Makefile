# The two commands of the README: `make demo` and `make test`. Both create the virtual
# environment and install what is missing by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/demo.toml

.PHONY: demo test lint bench bench-quick clean-demo help

help:
	@echo "make demo   - set up, generate the demo study area and run the pipeline on it"
	@echo "make test   - set up and run the test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (make bench-quick for the short version)"

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) src/data_processing/00_make_demo_data.py --config $(CONFIG)
	$(PY) src/data_processing/08a_process_train_batch.py --config $(CONFIG)
	$(PY) src/data_processing/08b_process_new_batch.py --config $(CONFIG)
	$(PY) src/data_processing/preprocessing_summary.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/preprocessing.py
	$(PY) benchmarks/ingest.py

bench-quick: $(STAMP)
	$(PY) benchmarks/preprocessing.py --quick
	$(PY) benchmarks/ingest.py --quick

clean-demo:
	rm -rf data/demo/processed
