"""The tile steps of the original: 05b (reference tile list), the subset split, and 05.

Split from :mod:`helpers.data.pipeline` (steps 01-04 and the drivers), which re-exports them.
Each step skips its work only when its output is up to date (:mod:`helpers.data.freshness`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from helpers.data import freshness
from helpers.core.config import SPLITS, Config
from helpers.core.errors import InputError
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.core.io import atomic_path, open_raster, read_raster, write_json_atomic, write_text_atomic
from helpers.data.pipeline_base import (
    Say,
    StepResult,
    check_use,
    fingerprint,
    print_line,
    record,
    reference_scene,
    require,
    spectral_band_indexes,
    up_to_date,
)
from helpers.data.splitting import make_split
from helpers.data.tiling import (
    TileSelection,
    bands_on_image,
    check_tile_fits,
    parse_ending,
    select_tiles,
    sparse_warning,
    tile_ending,
    tile_view,
    write_tiles,
)


def _tiling_values(config: Config, level: str) -> dict:
    """The config values that decide which tiles are kept (steps 05b and 05 TRAIN)."""
    return {"sentinel.level": level, "tiling.tile_size": config.tile_size, "tiling.separation": config.separation,
            "tiling.min_labelled_fraction": config.min_labelled_fraction,
            "ground_truth.unclassifiable_id": config.unclassifiable_id}


# ---------------------------------------------------------------------- step 05b
def reference_selection(config: Config, level: str) -> TileSelection:
    """Tile selection of the reference date (the complete image that defines the tile list)."""
    gt_path = require(config.gt_path, "run 02b_restrict_water_area.py first")
    reference = reference_scene(config, level)
    check_same_grid(reference, grid_of_raster(gt_path), gt_path)
    gt, _ = read_raster(gt_path, 1)
    check_tile_fits(*gt.shape, config.tile_size, "tiling.tile_size", config.source, config.aoi_file)
    on_image = bands_on_image(reference, spectral_band_indexes(config.bands(level)))
    return select_tiles(gt, on_image, config.tile_size, config.tile_stride, config.unclassifiable_id,
                        config.min_labelled_fraction)


def tile_list_fingerprint(config: Config, level: str) -> freshness.Fingerprint:
    """What the reference tile list is made from."""
    return fingerprint(config, {**_tiling_values(config, level), "dates.reference": config.reference},
                       [config.scene_path(config.reference, level), config.gt_path])


def save_all_tile_filenames(config: Config, level: str | None = None, force: bool = False,
                            say: Say = print_line) -> StepResult:
    """Step 05b: the reference date's kept tile endings -> ``all_tile_endings.txt``."""
    level = config.check_level(level)
    out = config.tile_endings_path
    say(f"[05b] tile list of the reference date {config.reference}")
    config.require_ground_truth("step 05b")
    current = tile_list_fingerprint(config, level)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    selection = reference_selection(config, level)
    endings = selection.endings()
    if not endings:
        raise InputError(f"{config.gt_path}: no {config.tile_size}x{config.tile_size} tile of the reference date "
                         f"{config.reference} is labelled on at least {100 * config.min_labelled_fraction:g} % of "
                         f"its pixels and on the image (empty tile set); for sparse ground truth lower [tiling] "
                         f"min_labelled_fraction in {config.source}")
    if selection.sparse:
        say(f"  {sparse_warning(selection, config.source)}")
    write_text_atomic(out, "\n".join(endings) + "\n")
    record(config, out, current)
    say(f"  wrote {out.name}: {len(endings)} of {selection.n_candidates} tile positions kept")
    return StepResult(out, False, f"{len(endings)} tiles")


def read_tile_endings(config: Config) -> list[str]:
    """The tile list written by step 05b."""
    path = require(config.tile_endings_path, "run 05b_save_all_tile_filenames.py first")
    endings = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for ending in endings:
        try:
            parse_ending(ending)
        except ValueError:
            raise InputError(f"{path}: malformed tile ending {ending!r}") from None
    if not endings:
        raise InputError(f"{path}: the tile list is empty")
    return endings


# ---------------------------------------------------------------------- subset split
def split_fingerprint(config: Config, method: str) -> freshness.Fingerprint:
    """What the subset assignment is made from."""
    values = {"split.method": method, "split.seed": config.split_seed, "split.fractions": config.split_fractions,
              "split.block_size": config.block_size if method == "block" else None}
    return fingerprint(config, values, [config.tile_endings_path])


