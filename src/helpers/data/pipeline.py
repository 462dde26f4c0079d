"""The pre-processing steps of the original (01 ... 08b) on the paths of a configuration.

Each function is one step: it checks its inputs, skips its work only when its output is up to
date (it exists and was made from the current config values and input files, see
:mod:`helpers.data.freshness`; ``force`` rebuilds regardless), writes its outputs atomically and
reports in a few printed lines. Raw inputs are only ever read. Steps 01-04 and the drivers
(07, 08a, 08b) live here; the tile steps (05b, the split, 05) in :mod:`helpers.data.pipeline_tiles`
and the cloud masks (03b) in :mod:`helpers.data.clouds`, re-exported here so that callers import
one module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from tqdm import tqdm

from helpers.core.config import Config, format_threshold
from helpers.core.errors import InputError
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.core.io import GTIFF_PROFILE, atomic_path, read_raster, write_json_atomic, write_raster
from helpers.core.vector import check_vector_file, read_area_of_interest
from helpers.data import freshness
from helpers.data.cloud_detectors import CLEAR
from helpers.data.clouds import cloud_mask_fingerprint, cloud_masks
from helpers.data.ground_truth import (
    area_mask,
    extra_area_mask,
    mask_shoreline,
    min_ndwi_at,
    rasterize_ground_truth,
    scene_area_mask,
    water_sweep_line,
)
from helpers.data.pipeline_base import (
    Say,
    StepResult,
    check_use,
    fingerprint,
    is_current,
    print_line,
    record,
    reference_scene,
    require,
    study_area,
    up_to_date,
)
from helpers.data.pipeline_tiles import (
    read_split,
    read_tile_endings,
    reference_selection,
    save_all_tile_filenames,
    split_into_tiles,
    subset_split,
    tiles_fingerprint,
    windows_fingerprint,
)
from helpers.data.sentinel import declare_baseline, find_product, ingest_product, open_product, unknown_baseline_warning
from helpers.data.tiling import check_tile_fits

__all__ = [
    "Say", "StepResult", "check_run_inputs", "clip_sentinel", "cloud_masks", "create_area_tif", "full_pipeline",
    "is_date_complete",
    "merge_tifs", "prepare_ground_truth", "process_batch", "rasterize_shapefile", "read_split", "read_tile_endings",
    "reference_selection", "restrict_water_area", "save_all_tile_filenames", "split_into_tiles", "study_area",
    "subset_split",
]


# ---------------------------------------------------------------------- step 01
def scene_fingerprint(config: Config, date: str, level: str, product: Path) -> freshness.Fingerprint:
    """What a date's scene is made from: the product, the AOI, the grid and a declared baseline."""
    values = {"sentinel.level": level, "sentinel.crs": config.crs, "sentinel.resolution": config.resolution,
              f"sentinel.baselines.{date}": config.baselines.get(date)}
    return fingerprint(config, values, [config.aoi_file, product])


def clip_sentinel(config: Config, date: str, level: str | None = None, force: bool = False,
                  say: Say = print_line, progress: bool = False) -> StepResult:
    """Step 01: ingest the product of a date, resample to 10 m, clip to the AOI, write one stack.

    A baseline declared in ``[sentinel.baselines]`` overrides the product's; a product sensed
    on or after 2022-01-25 whose baseline stays unknown is written with a warning (its +1000
    offset cannot be removed), also stored in the scene's tags and the step's summary.
    """
    level = config.check_level(level)
    out = config.scene_path(date, level)
    say(f"[01] clip Sentinel-2 {date} {level}")
    path = find_product(config.raw_sentinel_dir(level), date)
    current = scene_fingerprint(config, date, level, path)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    aoi, grid = study_area(config)
    bands = config.bands(level)
    product = open_product(path, bands)
    if date in config.baselines:
        product.metadata = declare_baseline(product.metadata, config.baselines[date])
    warning = unknown_baseline_warning(product, date, config.source)
    extra = {"BASELINE_WARNING": warning} if warning else None
    tags = ingest_product(product, bands, grid, aoi, out, progress=progress, extra_tags=extra)
    record(config, out, current)
    summary = (f"{out.name}: {len(bands)} bands, {grid.width}x{grid.height} px, sensed {tags['SENSING_TIME']}, "
               f"baseline {tags['PROCESSING_BASELINE']} ({tags['BASELINE_SOURCE']}), "
               f"offset removed: {tags['RADIOMETRIC_OFFSET_REMOVED']}")
    if warning:
        say(f"  {warning}")
        summary += "; baseline unknown after 2022-01-25: +1000 offset kept"
    covered = float(tags["AOI_COVERED"])
    if covered < 1 - 0.5 / (grid.width * grid.height):  # more than half a pixel of the AOI outside the product
        summary += f"; the product covers {100 * covered:.1f} % of the AOI, the rest is no data (0)"
    say(f"  wrote {summary}")
    return StepResult(out, False, summary)


