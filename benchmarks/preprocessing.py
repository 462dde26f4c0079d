"""Benchmark: NDWI shoreline masking (step 02b) and the area mask (step 03) against per-pixel loops.

Generates, with a seeded numpy generator, ten 13-band uint16 scene stacks of one grid
(written with the pipeline's own GeoTIFF profile) and a ground-truth raster with classes 1..8
whose lakes (class 7) have shorelines that fall dry on some dates. Then it measures:

* ours: the library functions the pipeline calls (``min_ndwi_at`` + ``mask_shoreline`` for
  the 7 thresholds of the sweep; ``area_mask``), on the whole scene, reading the rasters
  included, each in a fresh child process (wall time and peak RSS);
* original: a plain re-creation of the original scripts' per-pixel Python loops. The loops
  are far too slow for the whole scene, so they run on a crop and their time is scaled by
  the pixel count; the whole-raster reads (and NDWI) that the original did before looping are
  measured on the full scene and added (x7 for the masking, which re-read every date for
  every threshold).

Both give the same masks: checked on the crop against the loops, and on the whole scene
against a vectorised form of the original's rule.

Usage:
    python benchmarks/preprocessing.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import (
    fmt_seconds,
    measure_in_child,
    print_table,
    result_line,
    timed,
    work_folder,
)
from affine import Affine
from rasterio.crs import CRS

from helpers.core.config import L1C_BANDS, format_threshold
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.core.io import GTIFF_PROFILE, read_raster, write_raster
from helpers.data.ground_truth import area_mask, mask_shoreline, min_ndwi_at

FULL_SHAPE = (2828, 3500)
"""Rows x columns of the paper's scene (10 m pixels)."""
QUICK_SHAPE = (707, 875)
N_DATES = 10
WATER_ID = 7
UNCLASSIFIABLE_ID = 8
THRESHOLDS: tuple[float, ...] = tuple(round(float(t), 6) for t in np.arange(-0.6, 0.8, 0.2))
"""The original's sweep ``np.arange(-0.6, 0.8, 0.2)``, rounded (-0.6 ... 0.6)."""
GREEN_BAND = L1C_BANDS.index("B03") + 1
NIR_BAND = L1C_BANDS.index("B08") + 1
CRS_TEXT = "EPSG:32633"
WATER_SHARE = 0.035
"""Share of the scene the generated lakes cover (GT class 7)."""

Window = tuple[int, int, int]
"""A square crop: (row, column, size)."""


# ---------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """The generated rasters."""

    gt: Path
    scenes: list[Path]


def _upsample(coarse: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """Repeat every coarse cell ``cell`` x ``cell`` times and cut to ``shape``."""
    return np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[: shape[0], : shape[1]]


def _make_ground_truth(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[tuple]]:
    """Blocky land classes 1-6, some unlabelled (0) and unclassifiable (8) blocks, round lakes (7)."""
    height, width = shape
    scale = width / FULL_SHAPE[1]
    cell = max(8, round(50 * scale))
    coarse = rng.integers(1, 7, size=(math.ceil(height / cell), math.ceil(width / cell)), dtype=np.uint8)
    draw = rng.random(coarse.shape)
    coarse[draw < 0.08] = 0
    coarse[(draw >= 0.08) & (draw < 0.09)] = UNCLASSIFIABLE_ID
    gt = np.ascontiguousarray(_upsample(coarse, cell, shape))
    lakes: list[tuple] = []
    water = 0
    while water < WATER_SHARE * gt.size:
        radius = rng.uniform(15, 60) * scale
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        box, distance = _lake_box(cy, cx, radius * 1.05, shape)
        gt[box][distance < radius] = WATER_ID
        lakes.append((cy, cx, radius, int(rng.integers(200, 900))))  # the lake's usual NIR level (turbidity)
        water = int((gt == WATER_ID).sum())
    return gt, lakes


def _lake_box(cy: float, cx: float, reach: float, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
    """The bounding box of a disc and the distance of its pixel centres to the disc centre."""
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, shape[0])
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, shape[1])
    rows = np.arange(r0, r1)[:, None] + 0.5
    cols = np.arange(c0, c1)[None, :] + 0.5
    return (slice(r0, r1), slice(c0, c1)), np.hypot(rows - cy, cols - cx)


