"""Scoring trained models on the held-out tiles: metrics, prediction of a split, reports, ensembles.

The procedure follows the paper: FCN models classify every evaluation date's tiles of the
split independently and the results are pooled; sequence models (FCN + ConvLSTM) classify
one sequence per tile over the evaluation dates. The predicted class is ``argmax + 1``.
Pixels whose ground truth is the unclassifiable class (or 0, outside the study area) are
removed before scoring.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.config import Config
from helpers.errors import InputError
from helpers.io import atomic_path, write_json_atomic, write_text_atomic

PREDICT_BATCH = 32
"""Tiles (or sequences) per ``model.predict`` batch."""

_CHUNK_TILES = 512
"""Tiles normalised at once (bounds the float32 copy of the inputs)."""


# ---------------------------------------------------------------------- metrics
def score(y_true: np.ndarray, y_pred: np.ndarray, class_ids: Sequence[int], class_names: Sequence[str],
          unclassifiable_id: int) -> dict[str, Any]:
    """Score predicted class ids against the ground truth.

    Pixels whose ground truth is ``unclassifiable_id`` or 0 are removed first. A prediction
    of a class outside the scored labels (for example the unclassifiable class) counts as an
    error: it lowers the accuracy, kappa and the recall of the true class, and it is absent
    from the confusion matrix columns, whose rows are normalised by the class support.
    Averages are support-weighted; a ratio with a zero denominator is 0.

    Args:
        y_true: Ground-truth class ids, any shape.
        y_pred: Predicted class ids, the same shape.
        class_ids: Every class id of the class table (in table order).
        class_names: The names of ``class_ids``, in the same order.
        unclassifiable_id: The class removed before scoring.

    Returns:
        ``overall_accuracy``, ``kappa``, ``f1_weighted``, ``precision_weighted``,
        ``recall_weighted``, ``jaccard_weighted``, ``per_class`` (name -> f1, precision,
        recall, jaccard, support), ``confusion_matrix`` (rows: truth, columns: prediction),
        ``confusion_matrix_normalised``, ``labels`` (the scored class ids) and ``n_pixels``.

    Raises:
        ValueError: If the shapes differ, the names do not match the ids, no pixel is left,
            or the ground truth holds an id outside the class table.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in size: {y_true.size} and {y_pred.size}")
    if len(class_ids) != len(class_names):
        raise ValueError("class_ids and class_names differ in length")
    pairs = [(int(i), str(n)) for i, n in zip(class_ids, class_names, strict=True) if int(i) != unclassifiable_id]
    labels = np.array([i for i, _ in pairs], dtype=np.int64)
    names = [n for _, n in pairs]

    keep = (y_true != unclassifiable_id) & (y_true != 0)
    truth = y_true[keep].astype(np.int64)
    pred = y_pred[keep].astype(np.int64)
    n = int(truth.size)
    if n == 0:
        raise ValueError("no pixel left to score after removing the unclassifiable and outside pixels")
    if truth.min() < 0 or pred.min() < 0:
        raise ValueError("class ids must not be negative")
    size = int(max(labels.max(), truth.max(), pred.max(), unclassifiable_id)) + 1
    unknown = np.setdiff1d(np.unique(truth), labels)
    if unknown.size:
        raise ValueError(f"ground truth holds ids outside the class table: {unknown.tolist()}")

    full = np.bincount(truth * size + pred, minlength=size * size).reshape(size, size).astype(np.int64)
    support = full.sum(axis=1)  # true pixels per id
    predicted = full.sum(axis=0)  # predicted pixels per id
    hits = np.diag(full)

    overall = float(hits.sum() / n)
    expected = float((support.astype(np.float64) * predicted).sum() / (float(n) * n))
    kappa = float((overall - expected) / (1.0 - expected)) if expected < 1.0 else 0.0

    tp, sup, pre = hits[labels], support[labels], predicted[labels]
    precision = _ratio(tp, pre)
    recall = _ratio(tp, sup)
    f1 = _ratio(2 * tp, sup + pre)
    jaccard = _ratio(tp, sup + pre - tp)
    weights = sup / sup.sum()

    matrix = full[np.ix_(labels, labels)]
    normalised = _ratio(matrix, sup[:, np.newaxis].repeat(len(labels), axis=1))
    return {
        "overall_accuracy": overall,
        "kappa": kappa,
        "f1_weighted": float(weights @ f1),
        "precision_weighted": float(weights @ precision),
        "recall_weighted": float(weights @ recall),
        "jaccard_weighted": float(weights @ jaccard),
        "per_class": {
            name: {"f1": float(f1[k]), "precision": float(precision[k]), "recall": float(recall[k]),
                   "jaccard": float(jaccard[k]), "support": int(sup[k])}
            for k, name in enumerate(names)
        },
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalised": normalised.tolist(),
        "labels": labels.tolist(),
        "n_pixels": n,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator`` as float64, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# ---------------------------------------------------------------------- inputs of a split
def uses_sequences(model: Any, model_name: str = "") -> bool:
    """Whether a model takes date sequences.

    The input rank decides (5-D = sequences); for a model without a known input the
    original's convention applies: 'lstm' in the model name means a sequence model.
    """
    inputs = getattr(model, "inputs", None)
    if inputs:
        return len(inputs[0].shape) == 5
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
    from helpers.generators import load_tiles

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


# ---------------------------------------------------------------------- runs
def run_level(config: Config, run: str) -> str:
    """Processing level a run was trained on (its saved flags), else the config's."""
    flags = config.models_root / f"{run}_flags.json"
    level = None
    if flags.is_file():
        try:
            level = json.loads(flags.read_text(encoding="utf-8")).get("flags", {}).get("level")
        except (json.JSONDecodeError, AttributeError):
            level = None
    return config.check_level(level)


def run_normaliser(config: Config, run: str, level: str | None):
    """The normalisation a run was trained with (``models/{run}_normalisation.json``), else the config's.

    Raises:
        InputError: If the saved file is unreadable or its band count does not match the level.
    """
    from helpers.generators import Normaliser, normaliser_for
    from helpers.training import run_paths

    level = config.check_level(level)
    n_bands = len(config.bands(level))
    path = run_paths(config, run).normalisation
    if not path.is_file():
        return normaliser_for(config, level, [], None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        normaliser = Normaliser.from_values(data["mean"], data["std"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not a valid normalisation file ({error})") from None
    if normaliser.mean.shape[0] != n_bands:
        raise InputError(f"{path}: {normaliser.mean.shape[0]} bands, but level {level} data have {n_bands}")
    return normaliser


def check_model_fits(model: Any, config: Config, level: str | None, name: str) -> bool:
    """Check that a model can be scored on the config's tiles; return whether it takes sequences.

    Raises:
        InputError: If its band count, class count, window size or number of dates does not
            match the data and the configuration.
    """
    from helpers.models import model_bands, model_classes

    level = config.check_level(level)
    n_bands = len(config.bands(level))
    if model_bands(model) != n_bands:
        raise InputError(f"model '{name}' takes {model_bands(model)} bands, but the level {level} data have "
                         f"{n_bands}")
    if model_classes(model) != len(config.class_ids):
        raise InputError(f"model '{name}' predicts {model_classes(model)} classes, but the class table has "
                         f"{len(config.class_ids)}")
    sequence = uses_sequences(model, name)
    shape = tuple(model.inputs[0].shape)
    if sequence and len(shape) == 5:
        if shape[1] is not None and shape[1] != len(config.evaluation):
            raise InputError(f"model '{name}' takes sequences of {shape[1]} dates, but dates.evaluation has "
                             f"{len(config.evaluation)}")
        if any(side is not None and side != config.tile_size for side in shape[2:4]):
            raise InputError(f"model '{name}' takes {shape[2]}x{shape[3]} windows, but the tiles are "
                             f"{config.tile_size}x{config.tile_size}")
    return sequence


# ---------------------------------------------------------------------- reports
def format_report(metrics: dict[str, Any], title: str = "") -> str:
    """A readable text table of :func:`score`'s metrics (with optional title lines)."""
    names = list(metrics["per_class"])
    width = max(12, *(len(n) for n in names))
    lines = [title] if title else []
    lines += [f"pixels scored: {metrics['n_pixels']:,} (unclassifiable and outside pixels removed)",
              "",
              f"{'overall accuracy':<20}{metrics['overall_accuracy']:.4f}",
              f"{'Cohen kappa':<20}{metrics['kappa']:.4f}",
              "",
              f"{'class':<{width}}  {'F1':>7} {'precision':>9} {'recall':>7} {'Jaccard':>7} {'support':>10}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {m['f1']:>7.4f} {m['precision']:>9.4f} {m['recall']:>7.4f} "
                     f"{m['jaccard']:>7.4f} {m['support']:>10,}")
    lines.append(f"{'weighted average':<{width}}  {metrics['f1_weighted']:>7.4f} {metrics['precision_weighted']:>9.4f} "
                 f"{metrics['recall_weighted']:>7.4f} {metrics['jaccard_weighted']:>7.4f} "
                 f"{metrics['n_pixels']:>10,}")
    labels = [str(i) for i in metrics["labels"]]
    key = ", ".join(f"{i} = {n}" for i, n in zip(labels, names, strict=True))
    for heading, matrix, fmt in (("confusion matrix (rows: ground truth, columns: prediction)",
                                  metrics["confusion_matrix"], "{:>9d}"),
                                 ("confusion matrix normalised by ground-truth row",
                                  metrics["confusion_matrix_normalised"], "{:>9.3f}")):
        lines += ["", heading, f"classes: {key}", "      " + "".join(f"{i:>9}" for i in labels)]
        lines += [f"{i:>6}" + "".join(fmt.format(v) for v in row) for i, row in zip(labels, matrix, strict=True)]
    return "\n".join(lines) + "\n"


def report_paths(out_dir: Path, model_name: str) -> dict[str, Path]:
    """The files :func:`write_report` writes, by role."""
    return {"log": out_dir / f"{model_name}_log.txt",
            "cm_png": out_dir / f"{model_name}_confusion_matrix.png",
            "cm_pdf": out_dir / f"{model_name}_confusion_matrix.pdf",
            "cm_normalised_png": out_dir / f"{model_name}_confusion_matrix_normalised.png",
            "cm_normalised_pdf": out_dir / f"{model_name}_confusion_matrix_normalised.pdf",
            "metrics": out_dir / "metrics.json"}


def write_report(metrics: dict[str, Any], out_dir: Path, model_name: str, class_names: Sequence[str],
                 title: str = "") -> list[Path]:
    """Write the text log, the confusion-matrix plots (PNG and PDF) and ``metrics.json``, atomically.

    Args:
        metrics: From :func:`score` (plus ``model`` and ``split``).
        out_dir: The report folder (created if needed).
        model_name: Prefix of the file names.
        class_names: Names of the scored classes (the confusion matrix order).
        title: First lines of the log (default: model and split).

    Returns:
        The files written.
    """
    paths = report_paths(Path(out_dir), model_name)
    title = title or f"model: {model_name}   split: {metrics.get('split', '?')}"
    write_text_atomic(paths["log"], format_report(metrics, title))
    for normalised in (False, True):
        key = "cm_normalised" if normalised else "cm"
        matrix = np.asarray(metrics["confusion_matrix_normalised" if normalised else "confusion_matrix"])
        _plot_confusion_matrix(matrix, class_names, normalised, f"{model_name} ({metrics.get('split', '')})",
                               [paths[f"{key}_png"], paths[f"{key}_pdf"]])
    write_json_atomic(paths["metrics"], metrics)
    return list(paths.values())


def _plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], normalised: bool, title: str,
                           outputs: Sequence[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * n, 1.6 + 0.8 * n))
    try:
        shown = matrix if normalised else matrix.astype(np.float64)
        image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalised else max(float(shown.max()), 1.0))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
        ax.set_yticks(range(n), labels=list(class_names))
        ax.set_xlabel("predicted class")
        ax.set_ylabel("ground-truth class")
        ax.set_title(("normalised confusion matrix: " if normalised else "confusion matrix: ") + title)
        limit = (1.0 if normalised else max(float(matrix.max()), 1.0)) / 2
        for (row, col), value in np.ndenumerate(matrix):
            ax.text(col, row, f"{value:.2f}" if normalised else f"{int(value)}", ha="center", va="center",
                    fontsize=7, color="white" if value > limit else "black")
        fig.tight_layout()
        for path in outputs:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=150)
    finally:
        plt.close(fig)


def score_and_report(config: Config, name: str, y_true: np.ndarray, y_pred: np.ndarray, split: str, title: str,
                     say: Callable[[str], None] = print) -> dict[str, Any]:
    """Score predictions, write the report under ``reports/logs_and_plots/{name}/`` and print it.

    Args:
        config: Study-area configuration (class table, reports root).
        name: Model or ensemble name (folder and file names).
        y_true: GT class ids.
        y_pred: Predicted class ids.
        split: ``test`` or ``valid``.
        title: First line of the printed table and the plots.
        say: Printer.

    Returns:
        The metrics (the content of ``metrics.json``).
    """
    scored = [c for c in config.classes if c.id != config.unclassifiable_id]
    metrics = {"model": name, "split": split,
               **score(y_true, y_pred, config.class_ids, [c.name for c in config.classes], config.unclassifiable_id)}
    out_dir = config.reports_root / "logs_and_plots" / name
    write_report(metrics, out_dir, name, [c.name for c in scored], title)
    say(format_report(metrics, title))  # after writing: a closed console pipe loses nothing
    say(f"report written to {out_dir}")
    return metrics
