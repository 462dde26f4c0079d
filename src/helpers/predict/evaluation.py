"""Scoring trained models on the held-out tiles: prediction of a split, metrics reports, ensembles.

The procedure follows the paper: FCN models classify every evaluation date's tiles of the
split independently and the results are pooled; sequence models (FCN + ConvLSTM) classify
one sequence per tile over the evaluation dates. The predicted class is ``argmax + 1``.
Pixels whose ground truth is the unclassifiable class (or 0, outside the study area) are
removed before scoring (:func:`helpers.predict.scoring.score`). A model is read through its run record
(:func:`helpers.train.run_record.load_run`): its level, bands, class table and normalisation are the
run's, checked against the study area, never taken from the config.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.config import Config, load_config
from helpers.core.errors import InputError
from helpers.predict.reports import format_report, write_report
from helpers.predict.scoring import score
from helpers.train.run_record import ModelSpec, RunRecord, check_same_kind, load_run
from helpers.train.runs import check_model_name, ensemble_name
from helpers.train.tile_cache import load_tiles

PREDICT_BATCH = 32
"""Tiles (or sequences) per ``model.predict`` batch."""

_CHUNK_TILES = 512
"""Tiles normalised at once (bounds the float32 copy of the inputs)."""

SCORED_SPLITS: tuple[str, ...] = ("test", "valid")
"""Splits a model can be scored on (the training tiles would flatter it)."""


# ---------------------------------------------------------------------- inputs of a split
def uses_sequences(model: Any, model_name: str = "") -> bool:
    """Whether a model takes date sequences.

    The input rank decides (5-D = sequences); a random forest says so itself
    (``takes_sequences``); for a model without a known input the original's convention
    applies: 'lstm' in the model name means a sequence model.
    """
    takes_sequences = getattr(model, "takes_sequences", None)
    if takes_sequences is not None:
        return bool(takes_sequences)
    if getattr(model, "inputs", None):
        from helpers.train.models import is_sequence_model  # a Keras model: Keras is loaded already

        return is_sequence_model(model)
    return "lstm" in model_name.lower()


def split_parts(config: Config, split: str, level: str | None, sequence: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The model inputs of a split: raw band values and ground truth, in parts.

    Args:
        config: The study-area configuration (``config.evaluation`` gives the dates).
        split: ``test`` or ``valid`` (or ``train``).
        level: Processing level; None means the config's.
        sequence: True for sequence models.

    Returns:
        For FCN models one part per evaluation date: (tiles (n, H, W, bands) uint16, labels
        (n, H, W)). For sequence models one part: (sequences (n, T, H, W, bands) of the tiles
        present on every evaluation date, dates in chronological order, labels (n, H, W)).

    Raises:
        InputError: If tiles are missing, or no tile is present on every date.
    """
    dates = sorted(config.evaluation)
    if not dates:
        raise InputError(f"{config.source}: dates.evaluation is empty")
    sets = [load_tiles(config, date, split, level) for date in dates]
    if not sequence:
        return [(tiles.x, tiles.y) for tiles in sets]
    common = sorted(set.intersection(*(set(tiles.endings) for tiles in sets)))
    if not common:
        raise InputError(f"no {split} tile is present on all evaluation dates {dates}")
    rows = [_rows(tiles.endings, common) for tiles in sets]
    x = np.stack([np.asarray(tiles.x[r]) for tiles, r in zip(sets, rows, strict=True)], axis=1)
    return [(x, np.asarray(sets[0].y[rows[0]]))]  # the ground truth is the same on every date