# ---------------------------------------------------------------------- step 02
def _class_table(config: Config) -> list:
    """The part of the class table that rasterisation uses: ids and the GT values mapped to them."""
    return [[c.id, list(c.gt_values)] for c in config.classes]


def rasterize_shapefile(config: Config, level: str | None = None, force: bool = False,
                        say: Say = print_line) -> StepResult:
    """Step 02: burn the GT class attribute onto the scene grid (``gt_rasterized.tif``)."""
    level = config.check_level(level)
    out = config.gt_rasterized_path
    config.require_ground_truth("step 02")
    say(f"[02] rasterize ground truth {config.gt_file.name} ('{config.gt_attribute}')")
    values = {"ground_truth.attribute": config.gt_attribute, "classes": _class_table(config),
              "sentinel.crs": config.crs, "sentinel.resolution": config.resolution}
    current = fingerprint(config, values, [config.gt_file, config.aoi_file])
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    _, grid = study_area(config)
    reference = config.scene_path(config.reference, level)
    if reference.exists():
        check_same_grid(reference, grid, config.aoi_file)
    gt = rasterize_ground_truth(config, grid)
    if not gt.any():
        raise InputError(f"{config.gt_file}: no ground-truth polygon covers a pixel of the scene grid")
    write_raster(out, gt, grid.profile(), ["gt"], {"SOURCE": config.gt_file.name, "ATTRIBUTE": config.gt_attribute})
    record(config, out, current)
    counts = np.bincount(gt.ravel(), minlength=256)
    listing = ", ".join(f"{c.id}:{int(counts[c.id])}" for c in config.classes)
    say(f"  wrote {out.name}: {grid.width}x{grid.height} px, class pixels {listing}")
    return StepResult(out, False, listing)


# ---------------------------------------------------------------------- step 02b
def restrict_water_area(config: Config, level: str | None = None, force: bool = False,
                        say: Say = print_line) -> StepResult:
    """Step 02b: NDWI shoreline masking for the threshold sweep; the configured one becomes ``gt.tif``."""
    level = config.check_level(level)
    config.require_ground_truth("step 02b")
    say(f"[02b] restrict water area by NDWI over {len(config.water_dates)} images")
    values = {"sentinel.level": level, "water_mask.thresholds": config.water_thresholds,
              "water_mask.threshold": config.water_threshold, "water_mask.dates": config.water_dates,
              "ground_truth.water_id": config.water_id, "ground_truth.unclassifiable_id": config.unclassifiable_id}
    current = fingerprint(config, values, [config.gt_rasterized_path,
                                           *(config.scene_path(d, level) for d in config.water_dates)])
    if up_to_date(config, config.gt_path, current, force, say):
        return StepResult(config.gt_path, True)
    source = require(config.gt_rasterized_path, "run 02_rasterize_shapefile.py first")
    gt, profile = read_raster(source, 1)
    grid = grid_of_raster(source)
    scenes = [require(config.scene_path(d, level), f"run 01_clip_sentinel.py {d} {level} first")
              for d in config.water_dates]
    bands = config.bands(level)
    water = gt == config.water_id
    minimum = min_ndwi_at(water, scenes, bands.index("B03") + 1, bands.index("B08") + 1, grid)
    results = mask_shoreline(gt, minimum, config.water_thresholds, config.water_id, config.unclassifiable_id)
    table = {}
    for result in results:
        write_raster(config.gt_masked_path(result.threshold), result.gt, profile, ["gt"],
                     {"NDWI_THRESHOLD": format_threshold(result.threshold)})
        table[format_threshold(result.threshold)] = {"water_kept": result.water_kept,
                                                     "water_total": result.water_total,
                                                     "share_kept": round(result.share_kept, 4)}
        say(water_sweep_line(format_threshold(result.threshold), result.water_kept, result.water_total))
    chosen = config.water_threshold
    final = gt if chosen is None else next(r.gt for r in results if abs(r.threshold - chosen) < 1e-9)
    write_json_atomic(config.water_mask_summary_path,
                      {"dates": list(config.water_dates), "chosen_threshold": None if chosen is None
                       else format_threshold(chosen), "thresholds": table})
    write_raster(config.gt_path, final, profile, ["gt"],
                 {"NDWI_THRESHOLD": "none" if chosen is None else format_threshold(chosen)})
    record(config, config.gt_path, current)
    label = "no masking" if chosen is None else f"threshold {format_threshold(chosen)}"
    say(f"  wrote {config.gt_path.name} ({label})")
    return StepResult(config.gt_path, False, label)


