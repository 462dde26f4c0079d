"""The pre-processing steps of the original (01 ... 08b) on the paths of a configuration.

Each function is one step: it checks its inputs, skips work whose output already exists
(unless ``force``), writes its outputs atomically and reports in a few printed lines.
Raw inputs are only ever read.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from helpers.config import SPLITS, Config, format_threshold
from helpers.errors import InputError
from helpers.grid import SceneGrid, check_same_grid, grid_from_bounds, grid_of_raster
from helpers.ground_truth import (
    area_mask,
    extra_area_mask,
    mask_shoreline,
    min_ndwi_at,
    rasterize_ground_truth,
    water_sweep_line,
)
from helpers.io import (
    GTIFF_PROFILE,
    atomic_path,
    open_raster,
    read_raster,
    write_json_atomic,
    write_raster,
    write_text_atomic,
)
from helpers.sentinel import find_product, ingest_product, open_product
from helpers.splitting import make_split
from helpers.tiling import parse_ending, select_tiles, tile_ending, tile_view, write_tiles
from helpers.vector import read_area_of_interest

Say = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass
class StepResult:
    """What a step did: its main output, whether it was skipped, and a one-line summary."""

    output: Path
    skipped: bool
    summary: str = ""


def _skip(path: Path, force: bool, say: Say) -> bool:
    if path.exists() and not force:
        say(f"  exists, skipped: {path}  (use --force to redo)")
        return True
    return False


def _require(path: Path, hint: str) -> Path:
    if not path.exists():
        raise InputError(f"{path}: missing input ({hint})")
    return path


def study_area(config: Config) -> tuple[BaseGeometry, SceneGrid]:
    """The AOI in the target CRS and the study area's 10 m grid (its bounds snapped outwards)."""
    aoi = read_area_of_interest(config.aoi_file, config.crs)
    return aoi, grid_from_bounds(aoi.bounds, config.crs, config.resolution)


# ---------------------------------------------------------------------- step 01
def clip_sentinel(config: Config, date: str, level: str | None = None, force: bool = False,
                  say: Say = _print, progress: bool = False) -> StepResult:
    """Step 01: ingest the product of a date, resample to 10 m, clip to the AOI, write one stack."""
    level = config.check_level(level)
    out = config.scene_path(date, level)
    say(f"[01] clip Sentinel-2 {date} {level}")
    if _skip(out, force, say):
        return StepResult(out, True)
    aoi, grid = study_area(config)
    bands = config.bands(level)
    product = open_product(find_product(config.raw_sentinel_dir(level), date), bands)
    tags = ingest_product(product, bands, grid, aoi, out, progress=progress)
    summary = (f"{out.name}: {len(bands)} bands, {grid.width}x{grid.height} px, sensed {tags['SENSING_TIME']}, "
               f"baseline {tags['PROCESSING_BASELINE']}, offset removed: {tags['RADIOMETRIC_OFFSET_REMOVED']}")
    say(f"  wrote {summary}")
    return StepResult(out, False, summary)


def _reference_scene(config: Config, level: str) -> Path:
    return _require(config.scene_path(config.reference, level),
                    f"run 01_clip_sentinel.py {config.reference} {level} first")


# ---------------------------------------------------------------------- step 02
def rasterize_shapefile(config: Config, level: str | None = None, force: bool = False, say: Say = _print) -> StepResult:
    """Step 02: burn the GT class attribute onto the scene grid (``gt_rasterized.tif``)."""
    level = config.check_level(level)
    out = config.gt_rasterized_path
    say(f"[02] rasterize ground truth {config.gt_file.name} ('{config.gt_attribute}')")
    if _skip(out, force, say):
        return StepResult(out, True)
    _, grid = study_area(config)
    reference = config.scene_path(config.reference, level)
    if reference.exists():
        check_same_grid(reference, grid, config.aoi_file)
    gt = rasterize_ground_truth(config, grid)
    if not gt.any():
        raise InputError(f"{config.gt_file}: no ground-truth polygon covers a pixel of the scene grid")
    write_raster(out, gt, grid.profile(), ["gt"], {"SOURCE": config.gt_file.name, "ATTRIBUTE": config.gt_attribute})
    counts = np.bincount(gt.ravel(), minlength=256)
    listing = ", ".join(f"{c.id}:{int(counts[c.id])}" for c in config.classes)
    say(f"  wrote {out.name}: {grid.width}x{grid.height} px, class pixels {listing}")
    return StepResult(out, False, listing)