def _make_scene(rng: np.random.Generator, shape: tuple[int, int], lakes: list[tuple]) -> np.ndarray:
    """One date: 13 uint16 bands in L1C order; lakes shrink or swell and change turbidity by date."""
    height, width = shape
    size = height * width
    green = (700 + rng.integers(0, 200, size, dtype=np.uint16)).reshape(shape)
    nir = (2200 + rng.integers(0, 800, size, dtype=np.uint16)).reshape(shape)
    for cy, cx, radius, usual_nir in lakes:
        wet_radius = radius * rng.uniform(0.75, 1.03)  # water level of this date
        nir_level = usual_nir + int(rng.integers(-100, 100))  # open water NDWI about 0.0 ... 0.7
        box, distance = _lake_box(cy, cx, radius * 1.05, shape)
        shore = (distance < radius) & (distance >= wet_radius)  # fallen dry: wet soil and reeds
        count = int(shore.sum())
        green[box][shore] = 850 + rng.integers(0, 150, count, dtype=np.uint16)
        nir[box][shore] = 1100 + rng.integers(0, 1400, count, dtype=np.uint16)
        wet = distance < wet_radius
        count = int(wet.sum())
        green[box][wet] = 1000 + rng.integers(0, 150, count, dtype=np.uint16)
        nir[box][wet] = nir_level + rng.integers(0, 150, count, dtype=np.uint16)
    edge = width * rng.uniform(0.85, 0.97)
    nodata = (np.arange(width)[None, :] + 0.1 * np.arange(height)[:, None]) > edge  # a slanted swath edge
    stack = np.empty((len(L1C_BANDS), height, width), dtype=np.uint16)
    noise = rng.integers(0, 64, size, dtype=np.uint16).reshape(shape)
    for index, band in enumerate(L1C_BANDS):
        if band == "B03":
            stack[index] = green
        elif band == "B08":
            stack[index] = nir
        elif band == "B01":
            stack[index] = 1100 + noise * 3
        else:  # a plausible mix, so the files compress like real imagery rather than like constants
            weight = (index + 1) / len(L1C_BANDS)
            stack[index] = (weight * green + (1 - weight) * nir * 0.5).astype(np.uint16) + noise
        stack[index][nodata] = 0
    return stack


def generate_inputs(folder: Path, shape: tuple[int, int], seed: int = 20210901) -> Inputs:
    """Write the GT raster and the scene stacks (the pipeline's GeoTIFF profile, EPSG:32633)."""
    rng = np.random.default_rng(seed)
    transform = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5800000.0)
    grid_profile = {"crs": CRS.from_user_input(CRS_TEXT), "transform": transform, "height": shape[0],
                    "width": shape[1]}
    gt, lakes = _make_ground_truth(rng, shape)
    gt_path = folder / "gt_rasterized.tif"
    write_raster(gt_path, gt, grid_profile, ["gt"])
    profile = {**GTIFF_PROFILE, **grid_profile, "count": len(L1C_BANDS), "dtype": "uint16", "nodata": None}
    scenes = []
    for date in range(N_DATES):
        path = folder / f"scene_{date:02d}_L1C.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(_make_scene(rng, shape, lakes))
            dst.descriptions = L1C_BANDS
        scenes.append(path)
    return Inputs(gt_path, scenes)


# ---------------------------------------------------------------------- ours (run in a child process)
def ours_masking(gt_path: Path, scenes: list[Path], crop: Window, out_dir: Path) -> dict:
    """Step 02b as the pipeline does it, then writing the 7 masked GTs (timed apart).

    Returns:
        Phase times, per-threshold counts and digests of the full masks, and the masks on the crop.
    """
    started = time.perf_counter()
    gt, profile = read_raster(gt_path, 1)
    grid = grid_of_raster(gt_path)
    water = gt == WATER_ID
    minimum = min_ndwi_at(water, scenes, GREEN_BAND, NIR_BAND, grid)
    read_s = time.perf_counter() - started
    results = mask_shoreline(gt, minimum, THRESHOLDS, WATER_ID, UNCLASSIFIABLE_ID)
    mask_s = time.perf_counter() - started - read_s
    written = time.perf_counter()
    for result in results:
        write_raster(out_dir / f"gt_water_masked_{format_threshold(result.threshold)}.tif", result.gt, profile, ["gt"])
    write_s = time.perf_counter() - written
    row, col, size = crop
    return {
        "read_min_ndwi_s": read_s,
        "mask_s": mask_s,
        "write_s": write_s,
        "kept": [r.water_kept for r in results],
        "total": results[0].water_total,
        "digests": [hashlib.sha1(r.gt.tobytes()).hexdigest() for r in results],
        "crops": [r.gt[row:row + size, col:col + size].copy() for r in results],
    }