# ---------------------------------------------------------------------- step 03
AREA_RULES = {
    "aoi": "where the reference scene has data inside the AOI",
    "gt": "where the GT is labelled and the reference scene has data",
}
"""``ground_truth.classification_area`` -> what ``area.tif`` covers (for the printed line)."""


def area_fingerprint(config: Config, level: str) -> freshness.Fingerprint:
    """What the area masks are made from (the GT only under the "gt" rule)."""
    values = {"sentinel.level": level, "dates.reference": config.reference,
              "ground_truth.classification_area": config.classification_area,
              "sentinel.crs": config.crs}
    inputs = [config.scene_path(config.reference, level), config.aoi_file, *config.extra_aoi_files]
    if config.classification_area == "gt":
        inputs.append(config.gt_path)
    return fingerprint(config, values, inputs)


def create_area_tif(config: Config, level: str | None = None, force: bool = False,
                    say: Say = print_line) -> StepResult:
    """Step 03: ``area.tif`` (the area to classify) and the extra-AOI mask.

    ``ground_truth.classification_area = "aoi"`` (default, also the only rule without GT): the
    AOI where the reference scene has data. ``"gt"`` (the original): only the labelled pixels.
    """
    level = config.check_level(level)
    out = config.area_path
    rule = config.classification_area
    say(f"[03] create area mask (classification_area = \"{rule}\": {AREA_RULES[rule]})")
    if rule == "gt" and not config.has_ground_truth:
        raise InputError(f"{config.source}: config key 'ground_truth.classification_area': \"gt\" needs ground "
                         f"truth, but the config has no ground_truth.file; use \"aoi\"")
    current = area_fingerprint(config, level)
    extra_missing = bool(config.extra_aoi_files) and not config.extra_area_path.exists()
    if not extra_missing and up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    reference = reference_scene(config, level)
    grid = grid_of_raster(reference)
    band1, profile = read_raster(reference, 1)
    aoi, _ = study_area(config)
    aoi_pixels = sum(int(grid.inside_mask(aoi, block).sum()) for block in grid.row_blocks(1024))
    if rule == "gt":
        gt_path = require(config.gt_path, "run 02b_restrict_water_area.py first")
        check_same_grid(gt_path, grid, reference)
        area = area_mask(read_raster(gt_path, 1)[0], band1)
    else:
        area = scene_area_mask(band1)
    if config.extra_aoi_files:
        areas = [read_area_of_interest(path, config.crs) for path in config.extra_aoi_files]
        extra = extra_area_mask(areas, grid, band1)
        write_raster(config.extra_area_path, extra, profile, ["extra_area"])
        say(f"  wrote {config.extra_area_path.name}: {int(extra.sum()):,} px")
    write_raster(out, area, profile, ["area"], {"REFERENCE": reference.name, "CLASSIFICATION_AREA": rule})
    record(config, out, current)
    pixels = int(area.sum())
    share = 100 * pixels / aoi_pixels if aoi_pixels else 0.0
    say(f"  wrote {out.name}: {pixels:,} px in the area ({share:.1f} % of the AOI's {aoi_pixels:,} px)")
    return StepResult(out, False, f"{pixels} px")


# ---------------------------------------------------------------------- step 04
def _merge_layers(config: Config, use: str) -> list[tuple[Path, str]]:
    """The layers appended to the bands: gt (TRAIN), or area (+ extra area) (NEW)."""
    if use == "TRAIN":
        return [(config.gt_path, "gt")]
    layers = [(config.area_path, "area")]
    if config.extra_aoi_files:
        layers.append((config.extra_area_path, "extra_area"))
    return layers


def _masks_training(config: Config, use: str) -> bool:
    """Whether a TRAIN stack's gt leaves out the date's cloudy and shadowed pixels (``clouds.mask_training``)."""
    return use == "TRAIN" and config.clouds.mask_training


def merge_fingerprint(config: Config, date: str, level: str, use: str) -> freshness.Fingerprint:
    """What a merged stack is made from: the date's scene, the appended layers (and its cloud mask if it is used)."""
    values: dict[str, object] = {"sentinel.level": level}
    inputs = [config.scene_path(date, level), *(path for path, _ in _merge_layers(config, use))]
    if _masks_training(config, use):
        values["clouds.mask_training"] = True
        inputs.append(config.cloud_mask_path(date, level))
    return fingerprint(config, values, inputs)


