"""Benchmark: ingesting one Sentinel-2 L1C product (step 01) — wall time and peak memory.

Generates a flat folder of per-band GeoTIFFs at native resolution for one full 10980 x 10980
tile (10 m: B02 B03 B04 B08; 20 m: B05 B06 B07 B8A B11 B12; 60 m: B01 B09 B10), uint16,
EPSG:32633, upper-left corner (399960, 5600040), written window by window so the generator
stays small in memory. Then it calls the library as step 01 does (``open_product``,
``grid_from_bounds`` on the AOI, ``ingest_product``) with an AOI covering the whole tile, in a
fresh child process, and reports wall time, peak RSS, output size and a nearest-neighbour spot
check. The same product is also zipped as a ``.SAFE`` (deflate, level 1; like ESA's zips of JP2
files the members barely shrink) and ingested from the zip in place, and the time of the
integrity checks inside that ingest is measured: the CRC-32 of every zip member used (streamed
once before ``/vsizip/`` reads it), the GDAL decoder-message checks around every band read, and
the band-extent check. For comparison it measures a plain re-creation of the original's approach
to memory: every band read whole, repeated to 10 m with ``np.repeat`` and stacked as float64.

Usage:
    python benchmarks/ingest.py [--quick] [--workdir DIR] [--compress {deflate,none}]
                                [--gdal-cachemax MB]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import (
    MB,
    fmt_seconds,
    folder_size_mb,
    measure_in_child,
    print_table,
    result_line,
    timed,
    work_folder,
)
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box

from helpers.core.config import L1C_BANDS
from helpers.core.grid import grid_from_bounds
from helpers.data import sentinel
from helpers.data.sentinel import ingest_product, open_product

FULL_SIZE = 10980
"""Pixels per side of a Sentinel-2 tile at 10 m."""
QUICK_SIZE = 1830
RESOLUTION_OF: dict[str, int] = {
    **dict.fromkeys(("B02", "B03", "B04", "B08"), 10),
    **dict.fromkeys(("B05", "B06", "B07", "B8A", "B11", "B12"), 20),
    **dict.fromkeys(("B01", "B09", "B10"), 60),
}
ORIGIN = (399960.0, 5600040.0)
"""Upper-left corner of the tile (x, y) in EPSG:32633."""
CRS_TEXT = "EPSG:32633"
PRODUCT_NAME = "S2B_MSIL1C_20200612T100559_N0209_R022_T33UUU_20200612T121448"
FILE_STEM = "T33UUU_20200612T100559"
ORIGINAL_CROP = 3660
"""Side of the crop the original's approach runs on in the full run (its whole tile needs ~12 GB)."""
LIMIT_MB = 2048
"""The memory target of ingestion: peak RSS under 2 GB."""
CHECKS_LIMIT = 0.15
"""The integrity checks may take at most this share of the ingest wall time."""
SPOT_CHECKS = 25
"""Random pixels compared per band (plus the four corners)."""