def ours_area(gt_path: Path, reference: Path, crop: Window) -> dict:
    """Step 03 as the pipeline does it (reading both rasters included, writing excluded)."""
    grid = grid_of_raster(gt_path)
    check_same_grid(reference, grid, gt_path)
    gt, _ = read_raster(gt_path, 1)
    band1, _ = read_raster(reference, 1)
    area = area_mask(gt, band1)
    row, col, size = crop
    return {"pixels": int(area.sum()), "digest": hashlib.sha1(area.tobytes()).hexdigest(),
            "crop": area[row:row + size, col:col + size].copy()}


# ---------------------------------------------------------------------- original (plain re-creation)
def original_ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDWI as plain float64 array arithmetic, 0 where green + NIR is 0."""
    green = green.astype(np.float64)
    nir = nir.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (green - nir) / (green + nir)
    index[np.isnan(index)] = 0
    return index


def original_masking_loops(gt: np.ndarray, ndwi_by_date: list[np.ndarray], thresholds: tuple[float, ...]) -> list:
    """02b's loops: per threshold, per date, per pixel: GT water with NDWI below T becomes class 8."""
    rows, cols = gt.shape
    outputs = []
    for threshold in thresholds:
        gt_masked = gt.copy()
        for ndwi in ndwi_by_date:
            for i in range(rows):
                for j in range(cols):
                    if gt[i, j] == 7 and ndwi[i, j] < threshold:
                        gt_masked[i, j] = 8
        outputs.append(gt_masked)
    return outputs


def original_area_loops(gt: np.ndarray, band1: np.ndarray) -> np.ndarray:
    """03's loop: 1 where the GT and band 1 are both non-zero."""
    rows, cols = gt.shape
    area = np.zeros((rows, cols), dtype=np.uint8)
    for i in range(rows):
        for j in range(cols):
            if gt[i, j] != 0 and band1[i, j] != 0:
                area[i, j] = 1
    return area


def _read_band(path: Path, band: int) -> np.ndarray:
    """One whole band of a raster, as the original read it (the whole raster at once)."""
    with rasterio.open(path) as src:
        return src.read(band)


def original_full_reads(gt: np.ndarray, scenes: list[Path], crop: Window) -> tuple[float, list, list, list]:
    """One pass of the original's whole-raster reads of B03 and B08 and NDWI over the dates (timed).

    Outside the timing it also applies the original's rule, vectorised, to the whole scene for
    every threshold, so that ours can be checked on every pixel, and keeps the NDWI of the crop.

    Returns:
        Seconds for the reads and NDWI of all dates; the NDWI crop of every date; the digests and
        the kept-water counts of the rule's masks, per threshold.
    """
    seconds = 0.0
    masked = [gt.copy() for _ in THRESHOLDS]
    water = gt == WATER_ID
    ndwi_crops = []
    for scene in scenes:
        started = time.perf_counter()
        green = _read_band(scene, GREEN_BAND)
        nir = _read_band(scene, NIR_BAND)
        ndwi = original_ndwi(green, nir)
        seconds += time.perf_counter() - started
        for out, threshold in zip(masked, THRESHOLDS, strict=True):
            out[water & (ndwi < threshold)] = UNCLASSIFIABLE_ID
        ndwi_crops.append(_crop(ndwi, crop).copy())
    digests = [hashlib.sha1(m.tobytes()).hexdigest() for m in masked]
    kept = [int((m == WATER_ID).sum()) for m in masked]
    return seconds, ndwi_crops, digests, kept