def merge_tifs(config: Config, date: str, level: str | None, use: str, force: bool = False,
               say: Say = print_line, block_rows: int = 512) -> StepResult:
    """Step 04: TRAIN -> bands + gt; NEW -> bands + area mask(s); one uint16 stack.

    With ``clouds.mask_training``, the gt of a TRAIN stack is 0 (unlabelled: no loss, and the
    tile filter's ``min_labelled_fraction`` counts it so) where the date's cloud mask is not clear.
    """
    level = config.check_level(level)
    use = check_use(use)
    out = config.merged_path(date, level, use)
    say(f"[04] merge {date} {level} {use}")
    if use == "TRAIN":
        config.require_ground_truth("step 04 TRAIN")
    current = merge_fingerprint(config, date, level, use)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    scene = require(config.scene_path(date, level), f"run 01_clip_sentinel.py {date} {level} first")
    hint = "run 02b_restrict_water_area.py first" if use == "TRAIN" else "run 03_create_area_tif.py first"
    extras = [(require(path, hint), name) for path, name in _merge_layers(config, use)]
    cloud_path = None
    if _masks_training(config, use):
        cloud_path = require(config.cloud_mask_path(date, level), f"run 03b_cloud_masks.py {date} {level} first "
                             "(clouds.mask_training is on)")
    grid = grid_of_raster(scene)
    for path in [*(p for p, _ in extras), *([cloud_path] if cloud_path else [])]:
        check_same_grid(path, grid, scene)
    bands = list(config.bands(level))
    names = bands + [name for _, name in extras]
    profile = {**GTIFF_PROFILE, **grid.profile(), "count": len(names), "dtype": "uint16", "nodata": None}
    sources = [rasterio.open(scene)] + [rasterio.open(path) for path, _ in extras]
    clouds = rasterio.open(cloud_path) if cloud_path else None
    try:
        if sources[0].count != len(bands):
            raise InputError(f"{scene}: has {sources[0].count} bands, level {level} needs {len(bands)}")
        with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for block in grid.row_blocks(block_rows):
                dst.write(sources[0].read(window=block).astype(np.uint16), list(range(1, len(bands) + 1)),
                          window=block)
                for index, src in enumerate(sources[1:], start=len(bands) + 1):
                    layer = src.read(1, window=block).astype(np.uint16)
                    if clouds is not None:  # TRAIN: the gt is the only appended layer
                        layer[clouds.read(1, window=block) != CLEAR] = 0
                    dst.write(layer, index, window=block)
            dst.descriptions = tuple(names)
            dst.update_tags(DATE=date, LEVEL=level, USE=use, LAYERS=",".join(names))
    finally:
        for src in [*sources, *([clouds] if clouds else [])]:
            src.close()
    record(config, out, current)
    say(f"  wrote {out.name}: {len(names)} layers ({', '.join(names[len(bands):])} last)")
    return StepResult(out, False, f"{len(names)} layers")


# ---------------------------------------------------------------------- drivers 07 / 08a / 08b
def shared_dates(config: Config) -> list[str]:
    """The dates whose scenes the shared products need: the NDWI pool and the reference (no GT: the reference)."""
    return sorted({*config.water_dates, config.reference} if config.has_ground_truth else {config.reference})


def check_run_inputs(config: Config, dates: Sequence[str], level: str) -> None:
    """What a driver (07, 08a, 08b) checks before its first write, so that it never stops half-way.

    Every date's product must exist with all bands of the level (its metadata readable), the AOI
    must be readable and its scene hold at least one tile, and the GT and extra AOI files must be
    present and intact (their Shapefile structure; their content is checked by the step that
    reads it). Zip CRCs and band pixels
    are checked when step 01 reads them.

    Args:
        config: The study area.
        dates: Every date the run will ingest (its own and the shared products').
        level: The processing level.

    Raises:
        InputError: For the first missing or damaged input.
    """
    bands = config.bands(level)
    for date in sorted(set(dates)):
        open_product(find_product(config.raw_sentinel_dir(level), date), bands)
    _, grid = study_area(config)
    check_tile_fits(grid.height, grid.width, config.tile_size, "tiling.tile_size", config.source, config.aoi_file)
    for path in config.extra_aoi_files:
        check_vector_file(path, "extra AOI")
    if config.has_ground_truth:
        check_vector_file(config.gt_file, "ground truth")


