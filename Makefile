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

# Small training settings for the demo (the paper's defaults are 100 steps x up to 1000 epochs,
# full width): a quarter-width U-Net, then both FCN+ConvLSTM variants fine-tuned from it.
# A model that already exists is not trained again (delete models/demo/ to retrain).
DEMO_MODELS := models/demo
DEMO_FCN := --width 0.25 --batch-size 32 --steps 25 --val-steps 5 --epochs 25 --learning-rate 0.003 --seed 1
DEMO_LSTM := --batch-size 16 --steps 25 --val-steps 5 --epochs 12 --seed 1
# The random-forest baseline (not the paper's), monotemporal and multitemporal: 50 trees (default 100;
# the same scores on the demo, half the time of classify.py) on at most 60,000 training pixels.
DEMO_FOREST := --trees 50 --max-pixels 60000 --seed 1
DEMO_RUNS := baseline_cnn_01 lstm_fixed_seq_01 lstm_random_seq_01 random_forest_mono_01 random_forest_multi_01

demo: $(STAMP)
	$(PY) src/data_processing/00_make_demo_data.py --config $(CONFIG)
	$(PY) src/data_processing/08a_process_train_batch.py --config $(CONFIG)
	$(PY) src/data_processing/08b_process_new_batch.py --config $(CONFIG)
	$(PY) src/data_processing/preprocessing_summary.py --config $(CONFIG)
	test -f $(DEMO_MODELS)/baseline_cnn_01.keras || $(PY) src/models/baseline_cnn.py --config $(CONFIG) $(DEMO_FCN)
	test -f $(DEMO_MODELS)/lstm_fixed_seq_01.keras || $(PY) src/models/lstm_fixed_seq.py --config $(CONFIG) \
		--base-model baseline_cnn_01 $(DEMO_LSTM)
	test -f $(DEMO_MODELS)/lstm_random_seq_01.keras || $(PY) src/models/lstm_random_seq.py --config $(CONFIG) \
		--base-model baseline_cnn_01 $(DEMO_LSTM)
	test -f $(DEMO_MODELS)/random_forest_mono_01.skops || $(PY) src/models/random_forest.py --config $(CONFIG) \
		--kind mono $(DEMO_FOREST)
	test -f $(DEMO_MODELS)/random_forest_multi_01.skops || $(PY) src/models/random_forest.py --config $(CONFIG) \
		--kind multi $(DEMO_FOREST)
	$(PY) src/models/runs_summary.py --config $(CONFIG)
	for m in $(DEMO_RUNS); do \
		test -f reports/demo/logs_and_plots/$$m/metrics.json || \
			$(PY) src/predict/metrics.py $$m --config $(CONFIG) || exit 1; \
		test -f data/demo/processed/classified/$$m/$${m}_classification.json || \
			$(PY) src/predict/classify.py $$m --combination all --config $(CONFIG) || exit 1; \
		$(PY) src/predict/change_detection.py $$m --config $(CONFIG) > /dev/null || exit 1; \
		test -f data/demo/processed/classified/$$m/$${m}_period_a_0_class.tif || \
			$(PY) src/predict/classify.py $$m --period a --config $(CONFIG) || exit 1; \
		$(PY) src/predict/change_detection.py $$m --periods --config $(CONFIG) > /dev/null || exit 1; \
	done
	$(PY) src/predict/demo_summary.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/preprocessing.py
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/training_input.py
	$(PY) benchmarks/classification.py
	$(PY) benchmarks/clouds.py

bench-quick: $(STAMP)
	$(PY) benchmarks/preprocessing.py --quick
	$(PY) benchmarks/ingest.py --quick
	$(PY) benchmarks/training_input.py --quick
	$(PY) benchmarks/classification.py --quick
	$(PY) benchmarks/clouds.py --quick

clean-demo:
	rm -rf data/demo/processed models/demo reports/demo reports/demo_summary.md
