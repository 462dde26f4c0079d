"""What the three training scripts share: flags, devices, optimiser, callbacks and run outputs.

The defaults are the original's: weighted categorical cross-entropy, Adam with ``clipnorm=1``,
learning rate 1e-3 for 10 epochs then ``1e-3 * exp(0.1 * (10 - epoch))``, early stopping on the
validation categorical accuracy (patience 20, best weights restored), 100 steps per epoch and
5 validation steps. Outputs of a run ``{script}_{NN}``:

* ``models/{run}.keras`` (+ ``_config.toml``, ``_flags.json``, ``_normalisation.json`` beside it),
* TensorBoard logs in ``reports/logs/{run}/``,
* the training log with wall time and the epoch history in ``reports/logs_and_plots/{run}/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.config import Config
from helpers.errors import InputError
from helpers.io import write_json_atomic, write_text_atomic
from helpers.runs import check_model_name, newest_interrupted_run, next_run_name

Say = Callable[[str], None]


def learning_rate_schedule(epoch: int, base: float = 1e-3) -> float:
    """The original schedule: ``base`` for epochs 0-9, then ``base * exp(0.1 * (10 - epoch))``."""
    return base if epoch < 10 else base * math.exp(0.1 * (10 - epoch))


def add_training_arguments(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """Add the flags every training script has (defaults: the paper's, or the config's [training]).

    Args:
        parser: The script's parser.
        batch_size: The script's default batch size (64 for the FCN, 16 for the LSTMs).
    """
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    parser.add_argument("--level", default=None, help="processing level L1C or L2A (default: the config's)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: training.max_epochs, 1000)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 100)")
    parser.add_argument("--val-steps", type=int, default=None, help="validation steps per epoch (default 5)")
    parser.add_argument("--batch-size", type=int, default=None, help=f"batch size (default {batch_size})")
    parser.add_argument("--learning-rate", type=float, default=None, help="initial learning rate (default 1e-3)")
    parser.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs (default 20)")
    parser.add_argument("--no-augment", action="store_true", help="switch off flips and rotations")
    parser.add_argument("--seed", type=int, default=None, help="random seed (weights, batches, augmentation)")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                        help="tf.distribute strategy: default (one device), mirrored (all GPUs of this machine, "
                             "or its logical CPUs), multiworker (TF_CONFIG cluster)")
    parser.add_argument("--logical-cpus", type=int, default=None,
                        help="split the CPU into N logical devices (for --strategy mirrored without GPUs)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN",
                        help="continue an interrupted run (default: the newest one of this script) with the flags "
                             "it was started with")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bar")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the test-split evaluation (metrics.py) after training")


@dataclass(frozen=True)
class RunPaths:
    """Every file and folder a training run writes."""

    run: str
    model: Path
    config_copy: Path
    flags: Path
    normalisation: Path
    backup: Path
    tensorboard: Path
    log_dir: Path

    @property
    def log_file(self) -> Path:
        """Training log with wall time."""
        return self.log_dir / f"{self.run}_training_log.txt"

    @property
    def history_csv(self) -> Path:
        """Per-epoch loss and metrics."""
        return self.log_dir / f"{self.run}_history.csv"


def run_paths(config: Config, run: str) -> RunPaths:
    """Paths of a run under the config's models and reports roots."""
    models, reports = config.models_root, config.reports_root
    return RunPaths(run, models / f"{run}.keras", models / f"{run}_config.toml", models / f"{run}_flags.json",
                    models / f"{run}_normalisation.json", models / f"{run}_backup", reports / "logs" / run,
                    reports / "logs_and_plots" / run)


def plan_run(config: Config, script: str, args: argparse.Namespace, say: Say) -> tuple[RunPaths, dict[str, Any], bool]:
    """Name a new run, or find the interrupted one for ``--resume``. Writes nothing.

    Returns:
        The run's paths, the flags to train with (for ``--resume``: the saved ones) and whether
        the run is resumed.
    """
    flags = {k: v for k, v in vars(args).items() if k != "resume"}
    if not args.resume:
        return run_paths(config, next_run_name(config.models_root, script)), flags, False
    run = newest_interrupted_run(config.models_root, script) if args.resume == "latest" else args.resume
    if run is None:
        raise InputError(f"{config.models_root}: no interrupted {script} run to resume")
    paths = run_paths(config, check_model_name(run))
    if not paths.backup.is_dir() or not paths.flags.is_file():
        raise InputError(f"{paths.backup}: run '{run}' has no backup to resume from (finished or never started)")
    saved = json.loads(paths.flags.read_text(encoding="utf-8"))
    say(f"resuming {run} with the flags it was started with")
    return paths, {**saved["flags"], "quiet": args.quiet}, True


