"""Fine-tune FCN+ConvLSTM on variable sequences: every batch draws its dates from the training pool.

For each batch, --timesteps dates (default 6) are drawn without replacement from the pool of
the config (ten images in the paper) and sorted chronologically; only tiles present on all of
them are used.

Usage: python lstm_random_seq.py [--config CONFIG] [--base-model NAME] [--timesteps N] [--epochs N] ...
After training it evaluates the model on the test split (metrics.py) unless --no-eval.
Watch it with: tensorboard --logdir=reports/logs
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.errors import run_cli
from helpers.trainers import RANDOM_SCRIPT, train
from predict.metrics import get_metrics_and_cm


def main(argv: Sequence[str] | None = None) -> int:
    train(RANDOM_SCRIPT, __doc__.splitlines()[0], argv, evaluate=get_metrics_and_cm)
    return 0


if __name__ == "__main__":
    run_cli(main)
