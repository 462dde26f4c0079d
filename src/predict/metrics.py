"""Score a trained model on the test (or validation) tiles: accuracy, kappa, F1, confusion matrices.

Usage: python metrics.py (MODEL_NAME | --model PATH) [--split test|valid] [--config CONFIG]
Writes reports/logs_and_plots/{RUN}/: {RUN}_log.txt, the confusion-matrix plots (PNG and PDF,
raw and normalised) and metrics.json for the test split; --split valid writes
{RUN}_valid_log.txt, {RUN}_valid_confusion_matrix*.png/pdf and metrics_valid.json beside them,
never over them. The level, bands, class table and normalisation are the run's (its record);
the study area must have ground truth. From Python (for example at the end of a training
script): ``helpers.predict.evaluation.get_metrics_and_cm(run, split="test", model=model, config=config)``.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import run_cli
from helpers.predict.evaluation import (
    get_metrics_and_cm,  # the library function; scripts import it from helpers.predict.evaluation
)
from helpers.train.run_record import add_model_arguments, model_spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, "the run to score")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="tiles to score (default test; valid writes beside the test reports)")
    parser.add_argument("--config", default=None,
                        help="study-area TOML, relative to the repository root (default configs/demo.toml)")
    args = parser.parse_args(argv)
    spec = model_spec(args)
    config = load_config(args.config)
    get_metrics_and_cm(spec, args.split, config=config)
    return 0


if __name__ == "__main__":
    run_cli(main)
