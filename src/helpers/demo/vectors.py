"""The demo's vector files: the ground truth, the AOI and the true changes, as shapefiles.

Polygons follow the pixel edges of the scene's rasters. Shapefiles are written with a fixed
DBF header date, so that the same scene gives byte-identical files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine
from rasterio import features
from shapely.geometry import Polygon, shape

from helpers.demo.landscape import DemoScene
from helpers.demo.layout import ORIGIN_X, ORIGIN_Y, PIXEL_SIZE
from helpers.demo.safe_writer import CRS

_DBF_DATE = "2019-01-01"  # fixed DBF header date, so that shapefiles are byte-identical


def write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Write a shapefile into a temporary folder, then move its sidecars (``.shp`` last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp_") as tmp:
        frame.to_file(Path(tmp) / path.name, driver="ESRI Shapefile", engine="pyogrio",
                      DBF_DATE_LAST_UPDATE=_DBF_DATE)
        parts = sorted(Path(tmp).iterdir(), key=lambda p: (p.suffix.lower() == ".shp", p.name))
        for part in parts:
            os.replace(part, path.with_suffix(part.suffix))


def polygonise(values: np.ndarray, transform: Affine, mask: np.ndarray | None = None) -> tuple[list[Polygon],
                                                                                              list[int]]:
    """Polygons of the equal-valued regions of an integer raster, following pixel edges."""
    pairs = features.shapes(values.astype(np.int32), mask=mask, connectivity=4, transform=transform)
    polygons, ids = [], []
    for geometry, value in pairs:
        polygons.append(shape(geometry))
        ids.append(int(value))
    return polygons, ids


def gt_frame(scene: DemoScene) -> gpd.GeoDataFrame:
    """The ground truth: one polygon per parcel region of the pool years, attribute ``ATKIS_mod``."""
    polygons, ids = polygonise(scene.parcel, scene.transform)
    classes = scene.parcel_class[np.array(ids, dtype=np.int64)].astype(np.int32)
    return gpd.GeoDataFrame({"ATKIS_mod": classes}, geometry=polygons, crs=CRS)


def change_frame(scene: DemoScene) -> gpd.GeoDataFrame:
    """The true changes: one polygon per region of equal (old, new) class, numbered from 1."""
    changed = scene.label != scene.label_new
    code = np.where(changed, scene.label.astype(np.int32) * 16 + scene.label_new, 0)
    polygons, codes = polygonise(code, scene.transform, mask=changed)
    codes_arr = np.array(codes, dtype=np.int32)
    return gpd.GeoDataFrame({
        "change_id": np.arange(1, len(polygons) + 1, dtype=np.int32),
        "old_class": codes_arr // 16, "new_class": codes_arr % 16,
    }, geometry=polygons, crs=CRS)


def aoi_polygon(rng: np.random.Generator, size: int, share: float = 0.87) -> Polygon:
    """An irregular AOI polygon inside the scene covering about ``share`` of it (map coordinates)."""
    corners = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    inward = [(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)]  # (dx, dy) into the scene per side
    points, weights = [], []
    for side in range(4):
        (x0, y0), (x1, y1) = corners[side], corners[(side + 1) % 4]
        steps = np.concatenate([[0.0], np.sort(rng.uniform(0.1, 0.9, 4))])
        for s in steps:
            points.append((x0 + s * (x1 - x0), y0 + s * (y1 - y0), side, s == 0.0))
            weights.append(rng.uniform(0.4, 1.6))

    def build(scale: float) -> Polygon:
        coords = []
        for (x, y, side, corner), weight in zip(points, weights, strict=True):
            d = scale * weight
            dx, dy = inward[side]
            if corner:  # a corner is pushed in from both adjacent sides
                pdx, pdy = inward[(side - 1) % 4]
                dx, dy = dx + pdx, dy + pdy
            coords.append((x + d * dx, y + d * dy))
        return Polygon(coords)

    low, high = 0.0, 0.2
    for _ in range(30):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if build(mid).area > share else (low, mid)
    extent = size * PIXEL_SIZE
    unit = build(0.5 * (low + high))
    return Polygon([(round(ORIGIN_X + x * extent, 2), round(ORIGIN_Y - y * extent, 2))
                    for x, y in unit.exterior.coords])