def subset_split(config: Config, level: str | None = None, method: str | None = None, force: bool = False,
                 say: Say = print_line) -> StepResult:
    """Assign every tile of the reference list to valid / train / test (``tile_split.json``).

    Args:
        method: "random" or "block"; given explicitly (``--split``), it must match an existing
            split unless ``force`` (re-splitting means re-tiling every date); None means the
            config's ``split.method``, and a changed config value rebuilds the split.
    """
    chosen = method or config.split_method
    if chosen not in ("random", "block"):
        raise InputError(f"unknown split method '{chosen}' (use random or block)")
    out = config.split_path
    say(f"[split] {chosen} split, seed {config.split_seed}")
    config.require_ground_truth("the subset split")
    if method and out.exists() and not force:
        existing = read_split(config)
        if existing["method"] != method:
            raise InputError(f"{out}: was made with method '{existing['method']}', not '{method}'; re-run with "
                             f"--force (and re-tile every date with --force)")
    current = split_fingerprint(config, chosen)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    endings = read_tile_endings(config)
    subsets = make_split(endings, chosen, config.split_seed, config.split_fractions, config.block_size)
    write_json_atomic(out, {"method": chosen, "seed": config.split_seed, "fractions": config.split_fractions,
                            "block_size": config.block_size if chosen == "block" else None,
                            "reference": config.reference, **subsets})
    record(config, out, current)
    counts = ", ".join(f"{s} {len(subsets[s])}" for s in SPLITS)
    say(f"  wrote {out.name}: {counts}")
    return StepResult(out, False, counts)


