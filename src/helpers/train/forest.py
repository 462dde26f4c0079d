"""Training a per-pixel random forest on the deep models' tiles: the pixels, the class weights, the saved run.

This baseline is an addition, not the paper's. Both forests learn from the training split of
the same tile cache as the deep models (:func:`helpers.train.tile_cache.load_tiles`):

* the monotemporal forest (``random_forest_mono``) from the pixels of every date of
  ``dates.fcn_training``, pooled, as the FCN is trained on single tiles of those dates;
* the multitemporal forest (``random_forest_multi``) from the pixels of the tiles present on
  every date of ``dates.fixed_sequence``, the dates' bands stacked per pixel in chronological
  order, as the fixed-sequence FCN+ConvLSTM sees them. The random-sequence model's variable
  sequences have no forest of their own: a forest needs one feature layout, so the fixed
  sequence's dates are used.

Pixels labelled 0 (outside the study area) and pixels of classes with weight 0 (the
unclassifiable class) are left out, as the deep models' loss ignores them; at most
``max_pixels`` of the rest are drawn uniformly at random (``--seed``). The class weights are
the deep models' (:func:`helpers.train.class_weights.class_weights`: inverse pixel counts of
the class table), passed to scikit-learn as ``class_weight``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.config import Config, load_config
from helpers.core.errors import InputError
from helpers.core.io import write_json_atomic, write_text_atomic
from helpers.core.layout import RunPaths
from helpers.train.class_weights import class_weights
from helpers.train.forest_model import (
    FOREST_SUFFIX,
    MONO_SCRIPT,
    MULTI_SCRIPT,
    ForestModel,
    machine_jobs,
    save_forest,
    stack_dates,
)
from helpers.train.normalisation import Normaliser
from helpers.train.run_record import make_record
from helpers.train.runs import next_run_name
from helpers.train.tile_cache import load_tiles
from helpers.train.training import (
    MAX_SEED,
    Say,
    check_class_ids,
    check_seed,
    require_training_data,
    save_run_metadata,
    say_flushed,
)

KINDS: dict[str, tuple[str, str, int]] = {"mono": (MONO_SCRIPT, "dates.fcn_training", 1),
                                          "multi": (MULTI_SCRIPT, "dates.fixed_sequence", 2)}
"""``--kind``: its run family, the ``[dates]`` key it trains on and how many dates it needs at least."""
MAX_PIXELS = 60_000
TREES = 100
MIN_SAMPLES_LEAF = 2


# ---------------------------------------------------------------------- the pixels
@dataclass(frozen=True)
class PixelSample:
    """Training pixels of a forest.

    Attributes:
        x: uint16 ``(pixels, features)``: one date's bands, or the dates' bands stacked date by date.
        y: uint8 ``(pixels,)`` class ids.
        available: Labelled pixels of weighted classes before the budget was applied.
    """

    x: np.ndarray
    y: np.ndarray
    available: int


def _kept(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pixels a forest learns from: a class id of the table whose weight is above 0 (never 0, outside)."""
    lookup = np.zeros(256, dtype=bool)
    lookup[1: len(weights) + 1] = weights > 0
    return lookup[np.asarray(labels, dtype=np.uint8)]


