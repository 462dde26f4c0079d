"""Fine-tune FCN+ConvLSTM on the fixed date sequence (the six 2016 images of the paper).

The trained FCN (--base-model, a run name or a path; default the newest baseline_cnn_NN) is cut
before its softmax, applied to every date with TimeDistributed and followed by a bidirectional
ConvLSTM2D whose two directions are averaged; the whole network is fine-tuned. The FCN's
normalisation comes from its run record.

Usage: python lstm_fixed_seq.py [--config CONFIG] [--base-model RUN|PATH] [--epochs N] [--steps N] ...
After training it evaluates the model on the test split (metrics.py) unless --no-eval.
Watch it with: tensorboard --logdir=reports/logs
"""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.errors import run_cli
from helpers.predict.evaluation import get_metrics_and_cm
from helpers.train.trainers import (
    FIXED_SCRIPT,
    add_base_model_argument,
    base_fcn_model,
    evaluate_test_split,
    load_base_fcn,
    start_run,
    training_dates,
)
from helpers.train.training import LSTM_BATCH, Say, say_flushed


def train(argv: Sequence[str] | None = None, say: Say = say_flushed, extra_callbacks: Sequence[Any] = ()) -> dict:
    """Train (or ``--resume``) one FCN+ConvLSTM run on the fixed sequence, save it and score it.

    Args:
        argv: Arguments (default: the command line).
        say: Printer.
        extra_callbacks: More Keras callbacks.

    Returns:
        The training summary.
    """
    run = start_run(FIXED_SCRIPT, __doc__.splitlines()[0], argv, batch=LSTM_BATCH, arguments=add_base_model_argument,
                    say=say)
    dates = training_dates(run, "dates.fixed_sequence", minimum=2)
    base = load_base_fcn(run)  # the FCN's run record: its normalisation, bands and class table

    from helpers.train.fitting import early_stopping, fit_and_save, run_callbacks
    from helpers.train.generators import FixedSequenceGenerator
    from helpers.train.models import build_fcn_lstm
    from helpers.train.training import accuracy_metrics, adam, learning_rate_scheduler, weighted_loss

    # data: sequences of the tiles present on every date of the fixed sequence
    data = {"normaliser": base.normaliser, "level": run.level, "batch_size": run.batch_size, **run.input_options}
    train_data = FixedSequenceGenerator(run.config, dates, "train", steps=run.steps, augment=run.augment,
                                        seed=run.seed, **data)
    val_data = FixedSequenceGenerator(run.config, dates, "valid", steps=run.val_steps, augment=False,
                                      seed=run.val_seed, **data)

    # model, loss and optimiser: the FCN per date + bidirectional ConvLSTM, weighted cross-entropy, Adam(clipnorm=1)
    with run.strategy.scope():
        model = build_fcn_lstm(base_fcn_model(base, run), timesteps=len(dates), tile_size=run.config.tile_size)
        model.compile(optimizer=adam(run.learning_rate), loss=weighted_loss(run.config),
                      metrics=accuracy_metrics(run.config))

    # callbacks: the learning-rate schedule, early stopping, the backup, TensorBoard and the CSV history
    callbacks = [
        learning_rate_scheduler(run.learning_rate),
        early_stopping(run, min_delta=0.001, baseline=0.6),
        *run_callbacks(run),
        *extra_callbacks,
    ]

    # fit, save the model with its run record, score it on the test split
    summary = fit_and_save(run, model, train_data, val_data, callbacks, base.normaliser, dates)
    evaluate_test_split(run, model, get_metrics_and_cm)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    train(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
