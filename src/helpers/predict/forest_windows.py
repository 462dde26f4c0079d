"""A random-forest run in the scene pass of classify.py, as a :class:`~helpers.predict.window_models.WindowModel`.

The forest goes through the same pass over the scene as the deep models
(:func:`helpers.predict.sliding_windows.predict_scene`): windows read in row chunks, every
date of a window predicted once for all the combinations that hold it, maps handed out in
blocks of scene rows, so memory is bounded by the window and the scene width.

* The monotemporal forest is split like an FCN: ``encode`` gives each date's per-pixel
  probabilities, ``combine`` their mean over the combination's dates (the FCN's rule).
* The multitemporal forest needs the whole sequence: ``encode`` passes the band values on,
  ``combine`` stacks the combination's dates per pixel (chronological order, as trained) and
  predicts; so a combination must have as many dates as the forest was trained on.

A forest sees one pixel at a time, so the windows need no margin: :func:`per_pixel_geometry`
keeps the window and drops the margin, and every pixel is predicted exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from helpers.core.errors import InputError
from helpers.predict.window_models import WindowModel
from helpers.train.forest_model import MULTI_SCRIPT, ForestModel
from helpers.train.normalisation import Normaliser
from helpers.train.run_record import RunRecord


def forest_window_model(model: ForestModel, normaliser: Normaliser) -> WindowModel:
    """A forest as a :class:`WindowModel` (any window size: it predicts pixel by pixel).

    Args:
        model: The loaded forest.
        normaliser: The run's normalisation (the identity of a forest run: mean 0, std 1).
    """
    if not model.takes_sequences:
        return WindowModel.fcn(model.predict, normaliser)

    # (n, dates, w, w, bands) -> (n, w, w, classes); trained on all the dates at once
    return WindowModel.sequence(model.predict, normaliser, fixed_dates=True)


def per_pixel_geometry(window: int, margin: int) -> tuple[int, int]:
    """Window and margin of a per-pixel model: the same window, no margin (no context to discard)."""
    del margin
    return window, 0


def check_forest_combinations(record: RunRecord, combinations: Mapping[int, Sequence[str]], what: str) -> None:
    """Check that a multitemporal forest can classify every combination (as many dates as it was trained on).

    Args:
        record: The forest run.
        combinations: The dates of each combination to classify, by combination number.
        what: The config key that lists them (``dates.combinations``), for the message.

    Raises:
        InputError: Naming the run, its dates and the first combination of another length.
    """
    if record.script != MULTI_SCRIPT:
        return
    for k, dates in combinations.items():
        if len(dates) != len(record.dates):
            raise InputError(f"model '{record.name}' stacks {len(record.dates)} dates per pixel "
                             f"({', '.join(record.dates)}), but combination {k} of {what} has {len(dates)}; "
                             "classify it with the monotemporal forest or a sequence model")