def _draw(total: int, max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_pixels`` of ``total`` candidates, drawn without replacement."""
    if total <= max_pixels:
        return np.arange(total)
    return np.sort(rng.choice(total, size=max_pixels, replace=False))


def training_pixels(config: Config, dates: Sequence[str], level: str, sequence: bool, max_pixels: int,
                    rng: np.random.Generator, split: str = "train") -> PixelSample:
    """Draw a forest's training pixels from the tile cache of a split.

    Args:
        config: The study area.
        dates: The dates (chronological order is used for sequences).
        level: Processing level of the tiles.
        sequence: Stack the dates per pixel (tiles present on every date), else pool them.
        max_pixels: Pixel budget.
        rng: Draws the pixels.
        split: The tiles' split.

    Raises:
        InputError: Missing tiles, no tile present on every date, or no labelled pixel.
    """
    weights = class_weights(config)
    sets = [load_tiles(config, date, split, level) for date in (sorted(dates) if sequence else dates)]
    n_bands = len(config.bands(level))
    if not sequence:
        kept = [np.flatnonzero(_kept(tiles.y.reshape(-1), weights)) for tiles in sets]
        offsets = np.cumsum([0, *(len(k) for k in kept)])
        picked = _draw(int(offsets[-1]), max_pixels, rng)
        owner = np.searchsorted(offsets, picked, side="right") - 1
        parts_x, parts_y = [], []
        for index, (tiles, candidates) in enumerate(zip(sets, kept, strict=True)):
            pixels = candidates[picked[owner == index] - offsets[index]]
            parts_x.append(np.asarray(tiles.x.reshape(-1, n_bands)[pixels]))
            parts_y.append(np.asarray(tiles.y.reshape(-1)[pixels]))
        x, y, available = np.concatenate(parts_x), np.concatenate(parts_y), int(offsets[-1])
    else:
        common = sorted(set.intersection(*(set(tiles.endings) for tiles in sets)))
        if not common:
            raise InputError(f"no {split} tile is present on all of the dates {', '.join(sorted(dates))}")
        rows = [np.searchsorted(np.asarray(tiles.endings), np.asarray(common)) for tiles in sets]  # endings sorted
        area = sets[0].y.shape[1] * sets[0].y.shape[2]
        labels = np.asarray(sets[0].y.reshape(len(sets[0]), area)[rows[0]]).reshape(-1)  # the same GT every date
        candidates = np.flatnonzero(_kept(labels, weights))
        pixels = candidates[_draw(len(candidates), max_pixels, rng)]
        tile, pixel = np.divmod(pixels, area)
        stacked = np.stack([np.asarray(tiles.x.reshape(len(tiles), area, n_bands)[r[tile], pixel])
                            for tiles, r in zip(sets, rows, strict=True)], axis=1)
        x, y, available = stack_dates(stacked), labels[pixels], len(candidates)
    if not len(y):
        raise InputError(f"{config.source}: no labelled {split} pixel of a weighted class on "
                         f"{', '.join(dates)} (every pixel is 0 or unclassifiable)")
    return PixelSample(x, y.astype(np.uint8), available)


def forest_class_weights(weights: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """scikit-learn's ``class_weight`` of the classes present in ``labels`` (``weights[id - 1]``)."""
    return {int(c): float(weights[int(c) - 1]) for c in np.unique(labels)}


# ---------------------------------------------------------------------- the run
@dataclass
class ForestRun:
    """A planned forest run (nothing written yet).

    Attributes:
        script: Run family (``random_forest_mono`` or ``random_forest_multi``).
        config: The study area.
        paths: The run's outputs (its model is ``models/{run}.skops``).
        level: Processing level.
        dates: The dates it trains on.
        settings: ``max_pixels``, ``trees``, ``min_samples_leaf``, ``n_jobs``.
        seed: The seed (pixels and trees), or None.
        flags: The flags as given.
        say: Printer.
    """

    script: str
    config: Config
    paths: RunPaths
    level: str
    dates: tuple[str, ...]
    settings: dict[str, int]
    seed: int | None
    flags: dict[str, Any]
    say: Say = say_flushed

    @property
    def run(self) -> str:
        """The run name, ``{script}_{NN}``."""
        return self.paths.run

    @property
    def sequence(self) -> bool:
        """Whether the dates are stacked per pixel."""
        return self.script == MULTI_SCRIPT


def build_parser(description: str) -> argparse.ArgumentParser:
    """The flags of ``random_forest.py``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kind", choices=tuple(KINDS), default="mono",
                        help="mono: one date's bands per pixel, the dates of dates.fcn_training pooled (runs "
                             f"{MONO_SCRIPT}_NN); multi: the dates of dates.fixed_sequence stacked per pixel "
                             f"(runs {MULTI_SCRIPT}_NN) (default: mono)")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    parser.add_argument("--level", default=None, help="processing level L1C or L2A (default: the config's)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"training pixels drawn at random from the training tiles (default {MAX_PIXELS})")
    parser.add_argument("--trees", type=int, default=TREES, help=f"n_estimators (default {TREES})")
    parser.add_argument("--min-samples-leaf", type=int, default=MIN_SAMPLES_LEAF,
                        help=f"min_samples_leaf (default {MIN_SAMPLES_LEAF})")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="cores for fitting and predicting (default: every core this process may use)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"seed of the pixel draw and the trees (0..{MAX_SEED}): same seed, same forest")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the test-split evaluation (metrics.py) after training")
    return parser


def plan_forest_run(description: str, argv: Sequence[str] | None, say: Say = say_flushed) -> ForestRun:
    """Parse and check the flags and the config, and name the run. Writes nothing.

    Raises:
        InputError: A bad flag (naming it), a config without ground truth or with class ids
            other than 1..n, or too few dates in the ``[dates]`` key of the kind.
    """
    args = build_parser(description).parse_args(argv)
    config = load_config(args.config)
    require_training_data(config)
    check_class_ids(config)
    level = config.check_level(args.level)
    script, key, minimum = KINDS[args.kind]
    dates = tuple(getattr(config, key.removeprefix("dates.")))
    if script == MULTI_SCRIPT:
        dates = tuple(sorted(dates))  # the order of the stacked features, recorded
    if len(dates) < minimum:
        raise InputError(f"{config.source}: random_forest.py --kind {args.kind} needs at least {minimum} "
                         f"date{'s' if minimum > 1 else ''} in {key} (it has {len(dates)})")
    for flag, value in (("--max-pixels", args.max_pixels), ("--trees", args.trees),
                        ("--min-samples-leaf", args.min_samples_leaf), ("--n-jobs", args.n_jobs)):
        if value is not None and value < 1:
            raise InputError(f"{flag} {value}: must be at least 1")
    seed = check_seed(args.seed)
    settings = {"max_pixels": args.max_pixels, "trees": args.trees, "min_samples_leaf": args.min_samples_leaf,
                "n_jobs": args.n_jobs or machine_jobs()}
    paths = config.run_paths(next_run_name(config.models_root, script), FOREST_SUFFIX)
    return ForestRun(script, config, paths, level, dates, settings, seed, vars(args), say)


def fit_forest(run: ForestRun, sample: PixelSample) -> ForestModel:
    """Fit ``RandomForestClassifier(n_estimators, min_samples_leaf, class_weight)`` on the pixels."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=run.settings["trees"],
                                    min_samples_leaf=run.settings["min_samples_leaf"],
                                    class_weight=forest_class_weights(class_weights(run.config), sample.y),
                                    n_jobs=run.settings["n_jobs"], random_state=run.seed)
    forest.fit(sample.x.astype(np.float32), sample.y)
    return ForestModel(forest, len(run.config.bands(run.level)), len(run.dates) if run.sequence else 1,
                       run.config.class_ids)