def prepare_ground_truth(config: Config, level: str | None = None, force: bool = False, say: Say = print_line,
                         progress: bool = False, method: str | None = None) -> frozenset[str]:
    """The shared products: steps 01 (NDWI dates and reference), 02, 02b, 03, 05b and the split.

    Without GT (a classification-only study area) only the reference scene and the area mask
    (step 03) are made.

    Returns:
        The dates whose scenes step 01 wrote in this call.
    """
    level = config.check_level(level)
    clipped = set()
    for date in shared_dates(config):
        if not clip_sentinel(config, date, level, force, say, progress).skipped:
            clipped.add(date)
    if config.has_ground_truth:
        rasterize_shapefile(config, level, force, say)
        restrict_water_area(config, level, force, say)
    create_area_tif(config, level, force, say)
    if config.has_ground_truth:
        save_all_tile_filenames(config, level, force, say)
        subset_split(config, level, method, force, say)
    return frozenset(clipped)


def is_date_complete(config: Config, date: str, level: str, use: str) -> bool:
    """True if every output of a date's chain (01, 03b, 04, 05) is up to date (the test each step uses)."""
    use = check_use(use)
    try:
        product = find_product(config.raw_sentinel_dir(level), date)
    except InputError:
        return False  # the chain will report the missing product
    last = (config.tiles_summary_path(date, level), tiles_fingerprint(config, date, level)) if use == "TRAIN" else (
        config.prediction_windows_path(date, level), windows_fingerprint(config, date, level))
    outputs = [(config.scene_path(date, level), scene_fingerprint(config, date, level, product)),
               (config.cloud_mask_path(date, level), cloud_mask_fingerprint(config, date, level)),
               (config.merged_path(date, level, use), merge_fingerprint(config, date, level, use)), last]
    return all(is_current(config, out, current) for out, current in outputs)


def full_pipeline(config: Config, date: str, level: str | None, use: str, force: bool = False,
                  say: Say = print_line, progress: bool = False, prepared: bool = False, method: str | None = None,
                  fresh: frozenset[str] = frozenset()) -> None:
    """Step 07: 01 -> 03b -> 04 -> 05 for one date, preparing the shared products first if needed.

    Its inputs (the date's product and those of the shared products, the AOI, the GT) are
    checked before the first write (:func:`check_run_inputs`), so that a missing product does
    not stop the run after the shared products were written.

    Args:
        fresh: Dates whose scenes were written moments ago (not clipped again under ``force``).
    """
    level = config.check_level(level)
    use = check_use(use)
    if use == "TRAIN":
        config.require_ground_truth("step 07 TRAIN")
    if not prepared:
        check_run_inputs(config, [*shared_dates(config), date], level)
        fresh = fresh | prepare_ground_truth(config, level, False, say, progress, method)
    clip_sentinel(config, date, level, force and date not in fresh, say, progress)
    cloud_masks(config, date, level, force, say)
    merge_tifs(config, date, level, use, force, say)
    split_into_tiles(config, date, level, use, force, method, say, progress)


def process_batch(config: Config, dates: Sequence[str], level: str | None, use: str, force: bool = False,
                  say: Say = print_line, method: str | None = None) -> list[str]:
    """Steps 08a (TRAIN, the training pool) and 08b (NEW, the new dates): every date, skipping up-to-date ones.

    Every date's product (and the AOI and GT) is checked before the first write
    (:func:`check_run_inputs`), so a missing product does not stop the batch half-way.

    Returns:
        The dates that were processed (not skipped).
    """
    level = config.check_level(level)
    use = check_use(use)
    if use == "TRAIN":
        config.require_ground_truth("step 08a")
    if not dates:
        raise InputError(f"{config.source}: no dates configured for {use}")
    check_run_inputs(config, [*shared_dates(config), *dates], level)
    # the shared products belong to the training side: 08b --force redoes only its own dates, unless
    # there is no training side (no GT: the area mask is made from the first new date)
    shared_force = force and (use == "TRAIN" or not config.has_ground_truth)
    fresh = prepare_ground_truth(config, level, shared_force, say, progress=True, method=method)
    processed = []
    for date in tqdm(dates, desc=f"{use} dates", disable=None):
        if not force and is_date_complete(config, date, level, use):
            say(f"== {date} {level} {use}: complete, skipped (use --force to redo)")
            continue
        say(f"== {date} {level} {use}")
        full_pipeline(config, date, level, use, force, say, progress=True, prepared=True, method=method, fresh=fresh)
        processed.append(date)
    return processed
