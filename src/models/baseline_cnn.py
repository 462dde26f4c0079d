"""Train the monotemporal FCN: a U-Net with a VGG19 encoder on single tiles of the FCN dates.

Usage: python baseline_cnn.py [--config CONFIG] [--epochs N] [--steps N] [--batch-size N] [--width W]
       [--seed N] [--monitor masked_accuracy|categorical_accuracy] [--strategy default|mirrored|multiworker]
       [--resume [RUN]] ...
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
from helpers.train.trainers import FCN_SCRIPT, evaluate_test_split, start_run, training_dates, training_normaliser
from helpers.train.training import FCN_BATCH, WIDTH, Say, say_flushed


def train(argv: Sequence[str] | None = None, say: Say = say_flushed, extra_callbacks: Sequence[Any] = ()) -> dict:
    """Train (or ``--resume``) one FCN run, save it and score it on the test split.

    Args:
        argv: Arguments (default: the command line).
        say: Printer.
        extra_callbacks: More Keras callbacks (the tests interrupt a run with one).

    Returns:
        The training summary.
    """
    run = start_run(FCN_SCRIPT, __doc__.splitlines()[0], argv, batch=FCN_BATCH, settings=[WIDTH], say=say)

    from helpers.train.fitting import early_stopping, fit_and_save, run_callbacks
    from helpers.train.generators import SingleTileGenerator
    from helpers.train.models import build_unet
    from helpers.train.training import accuracy_metrics, adam, learning_rate_scheduler, weighted_loss

    # data: single tiles drawn at random from all tiles of the FCN dates
    dates = training_dates(run, "dates.fcn_training")
    normaliser = training_normaliser(run, dates)
    data = {"normaliser": normaliser, "level": run.level, "batch_size": run.batch_size, **run.input_options}
    train_data = SingleTileGenerator(run.config, dates, "train", steps=run.steps, augment=run.augment, seed=run.seed,
                                     **data)
    val_data = SingleTileGenerator(run.config, dates, "valid", steps=run.val_steps, augment=False, seed=run.val_seed,
                                   **data)

    # model, loss and optimiser: the U-Net, the weighted cross-entropy, Adam(clipnorm=1)
    with run.strategy.scope():
        model = build_unet(n_bands=run.n_bands, n_classes=run.n_classes, width=run.settings["width"])
        model.compile(optimizer=adam(run.learning_rate), loss=weighted_loss(run.config),
                      metrics=accuracy_metrics(run.config))

    # callbacks: the learning-rate schedule, early stopping, the backup, TensorBoard and the CSV history
    callbacks = [
        learning_rate_scheduler(run.learning_rate),
        early_stopping(run, min_delta=0.01, baseline=0.5),
        *run_callbacks(run),
        *extra_callbacks,
    ]

    # fit, save the model with its run record, score it on the test split
    summary = fit_and_save(run, model, train_data, val_data, callbacks, normaliser, dates)
    evaluate_test_split(run, model, get_metrics_and_cm)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    train(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
