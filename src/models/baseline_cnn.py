"""Train the monotemporal FCN: a U-Net with a VGG19 encoder on single tiles of the FCN dates.

Usage: python baseline_cnn.py [--config CONFIG] [--epochs N] [--steps N] [--batch-size N] [--width W]
       [--seed N] [--strategy default|mirrored|multiworker] [--resume [RUN]] ...
After training it evaluates the model on the test split (metrics.py) unless --no-eval.
Watch it with: tensorboard --logdir=reports/logs
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.errors import run_cli
from helpers.trainers import FCN_SCRIPT, train
from predict.metrics import get_metrics_and_cm


def main(argv: Sequence[str] | None = None) -> int:
    train(FCN_SCRIPT, __doc__.splitlines()[0], argv, evaluate=get_metrics_and_cm)
    return 0


if __name__ == "__main__":
    run_cli(main)
