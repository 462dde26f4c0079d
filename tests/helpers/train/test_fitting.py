"""Early stopping that survives ``--resume``: the same stop and the same best weights as without the interruption."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from helpers.train.fitting import ResumableEarlyStopping

VALUES = [0.50, 0.62, 0.61, 0.70, 0.705, 0.69, 0.712, 0.66, 0.60, 0.75]
"""Validation accuracies per epoch: the last improvement by >= 0.02 is epoch 3, patience 3 stops at epoch 6."""


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.stop_training = False
    return model


def _stopper(folder: Path, model: keras.Model) -> ResumableEarlyStopping:
    stopper = ResumableEarlyStopping(folder, monitor="val_masked_accuracy", mode="max", min_delta=0.02, patience=3,
                                     restore_best_weights=True)
    stopper.set_model(model)
    return stopper


def _train(stopper: ResumableEarlyStopping, model: keras.Model, first: int, last: int) -> int | None:
    """Feed epochs ``first..last``; each epoch's weights are the epoch number. Returns the stop epoch, if any."""
    stopper.on_train_begin()
    for epoch in range(first, last + 1):
        stopper.on_epoch_begin(epoch)
        model.set_weights([np.full(w.shape, epoch, w.dtype) for w in model.get_weights()])
        stopper.on_epoch_end(epoch, {"val_masked_accuracy": VALUES[epoch]})
        if model.stop_training:
            stopper.on_train_end()
            return epoch
    return None


def test_a_resumed_run_stops_and_restores_as_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = _model()
    stop_whole = _train(_stopper(tmp_path / "whole", whole), whole, 0, len(VALUES) - 1)

    interrupted = _model()
    assert _train(_stopper(tmp_path / "run", interrupted), interrupted, 0, 4) is None  # Ctrl-C after epoch 4
    resumed = _model()  # a new process: BackupAndRestore gives back the weights and epoch 5
    resumed.set_weights(interrupted.get_weights())
    stopper = _stopper(tmp_path / "run", resumed)
    stop_resumed = _train(stopper, resumed, 5, len(VALUES) - 1)

    assert stop_whole == stop_resumed == 6
    assert stopper.best_epoch == 3
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (resumed.get_weights()[0] == 3).all(), "the best epoch's weights are restored"


def test_without_the_state_patience_would_restart(tmp_path: Path) -> None:
    """The fault the state fixes: a fresh stopper after the resume runs past the uninterrupted stop."""
    model = _model()
    stopper = _stopper(tmp_path / "no_state", model)
    stop = _train(stopper, model, 5, len(VALUES) - 1)
    assert stop is None or stop > 6


def test_old_states_are_pruned(tmp_path: Path) -> None:
    model = _model()
    _train(_stopper(tmp_path / "run", model), model, 0, 5)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["early_stopping_4.json", "early_stopping_5.json", "early_stopping_best_3.npz"]