# ---------------------------------------------------------------------- crops
def pick_crop(values: np.ndarray, size: int) -> Window:
    """The square crop whose mean of ``values`` (e.g. the water share) is closest to the scene's.

    Candidates lie on a grid with half-crop spacing; the crop must contain both 0 and 1 values.
    """
    height, width = values.shape
    target = float(values.mean())
    summed = np.zeros((height + 1, width + 1), dtype=np.int64)
    summed[1:, 1:] = values.astype(np.int64).cumsum(0).cumsum(1)
    best, best_gap = (0, 0, size), math.inf
    step = max(size // 2, 1)
    for row in range(0, height - size + 1, step):
        for col in range(0, width - size + 1, step):
            total = (summed[row + size, col + size] - summed[row, col + size]
                     - summed[row + size, col] + summed[row, col])
            if 0 < total < size * size and abs(total / size**2 - target) < best_gap:
                best, best_gap = (row, col, size), abs(total / size**2 - target)
    return best


def _crop(array: np.ndarray, window: Window) -> np.ndarray:
    """The view of a square crop."""
    row, col, size = window
    return array[row:row + size, col:col + size]


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Generate the inputs, measure ours and the re-created original, print the table and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SHAPE[0]}x{QUICK_SHAPE[1]} px and smaller loop crops instead of "
                             f"{FULL_SHAPE[0]}x{FULL_SHAPE[1]} px")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the generated rasters (kept); default: a temporary folder, deleted")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    mask_crop_size, area_crop_size = (100, 200) if args.quick else (200, 400)
    n_pixels = shape[0] * shape[1]

    with work_folder(args.workdir, "bench_preprocessing_") as folder:
        print(f"Scene {shape[0]}x{shape[1]} px, {N_DATES} dates x 13 bands (uint16 GeoTIFF, the pipeline's "
              f"creation options), thresholds {', '.join(format_threshold(t) for t in THRESHOLDS)}; "
              f"work folder {folder}")
        inputs, gen_s = timed(generate_inputs, folder, shape)
        print(f"  generated the inputs in {fmt_seconds(gen_s)}")
        gt, _ = read_raster(inputs.gt, 1)
        water = gt == WATER_ID

        # ours, whole scene, each step in a fresh child process
        mask_crop = pick_crop(water, mask_crop_size)
        out_dir = folder / "masked"
        out_dir.mkdir(exist_ok=True)
        masking = measure_in_child(ours_masking, inputs.gt, inputs.scenes, mask_crop, out_dir)
        ours_mask = masking.value
        ours_masking_s = ours_mask["read_min_ndwi_s"] + ours_mask["mask_s"]

        # the original: whole-raster reads + NDWI measured on the whole scene, loops on a crop
        read_pass_s, ndwi_crops, rule_digests, rule_kept = original_full_reads(gt, inputs.scenes, mask_crop)
        loops, mask_loop_s = timed(original_masking_loops, _crop(gt, mask_crop).copy(), ndwi_crops, THRESHOLDS)
        mask_scale = n_pixels / mask_crop_size**2
        original_masking_s = len(THRESHOLDS) * read_pass_s + mask_loop_s * mask_scale

        band1_full, read_band1_s = timed(_read_band, inputs.scenes[0], 1)
        gt_full, read_gt_s = timed(_read_band, inputs.gt, 1)
        area_crop = pick_crop((gt_full != 0) & (band1_full != 0), area_crop_size)
        area = measure_in_child(ours_area, inputs.gt, inputs.scenes[0], area_crop)
        original_area, area_loop_s = timed(original_area_loops, _crop(gt_full, area_crop).copy(),
                                           _crop(band1_full, area_crop).copy())
        area_scale = n_pixels / area_crop_size**2
        original_area_s = read_gt_s + read_band1_s + area_loop_s * area_scale
        # the computation alone, without the reads both versions share (best of 3, in this process)
        area_compute_s = min(timed(area_mask, gt_full, band1_full)[1] for _ in range(3))

        identical_crop = (all(np.array_equal(a, b) for a, b in zip(ours_mask["crops"], loops, strict=True))
                          and np.array_equal(area.value["crop"], original_area))
        reference_area = ((gt_full != 0) & (band1_full != 0)).astype(np.uint8)
        identical_full = (ours_mask["digests"] == rule_digests and ours_mask["kept"] == rule_kept
                          and area.value["digest"] == hashlib.sha1(reference_area.tobytes()).hexdigest())

    masking_speedup = original_masking_s / ours_masking_s
    area_speedup = original_area_s / area.seconds
    peak_mb = max(masking.peak_mb, area.peak_mb)
    crop_water = float(_crop(water, mask_crop).mean())

    print()
    print("Water pixels kept per threshold (ours):")
    total = ours_mask["total"]
    for threshold, kept in zip(THRESHOLDS, ours_mask["kept"], strict=True):
        print(f"    NDWI >= {format_threshold(threshold):>4}: {kept:>8} of {total} ({100 * kept / total:5.1f} %)")
    print()
    print_table(
        ["step (whole scene)", "ours", "original (est.)", "speedup", "ours peak RSS"],
        [
            [f"02b NDWI masking, {len(THRESHOLDS)} T x {N_DATES} dates", fmt_seconds(ours_masking_s),
             fmt_seconds(original_masking_s), f"{masking_speedup:,.0f}x", f"{masking.peak_mb:.0f} MB"],
            ["03 area mask", fmt_seconds(area.seconds), fmt_seconds(original_area_s), f"{area_speedup:,.0f}x",
             f"{area.peak_mb:.0f} MB"],
            ["03 area mask, computation only", fmt_seconds(area_compute_s), fmt_seconds(area_loop_s * area_scale),
             f"{area_loop_s * area_scale / area_compute_s:,.0f}x", "-"],
        ],
    )
    print()
    print("How the figures were obtained:")
    print(f"  ours 02b  = reading the GT and B03/B08 of {N_DATES} scenes + min NDWI "
          f"{fmt_seconds(ours_mask['read_min_ndwi_s'])}, masks for {len(THRESHOLDS)} thresholds "
          f"{fmt_seconds(ours_mask['mask_s'])} (writing the {len(THRESHOLDS)} GTs, not counted: "
          f"{fmt_seconds(ours_mask['write_s'])}); child process, RSS before the call {masking.start_mb:.0f} MB")
    print(f"  ours 03   = reading the GT and band 1 + area_mask (writing not counted); child process, "
          f"RSS before the call {area.start_mb:.0f} MB")
    print(f"  orig 02b  = {len(THRESHOLDS)} x whole-scene reads + NDWI of {N_DATES} dates "
          f"({len(THRESHOLDS)} x {fmt_seconds(read_pass_s)}, measured)")
    print(f"            + per-pixel loops on a {mask_crop_size}x{mask_crop_size} crop ({fmt_seconds(mask_loop_s)} "
          f"measured) x {mask_scale:.1f} (pixel-count scaling; crop water share {100 * crop_water:.1f} %, "
          f"scene {100 * float(water.mean()):.1f} %)")
    print(f"  orig 03   = whole-scene reads of GT and band 1 ({fmt_seconds(read_gt_s + read_band1_s)}, measured)"
          f" + per-pixel loop on a {area_crop_size}x{area_crop_size} crop ({fmt_seconds(area_loop_s)} measured)"
          f" x {area_scale:.1f} (pixel-count scaling)")
    print(f"  generated inputs: {fmt_seconds(gen_s)} (not counted)")
    print()
    print(f"identical: {identical_crop}  (ours vs the per-pixel loops on the crops, all {len(THRESHOLDS)} "
          f"thresholds and the area mask)")
    print(f"identical on the whole scene: {identical_full}  (ours vs the original's rule, vectorised)")
    print(result_line({
        "masking_speedup": masking_speedup,
        "area_speedup": area_speedup,
        "area_compute_speedup": area_loop_s * area_scale / area_compute_s,
        "ours_masking_s": ours_masking_s,
        "original_masking_s_scaled": original_masking_s,
        "ours_area_s": area.seconds,
        "original_area_s_scaled": original_area_s,
        "ours_masking_write_s": ours_mask["write_s"],
        "peak_mb": peak_mb,
        "masking_peak_mb": masking.peak_mb,
        "area_peak_mb": area.peak_mb,
        "identical": identical_crop,
        "identical_full": identical_full,
        "rows": shape[0],
        "cols": shape[1],
        "dates": N_DATES,
        "mask_crop": mask_crop_size,
        "area_crop": area_crop_size,
    }))
    return 0 if identical_crop and identical_full else 1


if __name__ == "__main__":
    sys.exit(main())