def train_forest(run: ForestRun) -> tuple[ForestModel, dict[str, Any]]:
    """Draw the pixels, fit the forest and save the run: config copy, flags, model with record, log.

    Returns:
        The fitted model and the training summary (also written as ``{run}_training_summary.json``).
    """
    rng = np.random.default_rng(run.seed)
    started = time.perf_counter()
    sample = training_pixels(run.config, run.dates, run.level, run.sequence, run.settings["max_pixels"], rng)
    drawn = time.perf_counter()
    run.say(f"{run.run}: {len(sample.y):,} of {sample.available:,} labelled training pixels of "
            f"{len(run.dates)} date(s), {sample.x.shape[1]} features, {run.settings['trees']} trees, "
            f"{run.settings['n_jobs']} job(s)" + ("" if run.seed is None else f", seed {run.seed}"))
    model = fit_forest(run, sample)
    fitted = time.perf_counter()
    summary = forest_summary(run, sample, drawn - started, fitted - drawn)
    save_forest_run(run, model, summary)
    run.say(f"{run.run}: fitted in {summary['fit_time_s']:.1f} s (pixels drawn in {summary['sample_time_s']:.1f} s); "
            f"model {run.paths.model}")
    return model, summary


def forest_summary(run: ForestRun, sample: PixelSample, sample_time: float, fit_time: float) -> dict[str, Any]:
    """What the training log holds: the pixels per class, the settings and the timings."""
    import sklearn

    ids, counts = np.unique(sample.y, return_counts=True)
    return {"run": run.run, "script": run.script, "dates": list(run.dates), "level": run.level,
            "pixels": len(sample.y), "pixels_available": sample.available,
            "pixels_per_class": {str(int(i)): int(n) for i, n in zip(ids, counts, strict=True)},
            "features": int(sample.x.shape[1]), **run.settings, "seed": run.seed,
            "sample_time_s": round(sample_time, 2), "fit_time_s": round(fit_time, 2),
            "wall_time_s": round(sample_time + fit_time, 2), "scikit_learn": sklearn.__version__,
            "python": platform.python_version()}


def save_forest_run(run: ForestRun, model: ForestModel, summary: dict[str, Any]) -> None:
    """Write the run: the config copy and flags beside the model, the model (record inside) last."""
    n_bands = len(run.config.bands(run.level))
    identity = Normaliser.from_values([0.0] * n_bands, [1.0] * n_bands)  # trees need no standardisation
    record = make_record(run.config, run.run, run.script, run.level, identity, run.dates, run.flags)
    record = dataclasses.replace(record, model_path=run.paths.model)
    save_run_metadata(run.config, run.script, run.paths, run.flags, run.settings)
    save_forest(model, run.paths.model, record)
    run.paths.log_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.paths.log_file, "".join(f"{k}: {v}\n" for k, v in summary.items()))
    write_json_atomic(run.paths.summary_json, summary)


def newest_forest(models_root: Path, script: str) -> str | None:
    """Name of the newest saved forest of a run family (highest NN), or None."""
    pattern = re.compile(rf"^{re.escape(script)}_(\d+){re.escape(FOREST_SUFFIX)}$")
    found = sorted((int(m.group(1)), p.stem) for p in models_root.glob(f"*{FOREST_SUFFIX}")
                   if (m := pattern.match(p.name)))
    return found[-1][1] if found else None
