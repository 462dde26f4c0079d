"""Step 03b: a cloud and cloud-shadow mask per date, on the scene grid.

A new date is rarely cloud-free; unmasked, its clouds and shadows are classified as land cover
and can turn up as change. This step writes ``processed/clouds/<DATE>_<LEVEL>_clouds.tif``
(0 clear, 1 cloud, 2 shadow, 255 no data; same CRS, transform and shape as the scene stack, with
a colour table and category names for a GIS) with the detector configured for the level
(:mod:`helpers.data.cloud_detectors`), a JSON summary and a PNG map beside it, and prints the
share of each class. The drivers (07, 08a, 08b) run it for
every date they process, right after step 01.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.figures import CLOUD_MASK_CATEGORIES, write_mask_figure
from helpers.core.grid import grid_of_raster
from helpers.core.io import RASTER_ERRORS, open_raster, write_json_atomic, write_raster
from helpers.data import freshness
from helpers.data.cloud_detectors import MASK_CLASSES, NODATA, make_detector, shadows_near_clouds
from helpers.data.pipeline_base import Say, StepResult, fingerprint, print_line, record, require, up_to_date

__all__ = ["class_counts", "class_shares", "cloud_mask_fingerprint", "cloud_masks", "mask_figure_path",
           "mask_summary_path", "read_layers", "shares_line"]


def mask_summary_path(config: Config, date: str, level: str) -> Path:
    """The JSON summary beside a mask (``<DATE>_<LEVEL>_clouds.json``)."""
    return config.cloud_mask_path(date, level).with_suffix(".json")


def mask_figure_path(config: Config, date: str, level: str) -> Path:
    """The PNG map beside a mask (``<DATE>_<LEVEL>_clouds.png``)."""
    return config.cloud_mask_path(date, level).with_suffix(".png")


def cloud_mask_fingerprint(config: Config, date: str, level: str) -> freshness.Fingerprint:
    """What a date's mask is made from: the scene and the level's detector (and the snow rule for SCL)."""
    name = config.clouds.detector(level)
    values: dict[str, Any] = {"sentinel.level": level, f"clouds.detector_{level.lower()}": name}
    if name == "scl":
        values["clouds.mask_snow"] = config.clouds.mask_snow
    values["clouds.shadow_distance"] = config.clouds.shadow_distance
    return fingerprint(config, values, [config.scene_path(date, level)])


def read_layers(scene: Path, stack_bands: tuple[str, ...], wanted: tuple[str, ...], detector: str) -> np.ndarray:
    """The layers a detector needs, read by name from a scene stack.

    Args:
        scene: The stack (step 01 output).
        stack_bands: The level's layer order (``config.bands(level)``).
        wanted: The detector's layers.
        detector: Its name (for messages).

    Returns:
        uint16 (len(wanted), rows, cols).

    Raises:
        InputError: If the stack's layer count or names do not match the level, or a needed
            layer is missing.
    """
    with open_raster(scene) as src:
        names = tuple(d for d in src.descriptions if d) or stack_bands
        missing = [band for band in wanted if band not in names]
        if missing:
            raise InputError(f"{scene}: no layer {', '.join(missing)} (the {detector} cloud detector needs "
                             f"{', '.join(wanted)}; the stack has {', '.join(names)})")
        if src.count != len(stack_bands):
            raise InputError(f"{scene}: has {src.count} layers, level needs {len(stack_bands)} "
                             f"({', '.join(stack_bands)})")
        try:
            return src.read([names.index(band) + 1 for band in wanted]).astype(np.uint16, copy=False)
        except RASTER_ERRORS as error:
            raise InputError(f"{scene}: corrupt raster data ({str(error).splitlines()[0]})") from None


def class_counts(mask: np.ndarray) -> dict[str, int]:
    """Pixels per mask class, by class name (every class listed, also with 0)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return {name: int(counts[value]) for value, name in MASK_CLASSES.items()}


def class_shares(mask: np.ndarray) -> dict[str, float]:
    """Share of clear, cloud and shadow among the pixels with data, and of no data among all."""
    counts = class_counts(mask)
    total = sum(counts.values())
    with_data = total - counts[MASK_CLASSES[NODATA]]
    shares = {name: counts[name] / with_data if with_data else 0.0
              for value, name in MASK_CLASSES.items() if value != NODATA}
    shares[MASK_CLASSES[NODATA]] = counts[MASK_CLASSES[NODATA]] / total if total else 0.0
    return shares


def shares_line(shares: dict[str, float]) -> str:
    """``clear 91.2 %, cloud 6.1 %, shadow 2.7 % of the pixels with data; no data 14.0 %``."""
    classes = ", ".join(f"{name} {100 * share:.1f} %" for name, share in shares.items() if name != "no data")
    return f"{classes} of the pixels with data; no data {100 * shares['no data']:.1f} %"


def cloud_masks(config: Config, date: str, level: str | None = None, force: bool = False,
                say: Say = print_line) -> StepResult:
    """Step 03b: the cloud and shadow mask of one date.

    Args:
        config: The study area.
        date: The date (its scene must exist: step 01).
        level: Processing level (default: the config's).
        force: Rebuild even if up to date.
        say: Where messages go.

    Returns:
        The mask path, whether the step was skipped, and the class shares as a line.

    Raises:
        InputError: If the scene is missing or lacks a layer the detector needs, or the
            detector does not work on the level or is not installed.
    """
    level = config.check_level(level)
    out = config.cloud_mask_path(date, level)
    name = config.clouds.detector(level)
    say(f"[03b] cloud and shadow mask {date} {level} ({name})")
    current = cloud_mask_fingerprint(config, date, level)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    scene = require(config.scene_path(date, level), f"run 01_clip_sentinel.py {date} {level} first")
    detector = make_detector(name, level, config.clouds)
    layers = read_layers(scene, config.bands(level), detector.bands, name)
    grid = grid_of_raster(scene)
    started = time.perf_counter()
    mask = detector.predict(layers, grid.resolution)
    del layers
    if mask.shape != (grid.height, grid.width) or mask.dtype != np.uint8:
        raise ValueError(f"detector {name} returned a {mask.dtype} {mask.shape} mask for a "
                         f"{grid.height}x{grid.width} scene")
    mask = shadows_near_clouds(mask, grid.resolution, config.clouds.shadow_distance)
    seconds = time.perf_counter() - started
    shares = class_shares(mask)
    summary = {"date": date, "level": level, "detector": name, "scene": scene.name,
               "pixels": class_counts(mask), "shares": {k: round(v, 6) for k, v in shares.items()},
               "values": {str(value): label for value, label in MASK_CLASSES.items()}}
    write_json_atomic(mask_summary_path(config, date, level), summary)
    tags = {"DATE": date, "LEVEL": level, "DETECTOR": name, "SCENE": scene.name,
            "VALUES": ", ".join(f"{value} {label}" for value, label in MASK_CLASSES.items()),
            **{f"SHARE_{label.upper().replace(' ', '_')}": f"{share:.6f}" for label, share in shares.items()}}
    profile = {**grid.profile(), "nodata": NODATA}
    title = f"Clouds and shadows {date} {level} ({name}): {shares_line(shares).split(' of the')[0]}"
    write_mask_figure(mask_figure_path(config, date, level), mask, profile, title)
    write_raster(out, mask, profile, ["clouds"], tags, categories=CLOUD_MASK_CATEGORIES)  # last: the record's output
    record(config, out, current)
    line = shares_line(shares)
    say(f"  wrote {out.name}: {line} ({seconds:.1f} s)")
    return StepResult(out, False, line)
