"""Score the mean softmax of several runs of one model (an ensemble), loading one model at a time.

Usage: python ensemble_avg.py MODEL_NAME --runs 134 [--split test|valid] [--config CONFIG]
MODEL_NAME is the runs' base name (baseline_cnn, lstm_fixed_seq ...); --runs 134 means runs 01,
03 and 04 (one digit per run, as the original), --runs 1,3,12 lists numbers. The runs must share
level, bands and class table (their records). The report goes to
reports/logs_and_plots/{MODEL_NAME}_ensemble_{RUNS}/ with the file names of metrics.py (the
validation split's beside the test split's).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import run_cli
from helpers.train.runs import parse_runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_name", metavar="MODEL_NAME", help="base name of the runs, e.g. baseline_cnn")
    parser.add_argument("--runs", required=True, help="run digits (134 = runs 01, 03, 04) or numbers 1,3,12")
    parser.add_argument("--split", choices=("test", "valid"), default="test", help="tiles to score (default test)")
    parser.add_argument("--config", default=None,
                        help="study-area TOML, relative to the repository root (default configs/demo.toml)")
    args = parser.parse_args(argv)
    runs = parse_runs(args.runs)
    config = load_config(args.config)

    from helpers.predict.evaluation import evaluate_ensemble

    evaluate_ensemble(args.model_name, runs, args.split, config=config)
    return 0


if __name__ == "__main__":
    run_cli(main)
