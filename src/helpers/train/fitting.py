"""The fit of a training run: its callbacks, the guard against a diverged loss, the saved run and its summary.

A run is saved only when it finished: the model goes to a staged file, its run record
(:mod:`helpers.train.run_record`) is stored inside it, and only then is it renamed to
``models/{run}.keras``. An interrupted run leaves its ``BackupAndRestore`` folder for
``--resume``; a run whose loss became NaN or infinite leaves no model at all.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers.core.errors import InputError
from helpers.core.io import write_json_atomic, write_text_atomic
from helpers.train.backends import missing_kernel_errors
from helpers.train.normalisation import Normaliser
from helpers.train.run_record import RunRecord, embed_record, make_record
from helpers.train.training import MONITORS, TrainingRun, save_run_metadata


def early_stopping(run: TrainingRun, min_delta: float, baseline: float | None) -> keras.callbacks.EarlyStopping:
    """Early stopping on ``val_{monitor}`` (``--monitor``), keeping the best epoch's weights.

    Args:
        run: The run (its monitor and patience).
        min_delta: Smallest improvement that counts.
        baseline: Value to reach within the patience (None: none).
    """
    return ResumableEarlyStopping(run.paths.backup, monitor=f"val_{run.monitor}", mode="max", min_delta=min_delta,
                                  patience=run.patience, baseline=baseline, restore_best_weights=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping whose state survives an interruption, so ``--resume`` ends as an uninterrupted run.

    ``BackupAndRestore`` restores the weights, the optimiser and the epoch, but not the early
    stopping's counter, best value and best weights: a resumed run used to start counting its
    patience afresh and to keep the best weights seen after the resume. After every epoch the
    state is written into the run's backup folder (``early_stopping_{epoch}.json`` and the best
    weights as ``early_stopping_best_{epoch}.npz``); at the first epoch of a resumed run the state
    of the epoch before it is read back. The backup folder is removed when the run finishes.

    Args:
        state_dir: The run's backup folder.
        **kwargs: :class:`keras.callbacks.EarlyStopping` arguments.
    """

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_dir = Path(state_dir)
        self._first_epoch = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._first_epoch and epoch > 0:
            self._restore(epoch - 1)
        self._first_epoch = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self._save(epoch)

    def _state_file(self, epoch: int) -> Path:
        return self.state_dir / f"early_stopping_{epoch}.json"

    def _weights_file(self, epoch: int) -> Path:
        return self.state_dir / f"early_stopping_best_{epoch}.npz"

    def _save(self, epoch: int) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.best_weights is not None and not self._weights_file(self.best_epoch).is_file():
            staged = self.state_dir / f".early_stopping_best_{self.best_epoch}.{os.getpid()}.npz"
            np.savez(staged, *self.best_weights)
            os.replace(staged, self._weights_file(self.best_epoch))
        best = None if self.best is None else float(self.best)
        write_json_atomic(self._state_file(epoch), {"epoch": epoch, "wait": self.wait, "best": best,
                                                    "best_epoch": self.best_epoch,
                                                    "stopped_epoch": self.stopped_epoch})
        keep = {self._state_file(epoch).name, self._state_file(epoch - 1).name,
                self._weights_file(self.best_epoch).name, self._weights_file(self._previous_best(epoch)).name}
        for old in self.state_dir.glob("early_stopping_*"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def _previous_best(self, epoch: int) -> int:
        previous = self._state_file(epoch - 1)
        if previous.is_file():
            return int(json.loads(previous.read_text(encoding="utf-8"))["best_epoch"])
        return self.best_epoch

    def _restore(self, epoch: int) -> None:
        state_file = self._state_file(epoch)
        if not state_file.is_file():
            return  # a backup from before this version: patience counts from the resume
        state = json.loads(state_file.read_text(encoding="utf-8"))
        self.wait, self.best_epoch = int(state["wait"]), int(state["best_epoch"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best = state["best"]
        weights = self._weights_file(self.best_epoch)
        if self.restore_best_weights and weights.is_file():
            with np.load(weights) as stored:
                self.best_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]


def run_callbacks(run: TrainingRun) -> list[keras.callbacks.Callback]:
    """The run's bookkeeping: the backup for ``--resume``, TensorBoard and the CSV history.

    Put them after the learning-rate scheduler, so that the logged epochs carry the learning rate.
    """
    return [
        keras.callbacks.BackupAndRestore(str(run.paths.backup), delete_checkpoint=True),
        keras.callbacks.TensorBoard(log_dir=str(run.paths.tensorboard), write_graph=False),
        keras.callbacks.CSVLogger(str(run.paths.history_csv), append=True),
    ]


class _FollowEpochs(keras.callbacks.Callback):
    """Key the generators' batches by Keras' epoch number (so a resumed run draws what an uninterrupted one would).

    Keras' data workers start drawing the first epoch's batches before ``on_epoch_begin``; so the
    generators are set to the first epoch of the fit (the backed-up epoch of a resumed run) when
    this callback is made, before ``fit`` starts them.

    Args:
        datasets: The fit's PyDatasets (those without an ``epoch`` are left alone).
        first_epoch: The epoch the fit starts with.
    """

    def __init__(self, datasets: Sequence[Any], first_epoch: int = 0) -> None:
        super().__init__()
        self.datasets = [d for d in datasets if hasattr(d, "epoch")]
        for dataset in self.datasets:
            dataset.epoch = first_epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for dataset in self.datasets:
            dataset.epoch = epoch


def backed_up_epoch(backup: Path) -> int:
    """The epoch a resumed fit starts with: the one ``BackupAndRestore`` recorded in the backup folder (0: none)."""
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        try:
            return int(json.loads((backup / name).read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0


class _NonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first batch whose loss is NaN or infinite, and remember where it was."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.found: tuple[int, int, float] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if self.found is None and loss is not None and not math.isfinite(value := float(np.asarray(loss))):
            self.found = (self.epoch, int(batch), value)
            self.model.stop_training = True


def fit_and_save(run: TrainingRun, model: keras.Model, train_data: Any, val_data: Any,
                 callbacks: Sequence[keras.callbacks.Callback], normaliser: Normaliser,
                 dates: Sequence[str]) -> dict[str, Any]:
    """Save the run's metadata, train, save the model with its run record and write the training log.

    Args:
        run: The planned run.
        model: The compiled model.
        train_data: Training PyDataset.
        val_data: Validation PyDataset.
        callbacks: The script's callbacks (scheduler, early stopping, :func:`run_callbacks`, any more).
        normaliser: The band normalisation of the batches (saved beside and inside the model).
        dates: The dates the run trains on (recorded).

    Returns:
        The training summary (also written as ``{run}_training_summary.json`` and the log).

    Raises:
        InputError: If the run was interrupted (continue it with ``--resume``) or its loss became
            NaN or infinite (no model is saved then).
    """
    paths = run.paths
    if not run.resuming:
        save_run_metadata(run.config, run.script, paths, run.flags, run.settings)
        write_json_atomic(paths.normalisation, {"mean": [float(v) for v in normaliser.mean],
                                                "std": [float(v) for v in normaliser.std]})
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.tensorboard.mkdir(parents=True, exist_ok=True)
    run.say(f"{run.run}: training {run.script} on {len(dates)} dates, batch {run.batch_size}, {run.steps} steps x up "
            f"to {run.epochs} epochs, {model.count_params():,} parameters, {run.strategy.num_replicas_in_sync} "
            f"replica(s), early stopping on val_{run.monitor}"
            + ("" if run.seed is None else f", seed {run.seed} ({run.determinism})"))
    guard = _NonFiniteLoss()
    first = backed_up_epoch(paths.backup) if run.resuming else 0
    started = time.time()
    try:
        # shuffle=False: each batch already draws its tiles at random from (seed, epoch, index); Keras'
        # shuffling of the batch order would draw from Python's global random state, which a resumed
        # run does not have, so it would see the batches of an epoch in another order.
        history = model.fit(train_data, validation_data=val_data, epochs=run.epochs, shuffle=False,
                            callbacks=[_FollowEpochs([train_data, val_data], first), guard, *callbacks],
                            verbose=0 if run.flags.get("quiet") else 2)
    except KeyboardInterrupt:
        raise InputError(f"{run.run}: training interrupted; continue it with --resume {run.run}") from None
    except missing_kernel_errors() as error:  # TensorFlow: e.g. a GPU op without a deterministic kernel
        if not run.deterministic:
            raise
        reason = next((line for line in str(error).splitlines() if "determinis" in line), "").strip()
        raise InputError(f"{run.run}: TensorFlow has no deterministic kernel for an op on this device "
                         f"({reason[:200]}); train with --no-determinism (or training.deterministic = false)") from None
    wall = time.time() - started
    _refuse_diverged(run, guard, history.history.get("loss", []), history.epoch)
    record = make_record(run.config, run.run, run.script, run.level, normaliser, dates, run.flags)
    save_model(model, paths.model, record)
    stopper = next((c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
    summary = training_summary(run, history, wall, len(train_data), stopper)
    write_text_atomic(paths.log_file, "".join(f"{k}: {v}\n" for k, v in summary.items()))
    write_json_atomic(paths.summary_json, summary)
    run.say(describe(summary) + f"; model {paths.model}")
    return summary


def _refuse_diverged(run: TrainingRun, guard: _NonFiniteLoss, losses: Sequence[float], epochs: Sequence[int]) -> None:
    """Raise if the loss became NaN or infinite (a diverged model is never saved as a finished run)."""
    found = guard.found
    if found is None:
        bad = [(e, v) for e, v in zip(epochs, losses, strict=False) if not math.isfinite(v)]
        found = (bad[0][0], -1, bad[0][1]) if bad else None
    if found is None:
        return
    epoch, batch, value = found
    where = f"epoch {epoch}" + (f", batch {batch}" if batch >= 0 else "")  # numbered as in the history
    raise InputError(f"{run.run}: the training loss became {value} in {where}; no model was saved (lower "
                     f"--learning-rate, {run.learning_rate:g} now; the history is in {run.paths.history_csv})")


def save_model(model: keras.Model, path: Path, record: RunRecord) -> None:
    """Save a model with its run record inside, atomically: a staged file, the record, then the rename."""
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        embed_record(partial, record)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def training_summary(run: TrainingRun, history: keras.callbacks.History, wall: float, steps_per_epoch: int,
                     stopper: keras.callbacks.EarlyStopping | None) -> dict[str, Any]:
    """Epochs, both validation accuracies (final and best), the monitored one, the kept epoch and the timing.

    ``best_epoch`` is the epoch whose weights were kept (early stopping's best on the monitored
    accuracy, which must beat the previous best by ``min_delta``); the ``best_`` values are the
    highest of each accuracy over the epochs run.
    """
    logs, epochs = history.history, list(history.epoch)
    monitored = logs.get(f"val_{run.monitor}", [])
    if stopper is not None and stopper.best_weights is not None:
        best_epoch: int | None = int(stopper.best_epoch)
    elif monitored:
        best_epoch = epochs[max(range(len(monitored)), key=monitored.__getitem__)]
    else:
        best_epoch = None
    summary: dict[str, Any] = {
        "run": run.run, "script": run.script, "epochs_run": len(epochs), "first_epoch": epochs[0] if epochs else None,
        "best_epoch": best_epoch, "monitor": f"val_{run.monitor}",
    }
    for name in MONITORS:
        values = [float(v) for v in logs.get(f"val_{name}", [])]
        summary[f"final_val_{name}"] = values[-1] if values else None
        summary[f"best_val_{name}"] = max(values) if values else None
    steps = len(epochs) * steps_per_epoch
    summary.update({
        "final_loss": float(logs["loss"][-1]) if logs.get("loss") else None,
        "wall_time_s": round(wall, 2), "seconds_per_step": round(wall / steps, 4) if steps else None,
        "seed": run.seed, "deterministic": run.deterministic, "determinism": run.determinism,
        "keras": keras.__version__, "backend": keras.backend.backend(), "precision": keras.config.dtype_policy().name,
        "python": platform.python_version(),
    })
    return summary


def describe(summary: dict[str, Any]) -> str:
    """One line: epochs, wall time and both validation accuracies, the monitored one first."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    monitor = str(summary.get("monitor", "val_categorical_accuracy")).removeprefix("val_")
    others = [m for m in MONITORS if m != monitor]
    parts = [f"{name.replace('_', ' ')} {fmt(summary.get(f'final_val_{name}'))} (best "
             f"{fmt(summary.get(f'best_val_{name}'))})" for name in (monitor, *others)]
    return (f"{summary['run']}: {summary['epochs_run']} epochs in {summary['wall_time_s']:.1f} s; validation "
            f"{parts[0]}, monitored, weights of epoch {summary['best_epoch']} kept; {', '.join(parts[1:])}")