def read_split(config: Config) -> dict:
    """The subset assignment written by :func:`subset_split`."""
    path = require(config.split_path, "run subset_split.py first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not all(isinstance(data[s], list) for s in SPLITS):
            raise KeyError("subset lists")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a valid split file ({error}); re-run subset_split.py --force") from None
    return data


# ---------------------------------------------------------------------- step 05
def tiles_fingerprint(config: Config, date: str, level: str) -> freshness.Fingerprint:
    """What a date's training tiles are made from."""
    return fingerprint(config, _tiling_values(config, level),
                       [config.merged_path(date, level, "TRAIN"), config.split_path])


def windows_fingerprint(config: Config, date: str, level: str) -> freshness.Fingerprint:
    """What a new date's prediction-window index is made from."""
    values = {"sentinel.level": level, "tiling.tile_size": config.tile_size,
              "tiling.prediction_stride": config.prediction_stride}
    return fingerprint(config, values, [config.merged_path(date, level, "NEW")])


def split_into_tiles(config: Config, date: str, level: str | None, use: str, force: bool = False,
                     method: str | None = None, say: Say = print_line, progress: bool = False) -> StepResult:
    """Step 05: TRAIN -> tiles per subset; NEW -> the prediction-window index of the scene."""
    level = config.check_level(level)
    if check_use(use) == "NEW":
        return _prediction_windows(config, date, level, force, say)
    summary_path = config.tiles_summary_path(date, level)
    say(f"[05] split {date} {level} into {config.tile_size}x{config.tile_size} tiles")
    config.require_ground_truth("step 05 TRAIN")
    merged = require(config.merged_path(date, level, "TRAIN"), f"run 04_merge_tifs.py {date} {level} TRAIN first")
    if not config.split_path.exists():
        save_all_tile_filenames(config, level, say=say)
        subset_split(config, level, method, say=say)
    split = read_split(config)
    if method and split["method"] != method:
        raise InputError(f"{config.split_path}: was made with method '{split['method']}', not '{method}'; run "
                         f"subset_split.py --split {method} --force, then re-tile every date with --force")
    current = tiles_fingerprint(config, date, level)
    if up_to_date(config, summary_path, current, force, say):
        return StepResult(summary_path, True)
    grid = grid_of_raster(merged)
    check_tile_fits(grid.height, grid.width, config.tile_size, "tiling.tile_size", config.source, config.aoi_file)
    with open_raster(merged) as src:
        gt = src.read(src.count)
        descriptions = list(src.descriptions)
    on_image = bands_on_image(merged, spectral_band_indexes(config.bands(level)))
    selection = select_tiles(gt, on_image, config.tile_size, config.tile_stride, config.unclassifiable_id,
                             config.min_labelled_fraction)
    if selection.sparse:
        say(f"  {sparse_warning(selection, config.source)}")
    positions = {s: [p for p in map(parse_ending, split[s]) if _in_grid(p, selection.kept) and selection.kept[p]]
                 for s in SPLITS}
    counts = _replace_tile_folders(config, date, level, summary_path, positions,
                                   lambda staging: write_tiles(merged, grid, positions, staging, f"{date}_{level}",
                                                               config.tile_size, config.tile_stride, descriptions,
                                                               progress))
    written = sum(counts.values())
    with_unclassifiable = int(sum(selection.unclassifiable[p] for s in SPLITS for p in positions[s]))
    share = with_unclassifiable / written if written else 0.0
    summary = {"date": date, "level": level, "tile_size": config.tile_size, "stride": config.tile_stride,
               "min_labelled_fraction": config.min_labelled_fraction,
               "candidates": selection.n_candidates, "kept_on_date": selection.n_kept,
               "written": counts, "total_written": written, "with_unclassifiable": with_unclassifiable,
               "unclassifiable_share": round(share, 4), "split_method": split["method"]}
    write_json_atomic(summary_path, summary)
    record(config, summary_path, current)
    if written == 0:
        say(f"  warning: no tile of {date} is labelled on at least {100 * config.min_labelled_fraction:g} % of its "
            f"pixels and on the image")
    say(f"  wrote {written} tiles (valid {counts['valid']}, train {counts['train']}, test {counts['test']}); "
        f"{with_unclassifiable} ({100 * share:.1f} %) contain unclassifiable pixels")
    return StepResult(summary_path, False, f"{written} tiles")


def _replace_tile_folders(config: Config, date: str, level: str, summary_path: Path,
                          positions: Mapping[str, object],
                          write: Callable[[dict[str, Path]], dict[str, int]]) -> dict[str, int]:
    """Write a date's tiles into staging folders, then put them in place of the subset folders.

    Each subset folder is staged under a name unique to this process and call
    (:func:`helpers.core.io.atomic_path`: ``.<folder>.<pid>-<token>.partial``), so two writers never
    mix their tiles, and a killed writer's leftovers are removed by the next run. The tile set is
    complete only when the summary JSON is written after every folder is in place, and the
    freshness record after that: both are removed before the first folder is replaced, so an
    interruption while the folders are swapped leaves no summary, and the next run rebuilds
    instead of trusting a mix of old and new folders.

    Args:
        config: The study area.
        date: The date.
        level: The level.
        summary_path: The date's tiles summary (removed here, written by the caller).
        positions: Subset -> tile positions (only its keys are used).
        write: Writes the tiles into subset -> staging folder; returns subset -> count.

    Returns:
        What ``write`` returned.
    """
    folders = {s: config.tiles_dir(date, level, s) for s in positions}
    with contextlib.ExitStack() as stack:
        staging = {s: stack.enter_context(atomic_path(folders[s])) for s in positions}
        for folder in staging.values():
            folder.mkdir()
        counts = write(staging)
        freshness.record_path(config.processed_dir, summary_path).unlink(missing_ok=True)
        summary_path.unlink(missing_ok=True)
    # leaving the stack renamed every staging folder to its subset folder (in reverse order)
    return counts


def _in_grid(position: tuple[int, int], kept: np.ndarray) -> bool:
    return position[0] < kept.shape[0] and position[1] < kept.shape[1]


def _prediction_windows(config: Config, date: str, level: str, force: bool, say: Say) -> StepResult:
    """Index of the original's prediction tiles: 32x32 on a 16-px stride, centre 16x16 in the area."""
    out = config.prediction_windows_path(date, level)
    say(f"[05] prediction windows of {date} {level}")
    current = windows_fingerprint(config, date, level)
    if up_to_date(config, out, current, force, say):
        return StepResult(out, True)
    merged = require(config.merged_path(date, level, "NEW"), f"run 04_merge_tifs.py {date} {level} NEW first")
    n_bands = len(config.bands(level))
    with open_raster(merged) as src:
        check_tile_fits(src.height, src.width, config.tile_size, "tiling.tile_size", config.source, config.aoi_file)
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
    record(config, out, current)
    say(f"  wrote {out.name}: {int(keep.sum())} of {keep.size} windows ({size}x{size}, stride {stride})")
    return StepResult(out, False, f"{int(keep.sum())} windows")
