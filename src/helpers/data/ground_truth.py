"""Ground-truth rasters: rasterisation, NDWI shoreline masking and the area mask."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from helpers.core.config import Config, normalise_gt_value
from helpers.core.errors import InputError
from helpers.core.grid import SceneGrid, check_same_grid
from helpers.core.io import open_raster
from helpers.core.vector import read_vector


def rasterize_ground_truth(config: Config, grid: SceneGrid, gt_file: Path | None = None,
                           attribute: str | None = None) -> np.ndarray:
    """Burn the class attribute of the GT vector file onto the scene grid.

    Polygons are burnt in file order (later ones win where they overlap) with the pixel-centre
    rule (``all_touched=False``), as ``gdal_rasterize -a ATKIS_mod`` did. Attribute values are
    mapped to class ids through the class table's ``gt_values``.

    Args:
        config: Study-area configuration (class table).
        grid: Target grid.
        gt_file: GT vector file (default: the config's).
        attribute: Class attribute (default: the config's).

    Returns:
        uint8 class raster, 0 outside every polygon.

    Raises:
        InputError: Missing attribute, values not in the class table, non-polygon
            geometries, missing CRS.
    """
    gt_file = gt_file or config.gt_file
    attribute = attribute or config.gt_attribute
    frame = read_vector(gt_file, "ground truth", str(grid.crs))
    if attribute not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c != "geometry")
        raise InputError(f"{gt_file}: ground truth has no attribute '{attribute}' (attributes: {columns})")
    lookup = {value: c.id for c in config.classes for value in c.gt_values}
    keys = [normalise_gt_value(v) if v is not None else None for v in frame[attribute].tolist()]
    unknown = sorted({repr(k) for k in keys if k not in lookup})
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise InputError(f"{gt_file}: '{attribute}' values not in the config's class table: {shown}")
    shapes = ((geometry, lookup[key]) for geometry, key in zip(frame.geometry, keys, strict=True))
    return rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.transform, fill=0,
                     all_touched=False, dtype="uint8")


def ndwi(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference water index (B03 - B08) / (B03 + B08), 0 where the sum is 0."""
    green = green.astype(np.float64)
    nir = nir.astype(np.float64)
    total = green + nir
    out = np.zeros_like(total)
    np.divide(green - nir, total, out=out, where=total != 0)
    return out


@dataclass(frozen=True)
class _Patch:
    """A window holding selected pixels: where they are inside it and in the output vector."""

    window: Window
    inner: np.ndarray
    positions: np.ndarray


def _patches(pixels: np.ndarray, block: int) -> list[_Patch]:
    """Split the selected pixels into ``block`` x ``block`` windows (those holding any of them).

    Positions number the selected pixels in row-major order of the whole image.
    """
    patches = []
    start = 0
    for row in range(0, pixels.shape[0], block):
        selected = pixels[row:row + block]
        count = int(selected.sum())
        if not count:
            continue
        order = np.cumsum(selected.ravel(), dtype=np.int64).reshape(selected.shape) - 1 + start
        for col in range(0, pixels.shape[1], block):
            inner = selected[:, col:col + block]
            if inner.any():
                window = Window(col, row, inner.shape[1], inner.shape[0])
                patches.append(_Patch(window, inner, order[:, col:col + block][inner]))
        start += count
    return patches


def _ndwi_at_patches(scene: Path, patches: Sequence[_Patch], count: int, green_band: int, nir_band: int) -> np.ndarray:
    values = np.empty(count)
    with open_raster(scene) as src:
        for patch in patches:
            green = src.read(green_band, window=patch.window)[patch.inner]
            nir = src.read(nir_band, window=patch.window)[patch.inner]
            values[patch.positions] = ndwi(green, nir)
    return values


def min_ndwi_at(pixels: np.ndarray, scenes: Sequence[Path], green_band: int, nir_band: int, grid: SceneGrid,
                block: int = 256, workers: int | None = None) -> np.ndarray:
    """Minimum NDWI over several scenes at selected pixels, reading only what holds them.

    Only the ``block`` x ``block`` windows (the pipeline's GeoTIFF tile size) that contain
    selected pixels are read, and only bands B03 and B08, so a few lakes in a large scene cost
    a few small reads per date. Scenes are read in parallel threads.

    Args:
        pixels: Boolean mask (rows, cols) of the pixels of interest (e.g. GT water).
        scenes: Processed scene stacks (all on ``grid``).
        green_band: 1-based band index of B03.
        nir_band: 1-based band index of B08.
        grid: The scene grid.
        block: Window size in pixels.
        workers: Reader threads (default: the number of CPUs, at most the number of scenes).

    Returns:
        float64 array with one value per selected pixel (row-major order).
    """
    for scene in scenes:
        check_same_grid(scene, grid, scenes[0])
    count = int(pixels.sum())
    minimum = np.full(count, np.inf)
    if not count or not scenes:
        return minimum
    patches = _patches(pixels, block)
    workers = workers or min(len(scenes), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for values in pool.map(lambda scene: _ndwi_at_patches(scene, patches, count, green_band, nir_band), scenes):
            np.minimum(minimum, values, out=minimum)
    return minimum


@dataclass
class WaterMaskResult:
    """Outcome of NDWI shoreline masking at one threshold."""

    threshold: float
    gt: np.ndarray
    water_kept: int
    water_total: int

    @property
    def share_kept(self) -> float:
        """Share of GT water pixels that stay water."""
        return self.water_kept / self.water_total if self.water_total else 0.0


def mask_shoreline(gt: np.ndarray, min_ndwi: np.ndarray, thresholds: Sequence[float], water_id: int,
                   unclassifiable_id: int) -> list[WaterMaskResult]:
    """Relabel GT water pixels that are not water (NDWI >= T) on every image as unclassifiable.

    Args:
        gt: Class raster.
        min_ndwi: Minimum NDWI over the images at the water pixels (row-major order of
            ``gt == water_id``), as returned by :func:`min_ndwi_at`.
        thresholds: NDWI thresholds of the sweep.
        water_id: Water class id.
        unclassifiable_id: Id of the excluded class.

    Returns:
        One result per threshold, in the given order.
    """
    water = gt == water_id
    rows, cols = np.nonzero(water)
    results = []
    for threshold in thresholds:
        masked = gt.copy()
        drop = min_ndwi < round(float(threshold), 6)
        masked[rows[drop], cols[drop]] = unclassifiable_id
        results.append(WaterMaskResult(float(threshold), masked, int((~drop).sum()), int(water.sum())))
    return results


def water_sweep_line(threshold: str, kept: int, total: int) -> str:
    """One printed line of the threshold sweep: how many GT water pixels a threshold keeps."""
    share = 100 * kept / total if total else 0.0
    return f"    NDWI >= {threshold:>4}: {kept:>8} of {total} water pixels kept ({share:5.1f} %)"


def area_mask(gt: np.ndarray, band1: np.ndarray) -> np.ndarray:
    """The original's area (``classification_area = "gt"``): 1 where the GT is labelled and the
    reference scene has data (band 1 non-zero), else 0."""
    return ((gt != 0) & (band1 != 0)).astype(np.uint8)


def scene_area_mask(band1: np.ndarray) -> np.ndarray:
    """The default area (``classification_area = "aoi"``): 1 where the reference scene has data.

    Step 01 sets every pixel whose centre is outside the AOI to 0, so this is the AOI where the
    scene has data; it needs no GT, so a classification-only study area can use it, and with GT
    the whole AOI is classified, not only the GT polygons.
    """
    return (band1 != 0).astype(np.uint8)


def extra_area_mask(areas: Sequence[BaseGeometry], grid: SceneGrid, band1: np.ndarray) -> np.ndarray:
    """1 inside any classification-only AOI where the reference scene has data, else 0."""
    inside = np.zeros((grid.height, grid.width), dtype=bool)
    for geometry in areas:
        inside |= grid.inside_mask(geometry)
    return (inside & (band1 != 0)).astype(np.uint8)
