"""Fine-tune FCN+ConvLSTM on the fixed date sequence (the six 2016 images of the paper).

The trained FCN (--base-model, default the newest baseline_cnn_NN) is cut before its softmax,
applied to every date with TimeDistributed and followed by a bidirectional ConvLSTM2D whose
two directions are averaged; the whole network is fine-tuned.

Usage: python lstm_fixed_seq.py [--config CONFIG] [--base-model NAME] [--epochs N] [--steps N] ...
After training it evaluates the model on the test split (metrics.py) unless --no-eval.
Watch it with: tensorboard --logdir=reports/logs
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.errors import run_cli
from helpers.trainers import FIXED_SCRIPT, train
from predict.metrics import get_metrics_and_cm


def main(argv: Sequence[str] | None = None) -> int:
    train(FIXED_SCRIPT, __doc__.splitlines()[0], argv, evaluate=get_metrics_and_cm)
    return 0


if __name__ == "__main__":
    run_cli(main)