def _rows(endings: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Row of each wanted ending in a sorted list of endings (all present)."""
    own = np.asarray(endings)
    order = np.argsort(own)
    return order[np.searchsorted(own[order], np.asarray(wanted))]


def predict_probabilities(model: Any, parts: Sequence[tuple[np.ndarray, np.ndarray]], normaliser: Callable,
                          batch_size: int = PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of a model on every part, pooled.

    Inputs are normalised in chunks and passed to batched ``model.predict`` calls.

    Args:
        model: A Keras model (or anything with ``predict(x, batch_size=..., verbose=0)``).
        parts: From :func:`split_parts`.
        normaliser: Maps raw band values to float32 model inputs (bands on the last axis).
        batch_size: Tiles or sequences per prediction batch.

    Returns:
        (ground truth (N, H, W) uint8, probabilities (N, H, W, classes) float32).
    """
    truths, probabilities = [], []
    for x, y in parts:
        for start in range(0, len(x), _CHUNK_TILES):
            chunk = normaliser(np.asarray(x[start:start + _CHUNK_TILES]))
            probabilities.append(np.asarray(model.predict(chunk, batch_size=batch_size, verbose=0), np.float32))
        truths.append(np.asarray(y, dtype=np.uint8))
    return np.concatenate(truths), np.concatenate(probabilities)


def to_class_ids(probabilities: np.ndarray) -> np.ndarray:
    """Class ids from class scores: ``argmax + 1`` over the last axis (uint8)."""
    return (np.argmax(probabilities, axis=-1) + 1).astype(np.uint8)


def predict_test_split(model: Any, config: Config, split: str, normaliser: Callable, level: str | None,
                       model_name: str = "", batch_size: int = PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and predicted class ids of a split, the paper's way.

    FCN models (4-D input): every evaluation date's tiles, predicted independently and
    pooled. Sequence models (5-D input, or 'lstm' in the name): one sequence per tile
    present on all evaluation dates, in chronological order.

    Args:
        model: The trained model.
        config: The study-area configuration.
        split: ``test`` or ``valid``.
        normaliser: The run's normalisation.
        level: Processing level; None means the config's.
        model_name: The run name (for the 'lstm' naming convention).
        batch_size: Tiles or sequences per prediction batch.

    Returns:
        (y_true, y_pred), both uint8 (N, H, W).
    """
    parts = split_parts(config, split, level, uses_sequences(model, model_name))
    truth, probabilities = predict_probabilities(model, parts, normaliser, batch_size)
    return truth, to_class_ids(probabilities)


def mean_softmax_predictions(models: Iterable[Callable[[], Any]],
                             predict: Callable[[Any], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean softmax of several models, holding one model in memory at a time.

    Each loader is called, its result is passed to ``predict``, the probabilities are added
    up and the loaded model is freed (and the Keras session cleared) before the next loader.

    Args:
        models: Callables that each load one model (or a tuple holding one, whatever
            ``predict`` takes).
        predict: Returns the softmax outputs of one loaded model (the same shape for all).

    Returns:
        (class ids ``argmax + 1`` of the mean (uint8), the mean probabilities (float32)).

    Raises:
        ValueError: If there are no models or their outputs differ in shape.
    """
    import keras

    total: np.ndarray | None = None
    count = 0
    for load in models:
        loaded = load()
        probabilities = np.asarray(predict(loaded), dtype=np.float32)
        del loaded
        keras.backend.clear_session()
        gc.collect()
        if total is None:
            total = probabilities.astype(np.float64)
        elif total.shape != probabilities.shape:
            raise ValueError(f"model outputs differ in shape: {total.shape} and {probabilities.shape}")
        else:
            total += probabilities
        count += 1
    if total is None:
        raise ValueError("no models to average")
    return to_class_ids(total), (total / count).astype(np.float32)  # argmax in float64: no rounding ties


# ---------------------------------------------------------------------- checks
def check_model_fits(model: Any, record: RunRecord, config: Config) -> bool:
    """Check that a model of a run can be scored on the config's tiles; return whether it takes sequences.

    The run itself must fit the study area (:meth:`RunRecord.check_fits`, done by the caller);
    here the model is checked against its record and a sequence model against the
    evaluation dates and the tile size.

    Raises:
        InputError: If its band or class count differs from its record, or its number of dates
            or window size does not match ``dates.evaluation`` and the tiles.
    """
    record.check_model(model)
    name = record.name
    sequence = uses_sequences(model, name)
    if record.is_forest:  # per pixel: any tile size; a multitemporal forest takes its number of dates
        if sequence and model.timesteps != len(config.evaluation):
            raise InputError(f"model '{name}' stacks {model.timesteps} dates per pixel, but dates.evaluation of "
                             f"{config.source} has {len(config.evaluation)}")
        return sequence
    shape = tuple(model.inputs[0].shape)
    if sequence and len(shape) == 5:
        if shape[1] is not None and shape[1] != len(config.evaluation):
            raise InputError(f"model '{name}' takes sequences of {shape[1]} dates, but dates.evaluation of "
                             f"{config.source} has {len(config.evaluation)}")
        if any(side is not None and side != config.tile_size for side in shape[2:4]):
            raise InputError(f"model '{name}' takes {shape[2]}x{shape[3]} windows, but the tiles are "
                             f"{config.tile_size}x{config.tile_size}")
    return sequence


def _config(config: Config | str | Path | None) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _check_split(split: str) -> None:
    if split not in SCORED_SPLITS:
        raise InputError(f"split '{split}': use one of {', '.join(SCORED_SPLITS)}")


# ---------------------------------------------------------------------- reports
def score_and_report(config: Config, name: str, y_true: np.ndarray, y_pred: np.ndarray, split: str, title: str,
                     say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score predictions, write the split's report in the model's report folder and print it.

    Args:
        config: Study-area configuration (class table, reports root).
        name: Model or ensemble name (folder and file names).
        y_true: GT class ids.
        y_pred: Predicted class ids.
        split: ``test`` or ``valid`` (the validation split's files lie beside the test split's).
        title: First line of the printed table and the plots.
        say: Printer.

    Returns:
        The metrics (the content of ``metrics.json``, ``metrics_valid.json``).
    """
    scored = [c for c in config.classes if c.id != config.unclassifiable_id]
    metrics = {"model": name, "split": split,
               **score(y_true, y_pred, config.class_ids, [c.name for c in config.classes], config.unclassifiable_id)}
    out_dir = config.report_dir(name)
    write_report(metrics, out_dir, name, [c.name for c in scored], title, split)
    say(format_report(metrics, title))  # after writing: a closed console pipe loses nothing
    say(f"report written to {out_dir}")
    return metrics


# ---------------------------------------------------------------------- entry points
def get_metrics_and_cm(model_name: ModelSpec, split: str = "test", model: Any = None,
                       config: Config | str | Path | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score a trained run on a split and write its report (what ``metrics.py`` does).

    The level, bands, class table and normalisation are the run's (its record), checked
    against the study area before anything is predicted.

    Args:
        model_name: The run name (``baseline_cnn_01``, in the config's ``models/``) or a path
            (a ``.keras`` file or run folder anywhere); the run's name names the report folder.
        split: ``test`` or ``valid`` (whose files lie beside the test split's).
        model: An in-memory model of that run (for example just trained); None loads the saved one.
        config: A loaded config, a config path, or None for the default config.
        say: Where the console table goes.

    Returns:
        The metrics (the content of ``metrics.json``).

    Raises:
        InputError: No ground truth in the config, an unknown, non-plain or damaged run, a
            run that does not fit the data, or missing tiles. Nothing is written then.
    """
    config = _config(config)
    _check_split(split)
    config.require_ground_truth("metrics.py")
    record = load_run(model_name, config)
    level = record.check_fits(config)
    if model is None:
        model = record.load_model()
    check_model_fits(model, record, config)
    y_true, y_pred = predict_test_split(model, config, split, record.normaliser, level, model_name=record.name)
    title = (f"model: {record.name}   split: {split}   level: {level}   "
             f"dates: {', '.join(sorted(config.evaluation))}")
    return score_and_report(config, record.name, y_true, y_pred, split, title, say)


def evaluate_ensemble(base_name: str, runs: Sequence[int], split: str = "test",
                      config: Config | str | Path | None = None,
                      say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the mean softmax of runs ``{base_name}_{NN}`` and write the report (what ``ensemble_avg.py`` does).

    Args:
        base_name: The runs' base name (``baseline_cnn``).
        runs: Run numbers.
        split: ``test`` or ``valid``.
        config: A loaded config, a config path, or None for the default config.
        say: Where the console table goes.

    Returns:
        The metrics, written under the ensemble's name ``{base_name}_ensemble_{runs}``.

    Raises:
        InputError: Unknown runs, runs of different levels, bands or class tables, models that
            do not fit the data or mix FCN and sequence models.
    """
    config = _config(config)
    _check_split(split)
    config.require_ground_truth("ensemble_avg.py")
    base = check_model_name(base_name)
    ensemble = ensemble_name(base, runs)
    records = check_same_kind([load_run(f"{base}_{n:02d}", config) for n in runs], ensemble)  # all before any work
    level = records[0].check_fits(config)
    names = [r.name for r in records]
    state: dict[str, Any] = {}

    def loader(record: RunRecord) -> Callable[[], tuple[RunRecord, Any]]:
        return lambda: (record, record.load_model())

    def predict(loaded: tuple[RunRecord, Any]) -> np.ndarray:
        record, model = loaded
        sequence = check_model_fits(model, record, config)
        if state.setdefault("sequence", sequence) != sequence:
            raise InputError(f"runs {names} mix FCN and sequence models")
        if "parts" not in state:
            state["parts"] = split_parts(config, split, level, sequence)
        y_true, probabilities = predict_probabilities(model, state["parts"], record.normaliser)
        state["truth"] = y_true
        say(f"{record.name}: predicted {len(y_true)} {'sequences' if sequence else 'tiles'}")
        return probabilities

    y_pred, _ = mean_softmax_predictions((loader(r) for r in records), predict)
    title = (f"ensemble: {ensemble} (mean softmax of {', '.join(names)})   split: {split}   level: {level}   "
             f"dates: {', '.join(sorted(config.evaluation))}")
    return score_and_report(config, ensemble, state["truth"], y_pred, split, title, say)