# ---------------------------------------------------------------------- step 02b
def restrict_water_area(config: Config, level: str | None = None, force: bool = False,
                        say: Say = _print) -> StepResult:
    """Step 02b: NDWI shoreline masking for the threshold sweep; the configured one becomes ``gt.tif``."""
    level = config.check_level(level)
    say(f"[02b] restrict water area by NDWI over {len(config.water_dates)} images")
    if _skip(config.gt_path, force, say):
        return StepResult(config.gt_path, True)
    source = _require(config.gt_rasterized_path, "run 02_rasterize_shapefile.py first")
    gt, profile = read_raster(source, 1)
    grid = grid_of_raster(source)
    scenes = [_require(config.scene_path(d, level), f"run 01_clip_sentinel.py {d} {level} first")
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
    write_json_atomic(config.gt_dir / "water_mask_summary.json",
                      {"dates": list(config.water_dates), "chosen_threshold": None if chosen is None
                       else format_threshold(chosen), "thresholds": table})
    write_raster(config.gt_path, final, profile, ["gt"],
                 {"NDWI_THRESHOLD": "none" if chosen is None else format_threshold(chosen)})
    label = "no masking" if chosen is None else f"threshold {format_threshold(chosen)}"
    say(f"  wrote {config.gt_path.name} ({label})")
    return StepResult(config.gt_path, False, label)


# ---------------------------------------------------------------------- step 03
def create_area_tif(config: Config, level: str | None = None, force: bool = False, say: Say = _print) -> StepResult:
    """Step 03: ``area.tif`` (GT non-zero and reference scene non-zero) and the extra-AOI mask."""
    level = config.check_level(level)
    out = config.area_path
    say("[03] create area mask")
    if _skip(out, force, say):
        return StepResult(out, True)
    gt_path = _require(config.gt_path, "run 02b_restrict_water_area.py first")
    reference = _reference_scene(config, level)
    grid = grid_of_raster(gt_path)
    check_same_grid(reference, grid, gt_path)
    gt, profile = read_raster(gt_path, 1)
    band1, _ = read_raster(reference, 1)
    if config.extra_aoi_files:
        areas = [read_area_of_interest(path, config.crs) for path in config.extra_aoi_files]
        extra = extra_area_mask(areas, grid, band1)
        write_raster(config.extra_area_path, extra, profile, ["extra_area"])
        say(f"  wrote {config.extra_area_path.name}: {int(extra.sum())} px")
    area = area_mask(gt, band1)
    write_raster(out, area, profile, ["area"], {"REFERENCE": reference.name})
    say(f"  wrote {out.name}: {int(area.sum())} px in the area")
    return StepResult(out, False, f"{int(area.sum())} px")


# ---------------------------------------------------------------------- step 04
def merge_tifs(config: Config, date: str, level: str | None, use: str, force: bool = False,
               say: Say = _print, block_rows: int = 512) -> StepResult:
    """Step 04: TRAIN -> bands + gt; NEW -> bands + area mask(s); one uint16 stack."""
    level = config.check_level(level)
    use = _check_use(use)
    out = config.merged_path(date, level, use)
    say(f"[04] merge {date} {level} {use}")
    if _skip(out, force, say):
        return StepResult(out, True)
    scene = _require(config.scene_path(date, level), f"run 01_clip_sentinel.py {date} {level} first")
    if use == "TRAIN":
        extras = [(_require(config.gt_path, "run 02b_restrict_water_area.py first"), "gt")]
    else:
        extras = [(_require(config.area_path, "run 03_create_area_tif.py first"), "area")]
        if config.extra_aoi_files:
            extras.append((_require(config.extra_area_path, "run 03_create_area_tif.py first"), "extra_area"))
    grid = grid_of_raster(scene)
    for path, _ in extras:
        check_same_grid(path, grid, scene)
    bands = list(config.bands(level))
    names = bands + [name for _, name in extras]
    profile = {**GTIFF_PROFILE, **grid.profile(), "count": len(names), "dtype": "uint16", "nodata": None}
    sources = [rasterio.open(scene)] + [rasterio.open(path) for path, _ in extras]
    try:
        if sources[0].count != len(bands):
            raise InputError(f"{scene}: has {sources[0].count} bands, level {level} needs {len(bands)}")
        with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for block in grid.row_blocks(block_rows):
                dst.write(sources[0].read(window=block).astype(np.uint16), list(range(1, len(bands) + 1)),
                          window=block)
                for index, src in enumerate(sources[1:], start=len(bands) + 1):
                    dst.write(src.read(1, window=block).astype(np.uint16), index, window=block)
            dst.descriptions = tuple(names)
            dst.update_tags(DATE=date, LEVEL=level, USE=use, LAYERS=",".join(names))
    finally:
        for src in sources:
            src.close()
    say(f"  wrote {out.name}: {len(names)} layers ({', '.join(names[len(bands):])} last)")
    return StepResult(out, False, f"{len(names)} layers")


def _check_use(use: str) -> str:
    canonical = str(use).upper()
    if canonical not in ("TRAIN", "NEW"):
        raise InputError(f"unknown use '{use}' (use TRAIN or NEW)")
    return canonical


# ---------------------------------------------------------------------- step 05b + subset split
def reference_selection(config: Config, level: str):
    """Tile selection of the reference date (the complete image that defines the tile list)."""
    gt_path = _require(config.gt_path, "run 02b_restrict_water_area.py first")
    reference = _reference_scene(config, level)
    check_same_grid(reference, grid_of_raster(gt_path), gt_path)
    gt, _ = read_raster(gt_path, 1)
    band1, _ = read_raster(reference, 1)
    return select_tiles(gt, band1, config.tile_size, config.tile_stride, config.unclassifiable_id)


def save_all_tile_filenames(config: Config, level: str | None = None, force: bool = False,
                            say: Say = _print) -> StepResult:
    """Step 05b: the reference date's kept tile endings -> ``all_tile_endings.txt``."""
    level = config.check_level(level)
    out = config.tile_endings_path
    say(f"[05b] tile list of the reference date {config.reference}")
    if _skip(out, force, say):
        return StepResult(out, True)
    selection = reference_selection(config, level)
    endings = selection.endings()
    if not endings:
        raise InputError(f"{config.gt_path}: no {config.tile_size}x{config.tile_size} tile of the reference date "
                         f"{config.reference} is fully labelled and on the image (empty tile set)")
    write_text_atomic(out, "\n".join(endings) + "\n")
    say(f"  wrote {out.name}: {len(endings)} of {selection.n_candidates} tile positions kept")
    return StepResult(out, False, f"{len(endings)} tiles")


def read_tile_endings(config: Config) -> list[str]:
    """The tile list written by step 05b."""
    path = _require(config.tile_endings_path, "run 05b_save_all_tile_filenames.py first")
    endings = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for ending in endings:
        try:
            parse_ending(ending)
        except ValueError:
            raise InputError(f"{path}: malformed tile ending {ending!r}") from None
    if not endings:
        raise InputError(f"{path}: the tile list is empty")
    return endings


def subset_split(config: Config, level: str | None = None, method: str | None = None, force: bool = False,
                 say: Say = _print) -> StepResult:
    """Assign every tile of the reference list to valid / train / test (``tile_split.json``)."""
    method = method or config.split_method
    if method not in ("random", "block"):
        raise InputError(f"unknown split method '{method}' (use random or block)")
    out = config.split_path
    say(f"[split] {method} split, seed {config.split_seed}")
    if out.exists() and not force:
        existing = read_split(config)
        if existing["method"] != method:
            raise InputError(f"{out}: was made with method '{existing['method']}', not '{method}'; re-run with "
                             f"--force (and re-tile every date with --force)")
        say(f"  exists, skipped: {out}  (use --force to redo)")
        return StepResult(out, True)
    endings = read_tile_endings(config)
    subsets = make_split(endings, method, config.split_seed, config.split_fractions, config.block_size)
    write_json_atomic(out, {"method": method, "seed": config.split_seed, "fractions": config.split_fractions,
                            "block_size": config.block_size if method == "block" else None,
                            "reference": config.reference, **subsets})
    counts = ", ".join(f"{s} {len(subsets[s])}" for s in SPLITS)
    say(f"  wrote {out.name}: {counts}")
    return StepResult(out, False, counts)


def read_split(config: Config) -> dict:
    """The subset assignment written by :func:`subset_split`."""
    path = _require(config.split_path, "run subset_split.py first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not all(isinstance(data[s], list) for s in SPLITS):
            raise KeyError("subset lists")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a valid split file ({error}); re-run subset_split.py --force") from None
    return data


# ---------------------------------------------------------------------- step 05
def split_into_tiles(config: Config, date: str, level: str | None, use: str, force: bool = False,
                     method: str | None = None, say: Say = _print, progress: bool = False) -> StepResult:
    """Step 05: TRAIN -> tiles per subset; NEW -> the prediction-window index of the scene."""
    level = config.check_level(level)
    if _check_use(use) == "NEW":
        return _prediction_windows(config, date, level, force, say)
    summary_path = config.tiles_summary_path(date, level)
    say(f"[05] split {date} {level} into {config.tile_size}x{config.tile_size} tiles")
    if _skip(summary_path, force, say):
        return StepResult(summary_path, True)
    merged = _require(config.merged_path(date, level, "TRAIN"), f"run 04_merge_tifs.py {date} {level} TRAIN first")
    if not config.split_path.exists():
        save_all_tile_filenames(config, level, say=say)
        subset_split(config, level, method, say=say)
    split = read_split(config)
    if method and split["method"] != method:
        raise InputError(f"{config.split_path}: was made with method '{split['method']}', not '{method}'; run "
                         f"subset_split.py --split {method} --force, then re-tile every date with --force")
    grid = grid_of_raster(merged)
    with open_raster(merged) as src:
        band1 = src.read(1)
        gt = src.read(src.count)
        descriptions = list(src.descriptions)
    selection = select_tiles(gt, band1, config.tile_size, config.tile_stride, config.unclassifiable_id)
    positions = {s: [p for p in map(parse_ending, split[s]) if _in_grid(p, selection.kept) and selection.kept[p]]
                 for s in SPLITS}
    prefix = f"{date}_{level}"
    folders = {s: config.tiles_dir(date, level, s) for s in SPLITS}
    staging = config.date_dir(date, "TRAIN") / ".tiles.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for s in SPLITS:
            (staging / folders[s].name).mkdir(parents=True)
        counts = write_tiles(merged, grid, positions, {s: staging / folders[s].name for s in SPLITS}, prefix,
                             config.tile_size, config.tile_stride, descriptions, progress)
        for s in SPLITS:
            if folders[s].exists():
                shutil.rmtree(folders[s])
            (staging / folders[s].name).rename(folders[s])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = sum(counts.values())
    with_unclassifiable = int(sum(selection.unclassifiable[p] for s in SPLITS for p in positions[s]))
    share = with_unclassifiable / written if written else 0.0
    summary = {"date": date, "level": level, "tile_size": config.tile_size, "stride": config.tile_stride,
               "candidates": selection.n_candidates, "kept_on_date": selection.n_kept,
               "written": counts, "total_written": written, "with_unclassifiable": with_unclassifiable,
               "unclassifiable_share": round(share, 4), "split_method": split["method"]}
    write_json_atomic(summary_path, summary)
    if written == 0:
        say(f"  warning: no tile of {date} is fully labelled and on the image")
    say(f"  wrote {written} tiles (valid {counts['valid']}, train {counts['train']}, test {counts['test']}); "
        f"{with_unclassifiable} ({100 * share:.1f} %) contain unclassifiable pixels")
    return StepResult(summary_path, False, f"{written} tiles")


def _in_grid(position: tuple[int, int], kept: np.ndarray) -> bool:
    return position[0] < kept.shape[0] and position[1] < kept.shape[1]


def _prediction_windows(config: Config, date: str, level: str, force: bool, say: Say) -> StepResult:
    """Index of the original's prediction tiles: 32x32 on a 16-px stride, centre 16x16 in the area."""
    out = config.prediction_windows_path(date, level)
    say(f"[05] prediction windows of {date} {level}")
    if _skip(out, force, say):
        return StepResult(out, True)
    merged = _require(config.merged_path(date, level, "NEW"), f"run 04_merge_tifs.py {date} {level} NEW first")
    n_bands = len(config.bands(level))
    with open_raster(merged) as src:
        band1 = src.read(1)
        area = np.zeros(band1.shape, dtype=bool)
        for index in range(n_bands + 1, src.count + 1):
            area |= src.read(index) != 0
    size, stride = config.tile_size, config.prediction_stride
    margin = (size - stride) // 2
    on_image = tile_view(band1 != 0, size, stride).all(axis=(2, 3))
    rows, cols = on_image.shape
    centre = tile_view(area[margin:, margin:], stride, stride)[:rows, :cols].any(axis=(2, 3))
    keep = on_image & centre
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ending", "row", "col", "y0", "x0"])
    for r, c in zip(*np.nonzero(keep), strict=True):
        writer.writerow([tile_ending(int(r), int(c)), int(r), int(c), int(r) * stride, int(c) * stride])
    write_text_atomic(out, buffer.getvalue())
    say(f"  wrote {out.name}: {int(keep.sum())} of {keep.size} windows ({size}x{size}, stride {stride})")
    return StepResult(out, False, f"{int(keep.sum())} windows")


# ---------------------------------------------------------------------- drivers 07 / 08a / 08b
def prepare_ground_truth(config: Config, level: str | None = None, force: bool = False, say: Say = _print,
                         progress: bool = False, method: str | None = None) -> frozenset[str]:
    """Steps 01 (for the NDWI dates and the reference), 02, 02b, 03, 05b and the split.

    Returns:
        The dates whose scenes step 01 wrote in this call.
    """
    level = config.check_level(level)
    clipped = set()
    for date in sorted({*config.water_dates, config.reference}):
        if not clip_sentinel(config, date, level, force, say, progress).skipped:
            clipped.add(date)
    rasterize_shapefile(config, level, force, say)
    restrict_water_area(config, level, force, say)
    create_area_tif(config, level, force, say)
    save_all_tile_filenames(config, level, force, say)
    subset_split(config, level, method, force, say)
    return frozenset(clipped)


def is_date_complete(config: Config, date: str, level: str, use: str) -> bool:
    """True if the last output of a date's chain exists."""
    if _check_use(use) == "TRAIN":
        return config.tiles_summary_path(date, level).exists()
    return config.prediction_windows_path(date, level).exists()


def full_pipeline(config: Config, date: str, level: str | None, use: str, force: bool = False, say: Say = _print,
                  progress: bool = False, prepared: bool = False, method: str | None = None,
                  fresh: frozenset[str] = frozenset()) -> None:
    """Step 07: 01 -> 04 -> 05 for one date, preparing the shared GT products first if needed.

    Args:
        fresh: Dates whose scenes were written moments ago (not clipped again under ``force``).
    """
    level = config.check_level(level)
    use = _check_use(use)
    if not prepared:
        fresh = fresh | prepare_ground_truth(config, level, False, say, progress, method)
    clip_sentinel(config, date, level, force and date not in fresh, say, progress)
    merge_tifs(config, date, level, use, force, say)
    split_into_tiles(config, date, level, use, force, method, say, progress)


def process_batch(config: Config, dates: Sequence[str], level: str | None, use: str, force: bool = False,
                  say: Say = _print, method: str | None = None) -> list[str]:
    """Steps 08a (TRAIN, the training pool) and 08b (NEW, the new dates): every date, skipping done ones.

    Returns:
        The dates that were processed (not skipped).
    """
    level = config.check_level(level)
    use = _check_use(use)
    if not dates:
        raise InputError(f"{config.source}: no dates configured for {use}")
    # the shared GT products belong to the training side: 08b --force redoes only its own dates
    fresh = prepare_ground_truth(config, level, force and use == "TRAIN", say, progress=True, method=method)
    processed = []
    for date in tqdm(dates, desc=f"{use} dates", disable=None):
        if not force and is_date_complete(config, date, level, use):
            say(f"== {date} {level} {use}: complete, skipped (use --force to redo)")
            continue
        say(f"== {date} {level} {use}")
        full_pipeline(config, date, level, use, force, say, progress=True, prepared=True, method=method, fresh=fresh)
        processed.append(date)
    return processed