def save_run_metadata(config: Config, script: str, paths: RunPaths, flags: dict[str, Any]) -> None:
    """Save the config and the flags beside the (future) model, so the run can be repeated or resumed."""
    paths.config_copy.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.config_copy, config.source.read_text(encoding="utf-8"))
    write_json_atomic(paths.flags, {"script": script, "run": paths.run, "config": str(config.source), "flags": flags})


def configure_devices(logical_cpus: int | None) -> None:
    """Split the CPU into logical devices (must run before TensorFlow initialises its runtime)."""
    if not logical_cpus:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError as error:
        raise InputError(f"--logical-cpus {logical_cpus}: TensorFlow is already initialised ({error})") from None


def make_strategy(name: str):
    """The ``tf.distribute`` strategy of ``--strategy``."""
    import tensorflow as tf

    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def setting(flags: dict[str, Any], config: Config, flag: str, key: str, default: Any) -> Any:
    """A training setting: the flag if given, else the config's ``[training]`` value, else the default."""
    value = flags.get(flag)
    if value is not None:
        return value
    return config.training.get(key, default)


def compile_model(model, config: Config, learning_rate: float) -> None:
    """Adam(clipnorm=1) and the weighted categorical cross-entropy, with categorical accuracy."""
    import keras

    from helpers.losses import WeightedCategoricalCrossentropy, class_weights

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
                  loss=WeightedCategoricalCrossentropy(class_weights(config).tolist()),
                  metrics=["categorical_accuracy"])


def check_class_ids(config: Config) -> int:
    """Number of classes; training needs ids 1..n (channel c-1 is class c)."""
    ids = sorted(config.class_ids)
    if ids != list(range(1, len(ids) + 1)):
        raise InputError(f"{config.source}: training needs class ids 1..{len(ids)}, the class table has {ids}")
    return len(ids)


def fit_and_save(model, train_data, val_data, paths: RunPaths, epochs: int, base_lr: float, patience: int,
                 min_delta: float, baseline: float | None, quiet: bool, say: Say,
                 extra_callbacks: list | None = None) -> dict[str, Any]:
    """Train with the original's callbacks, save the model atomically and write the training log.

    Args:
        model: Compiled model.
        train_data: Training PyDataset.
        val_data: Validation PyDataset.
        paths: Run outputs.
        epochs: Maximum epochs.
        base_lr: Initial learning rate of the schedule.
        patience: Early-stopping patience.
        min_delta: Early-stopping minimum improvement.
        baseline: Early-stopping baseline (None: none).
        quiet: No progress bar.
        say: Printer.
        extra_callbacks: More callbacks (tests use this to interrupt a run).

    Returns:
        Summary: epochs run, best epoch, final and best validation accuracy, wall time.
    """
    import keras

    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.tensorboard.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(paths.backup), delete_checkpoint=True),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate_schedule(epoch, base_lr)),
        keras.callbacks.EarlyStopping(monitor="val_categorical_accuracy", mode="max", min_delta=min_delta,
                                      patience=patience, baseline=baseline, restore_best_weights=True),
        keras.callbacks.TensorBoard(log_dir=str(paths.tensorboard), write_graph=False),
        keras.callbacks.CSVLogger(str(paths.history_csv), append=True),
        *(extra_callbacks or []),
    ]
    started = time.time()
    try:
        history = model.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=callbacks,
                            verbose=0 if quiet else 2)
    except KeyboardInterrupt:
        raise InputError(f"{paths.run}: training interrupted; continue it with --resume {paths.run}") from None
    wall = time.time() - started
    partial = paths.model.with_name(f".{paths.run}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        os.replace(partial, paths.model)
    finally:
        partial.unlink(missing_ok=True)
    values = history.history.get("val_categorical_accuracy", [])
    best = max(range(len(values)), key=values.__getitem__) if values else None
    summary = {
        "run": paths.run, "epochs_run": len(history.epoch), "first_epoch": history.epoch[0] if history.epoch else None,
        "best_epoch": None if best is None else history.epoch[best],
        "best_val_categorical_accuracy": None if best is None else float(values[best]),
        "final_val_categorical_accuracy": float(values[-1]) if values else None,
        "final_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
        "wall_time_s": round(wall, 2), "seconds_per_step": None,
        "keras": keras.__version__, "python": platform.python_version(),
    }
    steps = len(history.epoch) * len(train_data)
    summary["seconds_per_step"] = round(wall / steps, 4) if steps else None
    lines = [f"{k}: {v}" for k, v in summary.items()]
    write_text_atomic(paths.log_file, "\n".join(lines) + "\n")
    write_json_atomic(paths.log_dir / f"{paths.run}_training_summary.json", summary)
    say(f"{paths.run}: {summary['epochs_run']} epochs in {wall:.1f} s; validation categorical accuracy "
        f"{summary['final_val_categorical_accuracy']} (best {summary['best_val_categorical_accuracy']} at epoch "
        f"{summary['best_epoch']}); model {paths.model}")
    return summary