# ---------------------------------------------------------------------- inputs
def _band_values(rng: np.random.Generator, band_index: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Synthetic DNs: a smooth band-specific pattern plus per-pixel noise, never 0 (0 is no data)."""
    pattern = ((rows[:, None] // 7) * 13 + (cols[None, :] // 5) * 7 + 37 * band_index) % 600
    noise = rng.integers(0, 64, size=pattern.shape, dtype=np.int64)
    return (800 + 50 * band_index + pattern + noise).astype(np.uint16)


def generate_product(folder: Path, size: int, compress: str, seed: int = 20200612) -> Path:
    """Write the band files of one tile (``size`` pixels per side at 10 m) window by window.

    Args:
        folder: Where the product folder goes.
        size: Tile side in 10 m pixels (a multiple of 6).
        compress: "deflate" (level 1, horizontal predictor, as the pipeline's own files) or "none".
        seed: Seed of the noise.

    Returns:
        The product folder.
    """
    product = folder / PRODUCT_NAME
    product.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for band_index, band in enumerate(L1C_BANDS):
        resolution = RESOLUTION_OF[band]
        side = size * 10 // resolution
        profile = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "crs": CRS.from_user_input(CRS_TEXT), "width": side, "height": side, "count": 1,
                   "dtype": "uint16", "nodata": 0,
                   "transform": Affine(resolution, 0.0, ORIGIN[0], 0.0, -resolution, ORIGIN[1])}
        if compress == "deflate":
            profile.update(compress="deflate", predictor=2, zlevel=1)
        with rasterio.open(product / f"{FILE_STEM}_{band}.tif", "w", **profile) as dst:
            for row in range(0, side, 1024):
                height = min(1024, side - row)
                values = _band_values(rng, band_index, np.arange(row, row + height), np.arange(side))
                dst.write(values, 1, window=Window(0, row, side, height))
    return product


def zip_safe(product_dir: Path, folder: Path) -> Path:
    """Zip the band files as ``<name>.SAFE/GRANULE/<granule>/IMG_DATA/<file>`` (deflate, level 1).

    Args:
        product_dir: The generated band folder.
        folder: Where the zip goes.

    Returns:
        The zip file.
    """
    archive = folder / f"{PRODUCT_NAME}.zip"
    img_data = f"{PRODUCT_NAME}.SAFE/GRANULE/L1C_T33UUU_A026952_20200612T100559/IMG_DATA"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for path in sorted(product_dir.glob("*.tif")):
            zipped.write(path, f"{img_data}/{path.name}")
    return archive


def tile_bounds(size: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the tile."""
    return ORIGIN[0], ORIGIN[1] - size * 10, ORIGIN[0] + size * 10, ORIGIN[1]


# ---------------------------------------------------------------------- ours (in a child process)
def ours_ingest(product_dir: Path, bounds: tuple[float, float, float, float], out_path: Path) -> dict:
    """Step 01's calls: locate the bands, build the grid of the AOI's bounds, ingest."""
    product = open_product(product_dir, L1C_BANDS)
    aoi = box(*bounds)
    grid = grid_from_bounds(aoi.bounds, CRS_TEXT, 10)
    tags = ingest_product(product, L1C_BANDS, grid, aoi, out_path)
    return {"width": grid.width, "height": grid.height, "tags": tags,
            "gdal_cachemax": os.environ.get("GDAL_CACHEMAX", "default")}


def _timer(spent: dict[str, float], key: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, adding its wall time to ``spent[key]`` on every call."""

    def call(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args)
        finally:
            spent[key] += time.perf_counter() - started

    return call


@contextlib.contextmanager
def _timed_checks() -> Iterator[dict[str, float]]:
    """Time the integrity checks that ``ingest_product`` runs, by wrapping them where it looks them up.

    ``crc``: :func:`helpers.data.sentinel.verify_product` (the zip members' CRC-32); ``decoder``: the
    GDAL message collector (attaching it, and its ``take``/``raise_for`` around every band read);
    ``extents``: :func:`helpers.data.product_checks.check_band_extents`.
    """
    spent = {"crc": 0.0, "decoder": 0.0, "extents": 0.0, "crc_members": 0, "crc_mb": 0.0}
    verify, collect, extents = sentinel.verify_product, sentinel.collect_gdal_messages, sentinel.check_band_extents

    def counted_verify(*args: Any) -> Any:
        check = verify(*args)
        spent["crc_members"] += check.members
        spent["crc_mb"] += check.compressed_bytes / MB
        return check

    @contextlib.contextmanager
    def timed_collect() -> Iterator[Any]:
        started = time.perf_counter()
        with collect() as messages:
            spent["decoder"] += time.perf_counter() - started
            messages.take = _timer(spent, "decoder", messages.take)
            messages.raise_for = _timer(spent, "decoder", messages.raise_for)
            yield messages
            started = time.perf_counter()
        spent["decoder"] += time.perf_counter() - started

    sentinel.verify_product = _timer(spent, "crc", counted_verify)
    sentinel.collect_gdal_messages = timed_collect
    sentinel.check_band_extents = _timer(spent, "extents", extents)
    try:
        yield spent
    finally:
        sentinel.verify_product, sentinel.collect_gdal_messages, sentinel.check_band_extents = verify, collect, extents


def ours_checked_ingest(product_path: Path, bounds: tuple[float, float, float, float], out_path: Path) -> dict:
    """Step 01's calls (:func:`ours_ingest`) with the time of the integrity checks inside them."""
    with _timed_checks() as spent:
        result = ours_ingest(product_path, bounds, out_path)
    return {**result, "checks": spent}


def same_pixels(first: Path, second: Path, block_rows: int = 1024) -> bool:
    """True if two stacks hold the same pixels (read block by block)."""
    with rasterio.open(first) as a, rasterio.open(second) as b:
        if (a.count, a.height, a.width) != (b.count, b.height, b.width):
            return False
        for row in range(0, a.height, block_rows):
            window = Window(0, row, a.width, min(block_rows, a.height - row))
            if not np.array_equal(a.read(window=window), b.read(window=window)):
                return False
    return True


# ---------------------------------------------------------------------- original (plain re-creation)
def original_stack(product_dir: Path, crop: int | None) -> dict:
    """Every band read whole, repeated to 10 m with ``np.repeat`` and stacked as float64.

    Args:
        product_dir: The band folder.
        crop: None for the whole tile, else the side (10 m pixels) of the upper-left crop to read.

    Returns:
        Shape and byte size of the stack.
    """
    stack = None
    for index, band in enumerate(L1C_BANDS):
        factor = RESOLUTION_OF[band] // 10
        with rasterio.open(product_dir / f"{FILE_STEM}_{band}.tif") as src:
            window = None if crop is None else Window(0, 0, crop // factor, crop // factor)
            data = src.read(1, window=window)
        fine = np.repeat(np.repeat(data, factor, axis=0), factor, axis=1)
        if stack is None:
            stack = np.empty((len(L1C_BANDS), *fine.shape), dtype=np.float64)
        stack[index] = fine
    return {"shape": stack.shape, "nbytes": stack.nbytes}


# ---------------------------------------------------------------------- checks
def spot_check(product_dir: Path, out_path: Path, size: int, seed: int = 7) -> dict[str, bool]:
    """Compare output pixels with the nearest-neighbour source pixel, per band.

    Checks the four corners and ``SPOT_CHECKS`` random pixels of every band, and for B05 (20 m)
    a 64 x 64 window against the source repeated 2 x 2.

    Returns:
        Band (or "B05 window") -> all equal.
    """
    rng = np.random.default_rng(seed)
    points = [(0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)]
    points += [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(SPOT_CHECKS)]
    outcome: dict[str, bool] = {}
    with rasterio.open(out_path) as out:
        descriptions = list(out.descriptions)
        for band in L1C_BANDS:
            index = descriptions.index(band) + 1
            factor = RESOLUTION_OF[band] // 10
            with rasterio.open(product_dir / f"{FILE_STEM}_{band}.tif") as src:
                equal = True
                for row, col in points:
                    got = out.read(index, window=Window(col, row, 1, 1))[0, 0]
                    expected = src.read(1, window=Window(col // factor, row // factor, 1, 1))[0, 0]
                    equal &= bool(got == expected)
                outcome[band] = equal
        row, col = (int(v) * 2 for v in rng.integers(0, size // 2 - 32, 2))
        with rasterio.open(product_dir / f"{FILE_STEM}_B05.tif") as src:
            coarse = src.read(1, window=Window(col // 2, row // 2, 32, 32))
        fine = out.read(descriptions.index("B05") + 1, window=Window(col, row, 64, 64))
        outcome["B05 window"] = bool(np.array_equal(fine, np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)))
    return outcome


def _total_ram_mb() -> float | None:
    """Physical memory of the machine in MiB, None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB
    except (ValueError, OSError):
        return None


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Generate the product, measure ours and the re-created original, print the table and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a {QUICK_SIZE}x{QUICK_SIZE} px tile instead of {FULL_SIZE}x{FULL_SIZE}")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the generated product and the output (kept; a product generated there "
                             "before with the same settings is reused); default: a temporary folder, deleted")
    parser.add_argument("--compress", choices=("deflate", "none"), default="deflate",
                        help="compression of the generated band files (tiled 256x256 either way)")
    parser.add_argument("--gdal-cachemax", type=int, default=None, metavar="MB",
                        help="GDAL block cache of the measured child (default: GDAL's, 5%% of the RAM)")
    args = parser.parse_args(argv)
    size = QUICK_SIZE if args.quick else FULL_SIZE
    if args.gdal_cachemax is not None:
        os.environ["GDAL_CACHEMAX"] = str(args.gdal_cachemax)  # inherited by the spawned children
    ram = _total_ram_mb()
    cache_text = (f"{args.gdal_cachemax} MB (set)" if args.gdal_cachemax is not None
                  else f"GDAL default, 5 % of RAM = {0.05 * ram:.0f} MB" if ram else "GDAL default")

    with work_folder(args.workdir, "bench_ingest_") as folder:
        settings = {"size": size, "compress": args.compress, "generator": 2}
        marker = folder / "product_settings.json"
        product_dir = folder / PRODUCT_NAME
        archive = folder / f"{PRODUCT_NAME}.zip"
        if (marker.exists() and json.loads(marker.read_text()) == settings and product_dir.is_dir()
                and archive.is_file()):
            gen_s = zip_s = 0.0
            print(f"Reusing the generated product in {product_dir} and its zip")
        else:
            marker.unlink(missing_ok=True)
            product_dir, gen_s = timed(generate_product, folder, size, args.compress)
            archive, zip_s = timed(zip_safe, product_dir, folder)
            marker.write_text(json.dumps(settings))
        source_mb = folder_size_mb(product_dir)
        zip_mb = archive.stat().st_size / MB
        print(f"Tile {size}x{size} px at 10 m, 13 bands at native resolution (uint16, tiled 256x256, "
              f"{'deflate level 1 + predictor' if args.compress == 'deflate' else 'no compression'}): "
              f"{source_mb:.0f} MB, generated in {fmt_seconds(gen_s)}; zipped as a .SAFE (deflate level 1): "
              f"{zip_mb:.0f} MB in {fmt_seconds(zip_s)}; GDAL cache: {cache_text}")

        out_path = folder / "out" / f"{PRODUCT_NAME}_L1C.tif"
        out_path.unlink(missing_ok=True)
        ours = measure_in_child(ours_checked_ingest, product_dir, tile_bounds(size), out_path)
        out_mb = out_path.stat().st_size / MB
        checks, check_s = timed(spot_check, product_dir, out_path, size)
        spot_ok = all(checks.values())
        zip_out = folder / "out" / f"{PRODUCT_NAME}_L1C_from_zip.tif"
        zip_out.unlink(missing_ok=True)
        zipped = measure_in_child(ours_checked_ingest, archive, tile_bounds(size), zip_out)
        zip_same = same_pixels(out_path, zip_out)

        crop = None if args.quick else ORIGINAL_CROP
        original = measure_in_child(original_stack, product_dir, crop)
        scale = 1.0 if crop is None else (size / crop) ** 2
        original_peak_est = original.start_mb + original.work_mb * scale
        original_s_est = original.seconds * scale
        full_stack_mb = len(L1C_BANDS) * size * size * 8 / MB

    under = max(ours.peak_mb, zipped.peak_mb) < LIMIT_MB
    label = "measured" if crop is None else f"est.: {crop}x{crop} crop x {scale:.0f}"
    folder_checks, zip_checks = ours.value["checks"], zipped.value["checks"]
    folder_checks_s = folder_checks["decoder"] + folder_checks["extents"]
    zip_checks_s = zip_checks["crc"] + zip_checks["decoder"] + zip_checks["extents"]
    folder_share, zip_share = folder_checks_s / ours.seconds, zip_checks_s / zipped.seconds
    checks_ok = max(folder_share, zip_share) < CHECKS_LIMIT

    def share(seconds: float, total: float) -> str:
        return f"{fmt_seconds(seconds)} ({100 * seconds / total:.1f} %)"

    print()
    print_table(
        ["ingest of one tile", "ours (band folder)", "ours (zipped .SAFE, in place)",
         f"original re-creation ({label})"],
        [
            ["wall time", fmt_seconds(ours.seconds), fmt_seconds(zipped.seconds), fmt_seconds(original_s_est)],
            ["  zip CRC-32 check", "-", share(zip_checks["crc"], zipped.seconds), "-"],
            ["  GDAL decoder-message check", share(folder_checks["decoder"], ours.seconds),
             share(zip_checks["decoder"], zipped.seconds), "-"],
            ["  band-extent check", share(folder_checks["extents"], ours.seconds),
             share(zip_checks["extents"], zipped.seconds), "-"],
            ["  integrity checks in all", share(folder_checks_s, ours.seconds), share(zip_checks_s, zipped.seconds),
             "-"],
            ["peak RSS", f"{ours.peak_mb:,.0f} MB", f"{zipped.peak_mb:,.0f} MB", f"{original_peak_est:,.0f} MB"],
            ["  of which before the call", f"{ours.start_mb:,.0f} MB", f"{zipped.start_mb:,.0f} MB",
             f"{original.start_mb:,.0f} MB"],
            ["output", f"uint16 GeoTIFF, {out_mb:,.0f} MB on disk", "the same pixels" if zip_same else "DIFFERENT",
             f"float64 array, {full_stack_mb:,.0f} MB"],
        ],
    )
    print()
    print(f"ours: {ours.value['width']}x{ours.value['height']} px x 13 bands, each in a child process; wall time "
          f"from open_product to the renamed output file (the child's start-up and imports not counted), the "
          f"integrity checks included")
    if crop is None:
        print("original: read + np.repeat + float64 stack of the whole tile, measured in a child process "
              "(writing not included)")
    else:
        print(f"original: read + np.repeat + float64 stack run on the upper-left {crop}x{crop} px crop only "
              f"({fmt_seconds(original.seconds)}, peak {original.peak_mb:,.0f} MB); time and the memory above the "
              f"child's start ({original.work_mb:,.0f} MB) scaled by the pixel count x {scale:.0f} (writing not "
              f"included); the float64 stack alone is {full_stack_mb:,.0f} MB")
    print(f"spot check, output = nearest-neighbour source pixel ({SPOT_CHECKS + 4} pixels per band, and a 64x64 "
          f"window of B05 at 20 m): {spot_ok} ({fmt_seconds(check_s)})"
          + ("" if spot_ok else f"  failed: {', '.join(k for k, v in checks.items() if not v)}"))
    print(f"zip CRC-32 check: {int(zip_checks['crc_members'])} members, {zip_checks['crc_mb']:,.0f} MB in the zip, "
          f"streamed once with zipfile before /vsizip/ reads them; the share is of each ingest's wall time")
    print(f"peak memory under 2 GB: {under}; integrity checks under {100 * CHECKS_LIMIT:.0f} % of the wall time: "
          f"{checks_ok}")
    print(result_line({
        "ingest_s": ours.seconds,
        "zip_ingest_s": zipped.seconds,
        "crc_check_s": zip_checks["crc"],
        "crc_share": zip_checks["crc"] / zipped.seconds,
        "decoder_check_s": zip_checks["decoder"],
        "extent_check_s": zip_checks["extents"],
        "checks_share": zip_share,
        "checks_share_folder": folder_share,
        "checks_under_15pct": checks_ok,
        "zip_same": zip_same,
        "zip_peak_mb": zipped.peak_mb,
        "peak_mb": ours.peak_mb,
        "under_2gb": under,
        "output_mb": out_mb,
        "spot_check": spot_ok,
        "original_s_est": original_s_est,
        "original_peak_mb_est": original_peak_est,
        "original_scaled": crop is not None,
        "memory_ratio": original_peak_est / ours.peak_mb,
        "size": size,
        "compress": args.compress,
        "gdal_cachemax": args.gdal_cachemax if args.gdal_cachemax is not None else "default",
    }))
    return 0 if spot_ok and zip_same and checks_ok else 1


if __name__ == "__main__":
    sys.exit(main())
