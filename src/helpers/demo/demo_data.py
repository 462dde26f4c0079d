"""Embedded demo study area: a synthetic, deterministic Sentinel-2 Level-1C time series.

The generator draws a small agricultural landscape (fields and meadows as parcels, forest
stands, a village with buildings, an industrial estate, a reservoir, roads and a few
unclassifiable patches), renders one L1C product per configured date with seasonal
behaviour per class, and writes the ground truth of the paper's eight classes as vector
files. Between the training-pool dates and the new dates some parcels change their land
cover; the new products show the new cover, the ground truth keeps the old one, and the
changed areas are written as a separate true-change file.

Everything is derived from ``numpy.random.default_rng(seed)``: the same seed and size give
byte-identical files. The output layout under ``<data_root>/raw`` is::

    sentinel/level_L1C/<product>.SAFE/MTD_MSIL1C.xml
    sentinel/level_L1C/<product>.SAFE/GRANULE/<granule>/IMG_DATA/T33UVS_<date>T101022_<band>.jp2
    ground_truth/gt_shapefile/gt.shp            (attribute ATKIS_mod, classes 1..8)
    ground_truth/overallshape/overallshape.shp  (AOI)
    ground_truth/true_changes/true_changes.shp  (old_class, new_class)
    .demo_complete.json                         (written last; marks a complete demo, lists its files)

The whole tree is first written into a staging folder next to ``raw/`` and renamed into
place at the end, so an interrupted run never leaves a ``raw/`` folder that looks complete.
Regenerating replaces only the files the generator wrote; a user's own files in ``raw/`` are
carried over (see :mod:`helpers.demo.demo_manifest`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio import features
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import Polygon, shape

from helpers.core.config import L1C_BANDS, Config
from helpers.core.errors import InputError
from helpers.demo import demo_manifest

# ---------------------------------------------------------------------- constants
TILE_ID = "T33UVS"
"""MGRS tile of every demo product."""

CRS = "EPSG:32633"
ORIGIN_X = 399960.0
ORIGIN_Y = 5640000.0
"""Upper-left corner of the scene (a multiple of 60 m, so all band grids align)."""

PIXEL_SIZE = 10.0
DEFAULT_SIZE = 648
"""Default scene side in 10 m pixels (a multiple of 6, so the 60 m bands divide it)."""

MIN_SIZE = 96
PROCESSING_BASELINE = "02.04"
SENSING_CLOCK = "101022"
RELATIVE_ORBIT = 22
MARKER_NAME = ".demo_complete.json"
"""Completion marker inside ``raw/``; its presence means 'a complete demo written by us'."""

STAGING_NAME = ".raw_demo_staging"
_STAGING_TAG = ".demo_staging"
_DBF_DATE = "2019-01-01"  # fixed DBF header date, so that shapefiles are byte-identical

BAND_RESOLUTION: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "B8A": 20,
}
"""Native resolution (m) of every L1C band."""

# Class ids of the paper (and of configs/demo.toml).
BUILDINGS, GRASSLAND, FOREST, SETTLEMENT, FARMLAND, INDUSTRY, WATER, UNCLASSIFIABLE = range(1, 9)
CLASS_IDS: tuple[int, ...] = tuple(range(1, 9))

# Target shares of the scene (the remainder after all others becomes farmland).
_SHARE_WATER = 0.03
_SHARE_VILLAGE = 0.048  # settlement ground + buildings inside the village
_SHARE_BUILDINGS_IN_VILLAGE = 0.25
_SHARE_INDUSTRY = 0.011
_SHARE_UNCLASSIFIABLE = 0.01
_SHARE_FOREST = 0.36
_SHARE_GRASS = 0.24

_FIELD_SPACING = (22.0, 34.0)  # parcel seed spacing (rows, cols) in pixels, rotated frame
_MIN_FRAGMENT = 60  # pixels; smaller field/forest fragments of a cell are merged

# Surface endmembers (reflectance, L1C band order B01..B12, B8A).
_MATERIAL_NAMES = (
    "green", "straw", "conifer", "leafless", "dry_soil", "wet_soil", "water", "turbid_water",
    "red_roof", "grey_roof", "bright_roof", "asphalt", "gravel",
)
(GREEN, STRAW, CONIFER, LEAFLESS, DRY_SOIL, WET_SOIL, CLEAR_WATER, TURBID_WATER,
 RED_ROOF, GREY_ROOF, BRIGHT_ROOF, ASPHALT, GRAVEL) = range(len(_MATERIAL_NAMES))
ENDMEMBERS = np.array([
    # B01    B02    B03    B04    B05    B06    B07    B08    B09    B10    B11    B12    B8A
    [0.030, 0.035, 0.075, 0.035, 0.110, 0.290, 0.370, 0.410, 0.420, 0.150, 0.210, 0.100, 0.425],
    [0.070, 0.080, 0.120, 0.150, 0.190, 0.230, 0.260, 0.280, 0.290, 0.250, 0.360, 0.260, 0.290],
    [0.020, 0.025, 0.045, 0.022, 0.065, 0.170, 0.215, 0.240, 0.245, 0.080, 0.120, 0.055, 0.250],
    [0.045, 0.050, 0.065, 0.075, 0.095, 0.125, 0.140, 0.160, 0.165, 0.120, 0.210, 0.150, 0.165],
    [0.080, 0.095, 0.125, 0.155, 0.175, 0.195, 0.210, 0.225, 0.235, 0.260, 0.310, 0.250, 0.230],
    [0.045, 0.055, 0.075, 0.095, 0.105, 0.115, 0.125, 0.135, 0.130, 0.110, 0.150, 0.110, 0.140],
    [0.040, 0.045, 0.055, 0.030, 0.020, 0.010, 0.008, 0.006, 0.004, 0.002, 0.002, 0.001, 0.005],
    [0.050, 0.060, 0.085, 0.070, 0.055, 0.025, 0.020, 0.018, 0.010, 0.004, 0.004, 0.002, 0.015],
    [0.090, 0.100, 0.120, 0.220, 0.260, 0.280, 0.290, 0.300, 0.300, 0.300, 0.330, 0.280, 0.300],
    [0.170, 0.190, 0.210, 0.225, 0.235, 0.245, 0.250, 0.255, 0.255, 0.260, 0.280, 0.250, 0.255],
    [0.270, 0.300, 0.320, 0.330, 0.340, 0.345, 0.350, 0.355, 0.355, 0.350, 0.360, 0.330, 0.355],
    [0.080, 0.085, 0.095, 0.105, 0.110, 0.115, 0.120, 0.125, 0.125, 0.150, 0.160, 0.150, 0.125],
    [0.160, 0.180, 0.220, 0.260, 0.280, 0.290, 0.300, 0.310, 0.310, 0.330, 0.370, 0.320, 0.310],
], dtype=np.float32)
"""Surface reflectance of the materials; fractions summing to less than 1 leave shade (dark)."""

# Top-of-atmosphere model: toa = path * haze + transmittance * illumination * surface.
_PATH = np.array([0.095, 0.060, 0.035, 0.018, 0.015, 0.010, 0.008, 0.007, 0.003, 0.0012, 0.002, 0.001, 0.006],
                 dtype=np.float32)
_TRANSMITTANCE = np.array([0.70, 0.78, 0.84, 0.88, 0.90, 0.91, 0.92, 0.93, 0.30, 0.005, 0.92, 0.90, 0.93],
                          dtype=np.float32)
_CLOUD = np.array([0.50, 0.49, 0.47, 0.46, 0.46, 0.455, 0.45, 0.445, 0.20, 0.08, 0.33, 0.22, 0.44],
                  dtype=np.float32)
_NOISE = np.array([0.0015, 0.0030, 0.0030, 0.0030, 0.0020, 0.0020, 0.0020, 0.0035, 0.0010, 0.0002,
                   0.0020, 0.0015, 0.0020], dtype=np.float32)
# ESA band ids (0..12) and S2A solar irradiance, for the metadata file.
_ESA_BAND_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_SOLAR_IRRADIANCE = (1913.57, 1941.63, 1822.61, 1512.79, 1425.56, 1288.32, 1163.19, 1036.39, 955.19,
                     813.04, 367.15, 245.59, 85.25)

_EPOCH = dt.date(2015, 1, 1)
_CROP_YEARS = np.arange(2014, 2021)
_LATITUDE = 50.9


# ---------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote.

    Attributes:
        data_root: The config's data root (``raw/`` lies under it).
        seed: Random seed.
        size: Scene side in 10 m pixels.
        n_products: Number of L1C products (one per date).
        dates: Product dates (YYYYMMDD), sorted.
        class_pixels: Pixel count per GT class id on the 10 m grid.
        n_gt_polygons: Features in the GT shapefile.
        n_true_change_polygons: Features in the true-change shapefile.
        changed_pixels: Pixels whose land cover differs in the new dates.
        cloudy_dates: Dates with clouds.
        partial_date: The pool date that covers the scene only partly (or None).
        aoi_share: Share of the scene inside the AOI polygon.
        seconds: Wall time of the generation.
        kept: Files in ``raw/`` that the generator did not write, kept on regeneration.
    """

    data_root: Path
    seed: int
    size: int
    n_products: int
    dates: tuple[str, ...]
    class_pixels: dict[int, int]
    n_gt_polygons: int
    n_true_change_polygons: int
    changed_pixels: int
    cloudy_dates: tuple[str, ...]
    partial_date: str | None
    aoi_share: float
    seconds: float
    kept: tuple[str, ...] = ()

    @property
    def class_shares(self) -> dict[int, float]:
        """Share of the scene per class id."""
        total = sum(self.class_pixels.values())
        return {k: v / total for k, v in self.class_pixels.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (used for the completion marker)."""
        return {
            "data_root": str(self.data_root), "seed": self.seed, "size": self.size,
            "n_products": self.n_products, "dates": list(self.dates),
            "class_pixels": {str(k): v for k, v in self.class_pixels.items()},
            "n_gt_polygons": self.n_gt_polygons, "n_true_change_polygons": self.n_true_change_polygons,
            "changed_pixels": self.changed_pixels, "cloudy_dates": list(self.cloudy_dates),
            "partial_date": self.partial_date, "aoi_share": round(self.aoi_share, 4),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class Change:
    """One land-cover change between the pool dates and the new dates."""

    parcel_id: int
    old_class: int
    new_class: int
    kind: str


@dataclass
class ParcelParams:
    """Per-parcel random parameters, arrays indexed by parcel id (index 0 unused)."""

    brightness: np.ndarray
    soil_brightness: np.ndarray
    moisture_offset: np.ndarray
    winter: np.ndarray  # (years, ids) bool: winter crop harvested in that year
    sow: np.ndarray  # (years, ids) absolute day of sowing
    spring: np.ndarray  # (years, ids) absolute day of spring regrowth (winter crops)
    ripen: np.ndarray  # (years, ids) absolute day of senescence
    harvest: np.ndarray  # (years, ids) absolute day of harvest
    green_max: np.ndarray  # (years, ids)
    green_autumn: np.ndarray  # (years, ids) autumn cover of winter crops
    catch_crop: np.ndarray  # (years, ids) bool: catch crop after that year's harvest
    catch_green: np.ndarray  # (years, ids)
    grass_winter: np.ndarray
    grass_summer: np.ndarray
    cuts: np.ndarray  # (years, 3, ids) absolute days of mowing (nan: no cut)
    cut_depth: np.ndarray
    regrowth: np.ndarray
    deciduous: np.ndarray
    leaf_on: np.ndarray
    leaf_off: np.ndarray
    roof: np.ndarray  # material index of the roof
    waste_mix: np.ndarray  # (ids, 3): gravel, dry soil, vegetation of unclassifiable patches


@dataclass
class DemoScene:
    """The synthetic landscape before rendering (all rasters on the 10 m grid).

    Attributes:
        size: Scene side in pixels.
        label: GT class per pixel in the pool years (uint8).
        parcel: Parcel id per pixel in the pool years (int32, 1..n).
        parcel_class: Class of every parcel id in the pool years (index 0 unused).
        label_new: Class per pixel in the new dates (after the changes).
        parcel_new: Parcel id per pixel in the new dates.
        parcel_class_new: Class of every parcel id in the new dates.
        lake_rho: Distance to the lake centre relative to the shoreline at maximum extent.
        lake_radius: Mean lake radius in pixels.
        vigour: Static multiplier of the green-vegetation fraction.
        texture: Static multiplicative surface texture.
        garden: Vegetated share of settlement pixels.
        halls: Hall-roof share of industry pixels.
        changes: The land-cover changes.
        params: Per-parcel parameters.
    """

    size: int
    label: np.ndarray
    parcel: np.ndarray
    parcel_class: np.ndarray
    label_new: np.ndarray
    parcel_new: np.ndarray
    parcel_class_new: np.ndarray
    lake_rho: np.ndarray
    lake_radius: float
    vigour: np.ndarray
    texture: np.ndarray
    garden: np.ndarray
    halls: np.ndarray
    changes: list[Change]
    params: ParcelParams

    @property
    def transform(self) -> Affine:
        """Geotransform of the 10 m grid."""
        return Affine(PIXEL_SIZE, 0.0, ORIGIN_X, 0.0, -PIXEL_SIZE, ORIGIN_Y)


@dataclass(frozen=True)
class DatePlan:
    """Per-date acquisition parameters.

    Attributes:
        label: YYYYMMDD.
        is_new: True for the new (post-change) dates.
        spacecraft: ``S2A`` or ``S2B``.
        haze: Multiplier of the path reflectance.
        illumination: Multiplier of the surface signal (lower in winter).
        water_extent: Lake extent relative to its maximum (<= 1).
        turbidity: Share of turbid water in the lake spectrum.
        moisture: Soil moisture level (0 dry .. 1 wet).
        cloudy: Whether the date has clouds.
        partial: Whether the date covers the scene only partly.
    """

    label: str
    is_new: bool
    spacecraft: str
    haze: float
    illumination: float
    water_extent: float
    turbidity: float
    moisture: float
    cloudy: bool
    partial: bool
    sun_elevation: float = field(default=45.0)

    @property
    def date(self) -> dt.date:
        """The calendar date."""
        return dt.datetime.strptime(self.label, "%Y%m%d").date()

    @property
    def doy(self) -> int:
        """Day of year."""
        return self.date.timetuple().tm_yday

    @property
    def day(self) -> float:
        """Days since 2015-01-01."""
        return float((self.date - _EPOCH).days)


# ---------------------------------------------------------------------- small helpers
def _logistic(x: np.ndarray | float, centre: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    """Smooth step from 0 to 1 around ``centre``."""
    z = np.clip((np.asarray(x, dtype=np.float64) - centre) / width, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def _abs_day(year: np.ndarray | int, doy: np.ndarray | float) -> np.ndarray:
    """Days since 2015-01-01 of a (year, day-of-year) pair; vectorised over years."""
    offsets = np.array([(dt.date(int(y), 1, 1) - _EPOCH).days for y in np.ravel(year)], dtype=np.float64)
    return offsets.reshape(np.shape(year)) + doy


def _smooth_field(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with features of about ``scale`` pixels."""
    n = int(np.ceil(size / scale)) + 5
    coarse = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.8)
    pos = np.arange(size) / scale + 2.0
    rows, cols = np.meshgrid(pos, pos, indexing="ij")
    fine = ndimage.map_coordinates(coarse, [rows, cols], order=3)
    return ((fine - fine.mean()) / (fine.std() + 1e-12)).astype(np.float32)


def _blob_rho(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float],
              radius: float, wobble: float = 0.12, aspect: float = 1.0) -> np.ndarray:
    """Normalised radius of an irregular blob: <= 1 inside, 1 on the outline."""
    angle = rng.uniform(0.0, np.pi)
    dy, dx = yy - centre[0], xx - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / aspect
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    outline = np.ones_like(theta)
    for k in range(2, 6):
        outline += rng.uniform(0.3, 1.0) * wobble / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (np.hypot(u, v) / (radius * np.maximum(outline, 0.3))).astype(np.float32)


def _fit_blob(rho: np.ndarray, allowed: np.ndarray, target: float) -> np.ndarray:
    """Rescale a blob's normalised radius so that its allowed area is about ``target`` pixels."""
    for _ in range(4):
        area = np.count_nonzero((rho <= 1.0) & allowed)
        if area == 0:
            break
        rho = rho / np.sqrt(target / area)
    return rho


def _plot_grid_mask(rng: np.random.Generator, size: int, plot: tuple[int, int],
                    dims: tuple[tuple[int, int], ...], presence: float) -> np.ndarray:
    """Rectangles on a jittered plot grid (buildings, halls): a unique id per rectangle, 0 elsewhere.

    Args:
        rng: Random generator.
        size: Scene side in pixels.
        plot: Plot height and width in pixels.
        dims: ((min_h, max_h), (min_w, max_w)) of the rectangles, inclusive.
        presence: Probability that a plot holds a rectangle.
    """
    ph, pw = plot
    rows, cols = np.indices((size, size))
    prow = rows // ph
    shift = (prow * 3) % pw
    pcol = (cols + shift) // pw
    n_r, n_c = size // ph + 2, size // pw + 2
    h = rng.integers(dims[0][0], dims[0][1] + 1, (n_r, n_c))
    w = rng.integers(dims[1][0], dims[1][1] + 1, (n_r, n_c))
    oy = (rng.random((n_r, n_c)) * (ph - h + 1)).astype(int)
    ox = (rng.random((n_r, n_c)) * (pw - w + 1)).astype(int)
    present = rng.random((n_r, n_c)) < presence
    ly, lx = rows % ph, (cols + shift) % pw
    inside = (ly >= oy[prow, pcol]) & (ly < oy[prow, pcol] + h[prow, pcol])
    inside &= (lx >= ox[prow, pcol]) & (lx < ox[prow, pcol] + w[prow, pcol]) & present[prow, pcol]
    return np.where(inside, prow * n_c + pcol + 1, 0).astype(np.int64)


def _scaled_count(base: int, size: int) -> int:
    """A count of objects scaled with the scene area (at least 1)."""
    return max(1, round(base * (size / DEFAULT_SIZE) ** 2))


def check_size(size: int) -> None:
    """Validate a scene size.

    Raises:
        ValueError: If the size is not a multiple of 6 (the 60 m bands must divide it) or too small.
    """
    if size % 6 != 0:
        raise ValueError(f"size {size} must be a multiple of 6 (the 60 m bands must divide it), e.g. 648")
    if size < MIN_SIZE:
        raise ValueError(f"size {size} is too small (at least {MIN_SIZE} pixels)")


# ---------------------------------------------------------------------- landscape
def _build_layout(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Draw the land-cover layout: class raster, parcel raster and lake geometry."""
    yy, xx = (np.indices((size, size)).astype(np.float32) + 0.5)
    total = float(size * size)
    parcel = np.zeros((size, size), dtype=np.int64)
    label = np.zeros((size, size), dtype=np.uint8)
    next_id = 1

    # Reservoir: an elongated irregular blob; its GT is the maximum water extent.
    lake_centre = tuple(rng.uniform(0.25, 0.75, 2) * size)
    lake_radius = float(np.sqrt(_SHARE_WATER * total / np.pi))
    rho = _blob_rho(rng, yy, xx, lake_centre, lake_radius, wobble=0.14, aspect=1.5)
    lake_rho = _fit_blob(rho, np.ones_like(rho, dtype=bool), _SHARE_WATER * total)
    lake = lake_rho <= 1.0

    # Village: away from the lake, a blob of settlement ground with building rectangles.
    village_radius = float(np.sqrt(_SHARE_VILLAGE * total / np.pi))
    candidates = rng.uniform(0.22, 0.78, (64, 2)) * size
    distance = np.hypot(candidates[:, 0] - lake_centre[0], candidates[:, 1] - lake_centre[1])
    ok = np.flatnonzero(distance > 1.6 * lake_radius + 1.3 * village_radius)
    village_centre = tuple(candidates[ok[0] if ok.size else int(np.argmax(distance))])
    village_rho = _fit_blob(_blob_rho(rng, yy, xx, village_centre, village_radius, wobble=0.18),
                            ~lake, _SHARE_VILLAGE * total)
    village = (village_rho <= 1.0) & ~lake

    # Roads (settlement area without buildings): two gently curving roads from the village.
    away = np.arctan2(village_centre[0] - lake_centre[0], village_centre[1] - lake_centre[1])
    roads = np.zeros((size, size), dtype=bool)
    pixels = np.column_stack([yy.ravel(), xx.ravel()])
    first = away + rng.uniform(-0.6, 0.6)
    second = first + rng.uniform(2.2, 4.0)
    fallback = second + np.array([0.4, -0.4, 0.8, -0.8, 1.2, -1.2])
    for angles in ([first], [second, *fallback]):
        for angle in angles:
            samples = _road_samples(rng, village_centre, angle, size)
            rows = np.clip(samples[:, 0].astype(int), 0, size - 1)
            cols = np.clip(samples[:, 1].astype(int), 0, size - 1)
            if not (lake_rho[rows, cols] <= 1.1).any():
                dist, _ = cKDTree(samples).query(pixels, distance_upper_bound=1.01)
                roads |= (dist <= 1.0).reshape(size, size)
                break

    # Industrial estate: a rectangle next to the village, away from the lake.
    area = _SHARE_INDUSTRY * total
    height = round(float(np.sqrt(area / 1.4)))
    width = round(area / max(height, 1))
    industry = np.zeros((size, size), dtype=bool)
    for angle in away + np.array([0.0, 0.8, -0.8, 1.6, -1.6, 2.4, -2.4, np.pi]):
        reach = village_radius * 1.05 + 0.5 * max(height, width)
        cy = village_centre[0] + reach * np.sin(angle)
        cx = village_centre[1] + reach * np.cos(angle)
        r0, c0 = round(float(cy) - height / 2), round(float(cx) - width / 2)
        if r0 >= 2 and r0 + height <= size - 2 and c0 >= 2 and c0 + width <= size - 2:
            box = np.zeros_like(industry)
            box[r0:r0 + height, c0:c0 + width] = True
            if not (box & (lake_rho <= 1.15)).any():
                industry = box & ~village
                break

    # Unclassifiable patches (construction sites, dumps, quarries).
    n_waste = max(2, _scaled_count(5, size))
    waste = np.zeros((size, size), dtype=np.int64)
    blocked = lake | village | industry | roads
    patch_area = _SHARE_UNCLASSIFIABLE * total / n_waste
    spots = rng.uniform(0.08, 0.92, (8 * n_waste, 2)) * size
    placed = 0
    for cy, cx in spots:
        if placed == n_waste:
            break
        if blocked[int(cy), int(cx)]:
            continue
        blob_rho = _blob_rho(rng, yy, xx, (cy, cx), np.sqrt(patch_area / np.pi), wobble=0.25)
        blob = (blob_rho <= 1.0) & ~blocked
        blob &= ~ndimage.binary_dilation(waste > 0, iterations=3)
        if np.count_nonzero(blob) < 0.5 * patch_area:
            continue
        placed += 1
        waste[blob] = placed
        blocked |= blob

    # Parcels: Voronoi cells of a jittered, rotated grid (fields, meadows, forest stands).
    cells = _voronoi_cells(rng, size, yy, xx)
    free = ~blocked
    forest = _forest_mask(rng, size, cells, free, _SHARE_FOREST * total)
    fields = free & ~forest
    grass = _grassland_cells(rng, size, cells, fields, forest | lake, _SHARE_GRASS * total)

    n_cells = int(cells.max()) + 1
    parcel[fields] = cells[fields] + next_id
    label[fields] = np.where(grass[fields], GRASSLAND, FARMLAND)
    next_id += n_cells
    parcel[forest] = cells[forest] + next_id
    label[forest] = FOREST
    next_id += n_cells

    parcel[lake], label[lake] = next_id, WATER
    next_id += 1
    village_ground = village & ~roads
    buildings = _plot_grid_mask(rng, size, (5, 6), ((2, 3), (2, 4)), 0.92)
    buildings = np.where(village_ground & ndimage.binary_erosion(village_ground), buildings, 0)
    parcel[village], label[village] = next_id, SETTLEMENT
    next_id += 1
    road_parts, n_roads = ndimage.label(roads & ~village)
    parcel[road_parts > 0] = road_parts[road_parts > 0] + next_id - 1
    label[road_parts > 0] = SETTLEMENT
    next_id += n_roads
    parcel[industry], label[industry] = next_id, INDUSTRY
    next_id += 1
    parcel[waste > 0] = waste[waste > 0] + next_id - 1
    label[waste > 0] = UNCLASSIFIABLE
    next_id += placed
    has_building = buildings > 0
    parcel[has_building] = buildings[has_building] + next_id
    label[has_building] = BUILDINGS

    parcel, parcel_class = _compact_ids(parcel, label)
    return {
        "label": label, "parcel": parcel, "parcel_class": parcel_class, "lake_rho": lake_rho,
        "lake_radius": lake_radius, "village_centre": village_centre, "industry": industry, "roads": roads,
    }


def _road_samples(rng: np.random.Generator, start: tuple[float, float], angle: float,
                  size: int) -> np.ndarray:
    """Dense points (row, col) along a gently curving road from ``start`` to beyond the scene edge."""
    s = np.arange(0.0, 1.5 * size, 0.5)
    wave = rng.uniform(0.01, 0.03) * size * np.sin(2 * np.pi * s / (rng.uniform(0.4, 0.8) * size)
                                                    + rng.uniform(0, 2 * np.pi))
    wave -= wave[0]
    py = start[0] + s * np.sin(angle) + wave * np.cos(angle)
    px = start[1] + s * np.cos(angle) - wave * np.sin(angle)
    keep = (py > -3) & (py < size + 3) & (px > -3) & (px < size + 3)
    return np.column_stack([py[keep], px[keep]])


def _voronoi_cells(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Cell index (0..n-1) of every pixel in a jittered, rotated Voronoi tessellation."""
    angle = rng.uniform(-0.5, 0.5)
    cos, sin = np.cos(angle), np.sin(angle)
    u = xx * cos + yy * sin
    v = -xx * sin + yy * cos
    sy, sx = _FIELD_SPACING
    gv = np.arange(v.min() - sy, v.max() + sy, sy)
    gu = np.arange(u.min() - sx, u.max() + sx, sx)
    seed_v, seed_u = np.meshgrid(gv, gu, indexing="ij")
    seed_v = seed_v + rng.uniform(-0.35, 0.35, seed_v.shape) * sy
    seed_u = seed_u + rng.uniform(-0.35, 0.35, seed_u.shape) * sx
    tree = cKDTree(np.column_stack([seed_v.ravel() / sy, seed_u.ravel() / sx]))
    _, index = tree.query(np.column_stack([v.ravel() / sy, u.ravel() / sx]))
    _, cells = np.unique(index, return_inverse=True)
    return cells.reshape(size, size)


def _forest_mask(rng: np.random.Generator, size: int, cells: np.ndarray, free: np.ndarray,
                 target: float) -> np.ndarray:
    """Large organic forest patches, snapped to field boundaries where a cell is mostly forest or field."""
    noise = _smooth_field(rng, size, 0.16 * size) + 0.35 * _smooth_field(rng, size, 12.0)
    threshold = np.quantile(noise[free], 1.0 - min(target / max(np.count_nonzero(free), 1), 1.0))
    forest = free & (noise > threshold)
    n_cells = int(cells.max()) + 1
    free_count = np.bincount(cells[free], minlength=n_cells)
    forest_count = np.bincount(cells[forest], minlength=n_cells)
    share = forest_count / np.maximum(free_count, 1)
    forest = free & np.where(share[cells] > 0.7, True, np.where(share[cells] < 0.25, False, forest))
    # Merge small fragments: a cell's field part or forest part below _MIN_FRAGMENT pixels.
    forest_count = np.bincount(cells[forest], minlength=n_cells)
    field_count = np.bincount(cells[free & ~forest], minlength=n_cells)
    to_forest = (field_count < _MIN_FRAGMENT) & (forest_count > field_count)
    to_field = (forest_count < _MIN_FRAGMENT) & ~to_forest
    return free & np.where(to_forest[cells], True, np.where(to_field[cells], False, forest))


def _grassland_cells(rng: np.random.Generator, size: int, cells: np.ndarray, fields: np.ndarray,
                     attractors: np.ndarray, target: float) -> np.ndarray:
    """Choose the grassland cells among the field cells (preferably near forest and water)."""
    n_cells = int(cells.max()) + 1
    near = ndimage.distance_transform_edt(~attractors) < 12
    score_px = _smooth_field(rng, size, 0.12 * size) + 0.8 * near
    count = np.bincount(cells[fields], minlength=n_cells)
    score = np.bincount(cells[fields], weights=score_px[fields], minlength=n_cells) / np.maximum(count, 1)
    score += rng.normal(0.0, 0.5, n_cells)
    score[count < 25] = np.inf  # slivers become meadow
    order = np.argsort(-score, kind="stable")
    chosen = np.zeros(n_cells, dtype=bool)
    chosen[order[np.cumsum(count[order]) <= target]] = True
    return chosen[cells]


def _compact_ids(parcel: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber parcel ids to 1..n and return the class of every id (index 0 unused)."""
    ids, inverse = np.unique(parcel, return_inverse=True)
    compact = (inverse.reshape(parcel.shape) + 1).astype(np.int32)
    classes = np.zeros(ids.size + 1, dtype=np.uint8)
    classes[compact.ravel()] = label.ravel()
    return compact, classes


def _plan_changes(rng: np.random.Generator,
                  layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Change]]:
    """Pick the parcels that change land cover in the new dates and build the new rasters."""
    label, parcel, classes = layout["label"], layout["parcel"], layout["parcel_class"]
    size = label.shape[0]
    n_ids = classes.size
    count = np.bincount(parcel.ravel(), minlength=n_ids)
    rows, cols = np.indices(label.shape)
    centre_r = np.bincount(parcel.ravel(), weights=rows.ravel(), minlength=n_ids) / np.maximum(count, 1)
    centre_c = np.bincount(parcel.ravel(), weights=cols.ravel(), minlength=n_ids) / np.maximum(count, 1)
    inner = (np.minimum(centre_r, centre_c) > 0.12 * size) & (np.maximum(centre_r, centre_c) < 0.88 * size)
    usable = inner & (count >= 120) & (count <= 2500)
    taken = np.zeros(n_ids, dtype=bool)
    changes: list[Change] = []

    def pick(old: int, k: int, near: tuple[float, float] | None = None) -> list[int]:
        pool = np.flatnonzero(usable & ~taken & (classes == old))
        if pool.size == 0:
            return []
        if near is None:
            chosen = rng.choice(pool, size=min(k, pool.size), replace=False)
        else:
            distance = np.hypot(centre_r[pool] - near[0], centre_c[pool] - near[1])
            chosen = pool[np.argsort(distance, kind="stable")[:k]]
        taken[chosen] = True
        return [int(c) for c in chosen]

    plan = [
        (FARMLAND, GRASSLAND, _scaled_count(5, size), None, "farmland to grassland"),
        (GRASSLAND, FARMLAND, _scaled_count(4, size), None, "grassland to farmland"),
        (FOREST, GRASSLAND, _scaled_count(2, size), None, "clear-cut"),
    ]
    for old, new, k, near, kind in plan:
        changes += [Change(p, old, new, kind) for p in pick(old, k, near)]
    industry_rc = np.argwhere(layout["industry"])
    industry_centre = tuple(industry_rc.mean(axis=0)) if industry_rc.size else layout["village_centre"]
    changes += [Change(p, GRASSLAND, INDUSTRY, "new commercial site")
                for p in pick(GRASSLAND, 1, industry_centre)]
    housing = pick(FARMLAND, _scaled_count(2, size), layout["village_centre"])
    changes += [Change(p, FARMLAND, SETTLEMENT, "new housing") for p in housing]

    classes_new = classes.copy()
    for change in changes:
        classes_new[change.parcel_id] = change.new_class
    label_new = classes_new[parcel]
    parcel_new = parcel.copy()
    if housing:
        area = np.isin(parcel, housing) & ~layout["roads"]
        area &= ndimage.binary_erosion(area)
        houses = _plot_grid_mask(rng, size, (6, 6), ((2, 3), (2, 3)), 0.85)
        new_building = area & (houses > 0)
        ids, inverse = np.unique(houses[new_building], return_inverse=True)
        parcel_new[new_building] = n_ids + inverse
        classes_new = np.concatenate([classes_new, np.full(ids.size, BUILDINGS, dtype=np.uint8)])
        label_new = classes_new[parcel_new]
    return label_new.astype(np.uint8), parcel_new.astype(np.int32), classes_new, changes


def _draw_params(rng: np.random.Generator, n_ids: int) -> ParcelParams:
    """Draw every per-parcel parameter for all ids (whatever their class)."""
    n_years = _CROP_YEARS.size
    years = np.repeat(_CROP_YEARS[:, None], n_ids, axis=1)
    winter = rng.random((n_years, n_ids)) < 0.55
    sow = np.where(winter, _abs_day(years - 1, rng.uniform(255, 285, (n_years, n_ids))),
                   _abs_day(years, rng.uniform(100, 135, (n_years, n_ids))))
    harvest = np.where(winter, _abs_day(years, rng.uniform(192, 222, (n_years, n_ids))),
                       _abs_day(years, rng.uniform(248, 295, (n_years, n_ids))))
    # A winter crop cannot be sown before the previous summer crop is harvested.
    late = winter[1:] & (sow[1:] < harvest[:-1] + 10)
    sow[1:] = np.where(late, harvest[:-1] + rng.uniform(8, 20, (n_years - 1, n_ids)), sow[1:])
    shape = (n_years, n_ids)
    ripen = harvest - np.where(winter, rng.uniform(20, 35, shape), rng.uniform(15, 30, shape))
    catch = np.zeros((n_years, n_ids), dtype=bool)
    catch[:-1] = winter[:-1] & ~winter[1:] & (rng.random((n_years - 1, n_ids)) < 0.45)

    cuts = np.full((n_years, 3, n_ids), np.nan)
    first = rng.uniform(130, 165, (n_years, n_ids))
    second = first + rng.uniform(38, 60, (n_years, n_ids))
    third = second + rng.uniform(38, 60, (n_years, n_ids))
    meadow = rng.random(n_ids) < 0.72
    cuts[:, 0] = np.where(meadow, _abs_day(years, first), np.nan)
    cuts[:, 1] = np.where(meadow, _abs_day(years, second), np.nan)
    cuts[:, 2] = np.where(meadow & (rng.random((n_years, n_ids)) < 0.5), _abs_day(years, third), np.nan)

    kind = rng.choice(3, n_ids, p=[0.4, 0.35, 0.25])
    mixtures = [rng.beta(1.5, 5.0, n_ids), rng.beta(3.0, 3.0, n_ids), rng.beta(5.0, 1.5, n_ids)]
    deciduous = np.choose(kind, mixtures)
    waste = rng.dirichlet([2.0, 1.5, 1.0], n_ids)
    return ParcelParams(
        brightness=rng.normal(1.0, 0.035, n_ids), soil_brightness=rng.uniform(0.8, 1.2, n_ids),
        moisture_offset=rng.normal(0.0, 0.12, n_ids), winter=winter, sow=sow,
        spring=_abs_day(years, rng.uniform(85, 110, (n_years, n_ids))), ripen=ripen, harvest=harvest,
        green_max=rng.uniform(0.82, 1.0, shape), green_autumn=rng.uniform(0.25, 0.55, shape),
        catch_crop=catch, catch_green=rng.uniform(0.35, 0.7, shape),
        grass_winter=rng.uniform(0.4, 0.6, n_ids),
        grass_summer=np.where(meadow, rng.uniform(0.82, 0.97, n_ids), rng.uniform(0.68, 0.85, n_ids)),
        cuts=cuts, cut_depth=rng.uniform(0.45, 0.7, n_ids), regrowth=rng.uniform(10, 20, n_ids),
        deciduous=deciduous, leaf_on=rng.uniform(108, 126, n_ids), leaf_off=rng.uniform(286, 305, n_ids),
        roof=rng.choice([RED_ROOF, GREY_ROOF, BRIGHT_ROOF], n_ids, p=[0.55, 0.3, 0.15]), waste_mix=waste,
    )


def _static_textures(rng: np.random.Generator, label: np.ndarray, roads: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel static fields: vegetation vigour, surface texture, gardens and hall roofs."""
    size = label.shape[0]
    white = rng.standard_normal((size, size)).astype(np.float32)
    patchy = _smooth_field(rng, size, 4.0)
    veg = np.isin(label, (GRASSLAND, FARMLAND))
    crowns = np.where(label == FOREST, 1.0 + 0.08 * white, 1.0)
    vigour = np.where(veg, 1.0 + 0.07 * patchy + 0.03 * white, crowns)
    amplitude = np.zeros(9, dtype=np.float32)
    amplitude[list(CLASS_IDS)] = [0.05, 0.025, 0.06, 0.08, 0.02, 0.05, 0.015, 0.08]
    terrain = 0.025 * _smooth_field(rng, size, 0.1 * size)
    texture = 1.0 + terrain + amplitude[label] * rng.standard_normal((size, size)).astype(np.float32)
    garden = np.clip(0.4 + 0.2 * _smooth_field(rng, size, 2.5), 0.05, 0.85)
    garden = np.where(roads, 0.12, garden)
    halls = (_plot_grid_mask(rng, size, (12, 16), ((6, 10), (8, 14)), 0.75) > 0).astype(np.float32)
    return {
        "vigour": np.clip(vigour, 0.6, 1.4).astype(np.float32),
        "texture": np.clip(texture, 0.7, 1.3).astype(np.float32),
        "garden": garden.astype(np.float32), "halls": halls,
    }


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for the parts of the demo (scene: 0-3, dates: 4, rendering: 5, AOI: 6)."""
    return np.random.default_rng(seed).spawn(8)


def build_scene(seed: int, size: int = DEFAULT_SIZE) -> DemoScene:
    """Draw the demo landscape, its changes and all per-parcel parameters.

    Args:
        seed: Random seed; the same seed and size give the same scene.
        size: Scene side in 10 m pixels (a multiple of 6).

    Returns:
        The scene, ready to be rendered for any date.

    Raises:
        ValueError: For an invalid size.
    """
    check_size(size)
    streams = _streams(seed)
    layout = _build_layout(streams[0], size)
    label_new, parcel_new, classes_new, changes = _plan_changes(streams[1], layout)
    params = _draw_params(streams[2], classes_new.size)
    textures = _static_textures(streams[3], layout["label"], layout["roads"])
    classes_old = np.zeros_like(classes_new)
    classes_old[: layout["parcel_class"].size] = layout["parcel_class"]
    return DemoScene(
        size=size, label=layout["label"], parcel=layout["parcel"], parcel_class=classes_old,
        label_new=label_new, parcel_new=parcel_new, parcel_class_new=classes_new,
        lake_rho=layout["lake_rho"], lake_radius=layout["lake_radius"], vigour=textures["vigour"],
        texture=textures["texture"], garden=textures["garden"], halls=textures["halls"],
        changes=changes, params=params,
    )


# ---------------------------------------------------------------------- dates
def _sun_elevation(doy: int) -> float:
    """Approximate solar elevation (degrees) at the 10:10 UTC overpass."""
    declination = 23.44 * np.sin(2 * np.pi * (doy - 81) / 365.0)
    return float(90.0 - _LATITUDE + declination - 4.0)


def plan_dates(config: Config, rng: np.random.Generator) -> list[DatePlan]:
    """Acquisition parameters of every configured date.

    About a third of the dates get clouds (never the reference date); the first pool date
    that is not the reference covers the scene only partly.

    Args:
        config: The study-area configuration (training pool, reference and new dates).
        rng: Random generator.
    """
    pool, new = list(config.training_pool), [d for d in config.new if d not in config.training_pool]
    labels = sorted(set(pool) | set(new))
    candidates = [d for d in labels if d != config.reference]
    n_cloudy = round(len(labels) / 3)
    cloudy = set(rng.choice(candidates, size=min(n_cloudy, len(candidates)), replace=False).tolist())
    partial = next((d for d in pool if d != config.reference), None)
    plans: list[DatePlan] = []
    s2b_turn = False
    for label in labels:
        date = dt.datetime.strptime(label, "%Y%m%d").date()
        doy = date.timetuple().tm_yday
        elevation = _sun_elevation(doy)
        sun = np.sin(np.radians(elevation)) / np.sin(np.radians(_sun_elevation(172)))
        drawdown = float(np.clip(np.sin(np.pi * (doy - 120) / 200.0), 0.0, 1.0)) if 120 <= doy <= 320 else 0.0
        wet_season = 0.5 + 0.35 * np.cos(2 * np.pi * (doy - 30) / 365.0)
        if date >= dt.date(2017, 7, 1):
            s2b_turn = not s2b_turn
        plans.append(DatePlan(
            label=label, is_new=label in new, spacecraft="S2B" if s2b_turn else "S2A",
            haze=float(rng.uniform(0.85, 1.2) * (1.0 + 0.3 * (1.0 - sun))),
            illumination=float(0.72 + 0.28 * sun),
            water_extent=float(1.0 - 0.13 * drawdown * rng.uniform(0.6, 1.0)),
            turbidity=float(rng.uniform(0.1, 0.6)),
            moisture=float(np.clip(wet_season + rng.normal(0, 0.1), 0, 1)),
            cloudy=label in cloudy, partial=label == partial, sun_elevation=elevation,
        ))
    return plans


# ---------------------------------------------------------------------- phenology
def _farmland_cover(p: ParcelParams, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Green and straw/stubble fractions of every parcel under the farmland model at day ``t``."""
    active = t >= p.sow
    before_harvest = t < p.harvest
    autumn = p.green_autumn * _logistic(t, p.sow + 28, 7)
    spring = (p.green_max - p.green_autumn) * _logistic(t, p.spring + 22, 9)
    summer = p.green_max * _logistic(t, p.sow + 45, 8)
    canopy = np.where(p.winter, autumn + spring, summer)
    ripe = _logistic(t, p.ripen, 6)
    growing = active & before_harvest
    green = np.where(growing, canopy * (1.0 - ripe), 0.0)
    straw = np.where(growing, canopy * ripe, 0.0)
    straw += np.where(t >= p.harvest, 0.55 * np.exp(-np.clip(t - p.harvest, 0, None) / 20.0), 0.0)
    next_sow = np.vstack([p.sow[1:], p.sow[-1:] + 365.0])
    catch = p.catch_crop & (t >= p.harvest)
    cover_crop = p.catch_green * _logistic(t, p.harvest + 35, 7) * (1 - _logistic(t, next_sow - 25, 5))
    green += np.where(catch, cover_crop, 0.0)
    g = np.clip(green.sum(axis=0), 0.0, 1.0)
    return g, np.clip(straw.sum(axis=0), 0.0, 1.0 - g)


def _grass_season(doy: float) -> float:
    """Seasonal greening of grass (0 in winter, 1 in summer)."""
    return float(_logistic(doy, 105, 12) * (1.0 - _logistic(doy, 300, 15)))


def _grass_cover(p: ParcelParams, t: float, doy: int, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Green and hay fractions of every parcel under the grassland model (mowing, 2018 drought)."""
    base = p.grass_winter + (p.grass_summer - p.grass_winter) * _grass_season(doy)
    since = t - p.cuts  # (years, 3, ids); negative or nan before / without a cut
    cut = np.nan_to_num(since, nan=-1.0) >= 0
    since = np.where(cut, since, 0.0)
    drop = np.where(cut, p.cut_depth * np.exp(-since / p.regrowth), 0.0)
    hay = np.where(cut, 0.3 * np.exp(-since / 5.0), 0.0).sum(axis=(0, 1))
    green = base * np.prod(1.0 - drop, axis=(0, 1))
    if year == 2018:  # the dry summer of 2018 browned many meadows
        dryness = 0.22 * float(np.exp(-(((doy - 215) / 30.0) ** 2)))
        hay = hay + dryness * green
        green = green * (1.0 - dryness)
    return np.clip(green, 0, 1), np.clip(hay, 0, 1 - np.clip(green, 0, 1))


def _parcel_abundances(p: ParcelParams, classes: np.ndarray, plan: DatePlan) -> np.ndarray:
    """Endmember fractions (ids x materials) of every parcel for one date."""
    t, doy, year = plan.day, plan.doy, plan.date.year
    n = classes.size
    a = np.zeros((n, len(_MATERIAL_NAMES)), dtype=np.float64)
    wet = np.clip(plan.moisture + p.moisture_offset, 0.0, 1.0)

    farm_green, farm_straw = _farmland_cover(p, t)
    grass_green, grass_hay = _grass_cover(p, t, doy, year)
    is_farm, is_grass = classes == FARMLAND, classes == GRASSLAND
    green = np.where(is_farm, farm_green, np.where(is_grass, grass_green, 0.0))
    straw = np.where(is_farm, farm_straw, np.where(is_grass, grass_hay, 0.0))
    soil = np.where(is_farm | is_grass, np.clip(1.0 - green - straw, 0.0, 1.0), 0.0) * p.soil_brightness
    a[:, GREEN], a[:, STRAW] = green, straw
    a[:, DRY_SOIL], a[:, WET_SOIL] = soil * (1 - wet), soil * wet

    forest = classes == FOREST
    leaves = _logistic(doy, p.leaf_on, 6) * (1.0 - _logistic(doy, p.leaf_off, 8))
    a[forest, CONIFER] = 0.92 * (1 - p.deciduous[forest])
    a[forest, GREEN] = 0.92 * p.deciduous[forest] * leaves[forest]
    a[forest, LEAFLESS] = 0.92 * p.deciduous[forest] * (1 - leaves[forest])

    building = classes == BUILDINGS
    winter_shadow = 0.08 + 0.25 * (1.0 - plan.illumination) / 0.28
    a[building, p.roof[building]] = 1.0 - winter_shadow

    waste = classes == UNCLASSIFIABLE
    season = 0.3 + 0.6 * _grass_season(doy)
    a[waste, GRAVEL] = p.waste_mix[waste, 0]
    a[waste, DRY_SOIL] = p.waste_mix[waste, 1]
    a[waste, GREEN] = p.waste_mix[waste, 2] * season
    a[waste, STRAW] = p.waste_mix[waste, 2] * (1 - season)
    return (a * p.brightness[:, None]).astype(np.float32)


def _pixel_abundances(scene: DemoScene, label: np.ndarray,
                      plan: DatePlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Endmember fractions of the classes modelled per pixel: settlement, industry and water."""
    season = _grass_season(plan.doy)
    garden_green = 0.45 + 0.45 * season
    out = []
    k = len(_MATERIAL_NAMES)

    where = np.flatnonzero(label.ravel() == SETTLEMENT)
    f = scene.garden.ravel()[where]
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, GREEN] = f * garden_green
    a[:, STRAW], a[:, WET_SOIL] = f * (1 - garden_green) * 0.6, f * (1 - garden_green) * 0.4
    a[:, ASPHALT], a[:, GREY_ROOF], a[:, GRAVEL] = (1 - f) * 0.55, (1 - f) * 0.3, (1 - f) * 0.15
    out.append((where, a))

    where = np.flatnonzero(label.ravel() == INDUSTRY)
    h = scene.halls.ravel()[where]
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, BRIGHT_ROOF], a[:, GREY_ROOF] = h * 0.8, h * 0.2 + (1 - h) * 0.25
    a[:, ASPHALT], a[:, GRAVEL], a[:, GREEN] = (1 - h) * 0.5, (1 - h) * 0.15, (1 - h) * 0.1 * garden_green
    out.append((where, a))

    where = np.flatnonzero(label.ravel() == WATER)
    rho = scene.lake_rho.ravel()[where]
    w = np.clip((plan.water_extent - rho) * scene.lake_radius + 0.5, 0.0, 1.0)
    shore_green = 0.25 + 0.45 * season
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, CLEAR_WATER], a[:, TURBID_WATER] = w * (1 - plan.turbidity), w * plan.turbidity
    a[:, WET_SOIL], a[:, GREEN], a[:, STRAW] = (1 - w) * 0.6, (1 - w) * 0.35 * shore_green, (1 - w) * 0.1
    out.append((where, a))
    return out


# ---------------------------------------------------------------------- rendering
def _cloud_fields(rng: np.random.Generator, size: int,
                  plan: DatePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity, cloud-shadow strength and cirrus reflectance of one date."""
    yy, xx = np.indices((size, size)).astype(np.float32) + 0.5
    envelope = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0, size, 2)
        sigma = size * rng.uniform(0.02, 0.045)
        envelope += rng.uniform(0.6, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    value = envelope * (1.0 + 0.45 * _smooth_field(rng, size, 5.0) + 0.25 * _smooth_field(rng, size, 15.0))
    cover = rng.uniform(0.03, 0.09)
    threshold = np.quantile(value, 1.0 - cover)
    top = max(float(value.max()), threshold + 1e-6)
    opacity = np.clip((value - threshold) / (0.45 * (top - threshold)), 0.0, 1.0).astype(np.float32)
    # Shadows fall away from the sun (south-south-east in the morning overpass), capped in length.
    height = rng.uniform(800.0, 2000.0)
    length = min(height / np.tan(np.radians(max(plan.sun_elevation, 5.0))) / PIXEL_SIZE, 0.25 * size)
    azimuth = np.radians(rng.uniform(155.0, 170.0))
    shift = (length * np.cos(azimuth), -length * np.sin(azimuth))  # rows (south +), cols (east +)
    shadow = ndimage.shift(opacity, shift, order=1, mode="constant", cval=0.0)
    cirrus = np.zeros((size, size), dtype=np.float32)
    if rng.random() < 0.5:
        cirrus = (rng.uniform(0.004, 0.015) * np.clip(_smooth_field(rng, size, 0.3 * size) + 0.3, 0.0, 2.0))
    return opacity, shadow.astype(np.float32), cirrus.astype(np.float32)


def _swath_mask(size: int, factor: int) -> np.ndarray:
    """True where a partial acquisition has no data (a slanted strip at the east edge)."""
    centres = (np.arange(size // factor) + 0.5) * factor
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    return cols > size * (0.74 + 0.1 * rows / size)


def render_date(scene: DemoScene, plan: DatePlan,
                rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """Render the 13 L1C bands of one date as uint16 DN at their native resolutions.

    Args:
        scene: The landscape.
        plan: The date's acquisition parameters.
        rng: Random generator of this date (clouds and sensor noise).

    Returns:
        Band name -> DN array, and the cloud cover in percent.
    """
    size = scene.size
    label = scene.label_new if plan.is_new else scene.label
    parcel = scene.parcel_new if plan.is_new else scene.parcel
    classes = scene.parcel_class_new if plan.is_new else scene.parcel_class
    abundance = _parcel_abundances(scene.params, classes, plan)
    surface = (abundance @ ENDMEMBERS)[parcel]  # (rows, cols, bands)
    surface += ((scene.vigour - 1.0) * abundance[parcel, GREEN])[..., None] * ENDMEMBERS[GREEN]
    flat = surface.reshape(-1, len(L1C_BANDS))
    for where, fractions in _pixel_abundances(scene, label, plan):
        flat[where] = fractions @ ENDMEMBERS
    surface *= scene.texture[..., None]
    surface = ndimage.gaussian_filter(np.moveaxis(surface, -1, 0), sigma=(0, 0.5, 0.5))

    opacity = shadow = cirrus = None
    if plan.cloudy:
        opacity, shadow, cirrus = _cloud_fields(rng, size, plan)
        surface *= 1.0 - 0.7 * shadow
    toa = _PATH[:, None, None] * plan.haze + _TRANSMITTANCE[:, None, None] * plan.illumination * surface
    cloud_pct = 0.0
    if opacity is not None:
        brightness = rng.uniform(0.85, 1.1)
        toa = (1 - opacity) * toa + opacity * _CLOUD[:, None, None] * brightness * (0.8 + 0.2 * opacity)
        toa += cirrus * np.where(np.array(L1C_BANDS) == "B10", 1.0, 0.35).astype(np.float32)[:, None, None]
        cloud_pct = float(100.0 * np.mean(opacity > 0.3))

    bands: dict[str, np.ndarray] = {}
    for index, band in enumerate(L1C_BANDS):
        factor = BAND_RESOLUTION[band] // 10
        field_10m = toa[index]
        if factor > 1:
            field_10m = field_10m.reshape(size // factor, factor, size // factor, factor).mean(axis=(1, 3))
        noisy = field_10m + rng.normal(0.0, _NOISE[index], field_10m.shape)
        dn = np.clip(np.rint(noisy * 10000.0), 1, 65535).astype(np.uint16)
        if plan.partial:
            dn[_swath_mask(size, factor)] = 0
        bands[band] = dn
    return bands, cloud_pct


# ---------------------------------------------------------------------- writing
def product_name(plan: DatePlan) -> str:
    """SAFE folder name of a date's product."""
    return (f"{plan.spacecraft}_MSIL1C_{plan.label}T{SENSING_CLOCK}_N{PROCESSING_BASELINE.replace('.', '')}"
            f"_R{RELATIVE_ORBIT:03d}_{TILE_ID}_{plan.label}T120000.SAFE")


def _absolute_orbit(plan: DatePlan) -> int:
    launch = dt.date(2015, 6, 23) if plan.spacecraft == "S2A" else dt.date(2017, 3, 7)
    return max(1, round((plan.date - launch).days * 14.3))


def granule_name(plan: DatePlan) -> str:
    """GRANULE sub-folder name of a date's product."""
    return f"L1C_{TILE_ID}_A{_absolute_orbit(plan):06d}_{plan.label}T{SENSING_CLOCK}"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_jp2(path: Path, array: np.ndarray, resolution: int) -> None:
    """Write one band as a lossless JPEG 2000 file (temporary name, then rename)."""
    tmp = path.with_name(f".tmp_{path.name}")
    transform = Affine(resolution, 0.0, ORIGIN_X, 0.0, -resolution, ORIGIN_Y)
    with rasterio.open(tmp, "w", driver="JP2OpenJPEG", width=array.shape[1], height=array.shape[0], count=1,
                       dtype="uint16", crs=CRS, transform=transform, QUALITY=100, REVERSIBLE="YES") as dst:
        dst.write(array, 1)
    os.replace(tmp, path)


def _metadata_xml(plan: DatePlan, band_files: Sequence[str], cloud_pct: float) -> bytes:
    """A minimal ``MTD_MSIL1C.xml`` with ESA's element names (baseline 02.04, no radiometric offset)."""
    ns = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
    root = ET.Element("n1:Level-1C_User_Product", {
        "xmlns:n1": ns, "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:schemaLocation": f"{ns} {ns}",
    })

    def sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, tag, attrs)
        if text is not None:
            element.text = str(text)
        return element

    iso = plan.date.isoformat()
    start = f"{iso}T10:10:22.026Z"
    general = sub(root, "n1:General_Info")
    info = sub(general, "Product_Info")
    sub(info, "PRODUCT_START_TIME", start)
    sub(info, "PRODUCT_STOP_TIME", start)
    sub(info, "PRODUCT_URI", product_name(plan))
    sub(info, "PROCESSING_LEVEL", "Level-1C")
    sub(info, "PRODUCT_TYPE", "S2MSI1C")
    sub(info, "PROCESSING_BASELINE", PROCESSING_BASELINE)
    sub(info, "GENERATION_TIME", f"{iso}T12:00:00.000000Z")
    sub(info, "PREVIEW_IMAGE_URL", "Not applicable")
    sub(info, "PREVIEW_GEO_INFO", "Not applicable")
    orbit = _absolute_orbit(plan)
    identifier = f"G{plan.spacecraft}_{plan.label}T{SENSING_CLOCK}_{orbit:06d}_N{PROCESSING_BASELINE}"
    datatake = sub(info, "Datatake", datatakeIdentifier=identifier)
    sub(datatake, "SPACECRAFT_NAME", f"Sentinel-2{plan.spacecraft[-1]}")
    sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    sub(datatake, "DATATAKE_SENSING_START", start)
    sub(datatake, "SENSING_ORBIT_NUMBER", RELATIVE_ORBIT)
    sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    options = sub(info, "Query_Options", completeSingleTile="true")
    sub(options, "PRODUCT_FORMAT", "SAFE")
    granules = sub(sub(info, "Product_Organisation"), "Granule_List")
    granule = sub(granules, "Granule", granuleIdentifier=granule_name(plan), imageFormat="JPEG2000")
    for name in band_files:
        sub(granule, "IMAGE_FILE", name)

    characteristics = sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = sub(characteristics, "Special_Values")
        sub(special, "SPECIAL_VALUE_TEXT", text)
        sub(special, "SPECIAL_VALUE_INDEX", index)
    order = sub(characteristics, "Image_Display_Order")
    for channel, value in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        sub(order, channel, value)
    sub(characteristics, "QUANTIFICATION_VALUE", 10000, unit="none")
    conversion = sub(characteristics, "Reflectance_Conversion")
    sub(conversion, "U", f"{1.0 / (1.0 - 0.01672 * np.cos(0.0172 * (plan.doy - 4))) ** 2:.12f}")
    irradiance = sub(conversion, "Solar_Irradiance_List")
    for band_id, value in enumerate(_SOLAR_IRRADIANCE):
        sub(irradiance, "SOLAR_IRRADIANCE", value, bandId=str(band_id), unit="W/m²/µm")
    spectral = sub(characteristics, "Spectral_Information_List")
    for band_id, band in enumerate(_ESA_BAND_ORDER):
        physical = "B8A" if band == "B8A" else f"B{int(band[1:])}"
        item = sub(spectral, "Spectral_Information", bandId=str(band_id), physicalBand=physical)
        sub(item, "RESOLUTION", BAND_RESOLUTION[band])

    geometric = sub(root, "n1:Geometric_Info")
    crs = sub(geometric, "Coordinate_Reference_System")
    sub(crs, "GEO_TABLES", "EPSG", version="1")
    sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")
    quality = sub(root, "n1:Quality_Indicators_Info")
    sub(quality, "Cloud_Coverage_Assessment", f"{cloud_pct:.4f}")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _write_product(folder: Path, plan: DatePlan, bands: dict[str, np.ndarray], cloud_pct: float) -> None:
    """Write one SAFE product (band files first, metadata last)."""
    granule = folder / product_name(plan) / "GRANULE" / granule_name(plan)
    img = granule / "IMG_DATA"
    img.mkdir(parents=True, exist_ok=True)
    stem = f"{TILE_ID}_{plan.label}T{SENSING_CLOCK}"
    for band, array in bands.items():
        _write_jp2(img / f"{stem}_{band}.jp2", array, BAND_RESOLUTION[band])
    listed = [f"GRANULE/{granule.name}/IMG_DATA/{stem}_{band}" for band in _ESA_BAND_ORDER]
    xml = _metadata_xml(plan, listed, cloud_pct)
    _atomic_write_bytes(folder / product_name(plan) / "MTD_MSIL1C.xml", xml)


def _write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> None:
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


def _gt_frame(scene: DemoScene) -> gpd.GeoDataFrame:
    polygons, ids = polygonise(scene.parcel, scene.transform)
    classes = scene.parcel_class[np.array(ids, dtype=np.int64)].astype(np.int32)
    return gpd.GeoDataFrame({"ATKIS_mod": classes}, geometry=polygons, crs=CRS)


def _change_frame(scene: DemoScene) -> gpd.GeoDataFrame:
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


# ---------------------------------------------------------------------- the raw folder
def raw_state(config: Config) -> str:
    """Classify the config's ``raw/`` folder.

    Returns:
        ``"missing"``, ``"empty"``, ``"demo"`` (a complete demo written by this generator)
        or ``"foreign"`` (anything else: never touched).
    """
    raw = config.raw_dir
    if not raw.exists() and not raw.is_symlink():
        return "missing"
    if not raw.is_dir() or raw.is_symlink():
        return "foreign"
    if (raw / MARKER_NAME).is_file():
        return "demo"
    return "foreign" if any(raw.iterdir()) else "empty"


def read_marker(config: Config) -> dict[str, Any] | None:
    """The completion marker of a demo ``raw/`` folder (None if absent or unreadable)."""
    try:
        return json.loads((config.raw_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _check_config(config: Config) -> None:
    ids = set(config.class_ids)
    if ids != set(CLASS_IDS) or config.water_id != WATER or config.unclassifiable_id != UNCLASSIFIABLE:
        raise InputError(
            f"{config.source}: the demo generator writes the paper's classes 1..8 (water 7, "
            f"unclassifiable 8), but the config's class table has ids {sorted(ids)}")
    for path in (config.gt_file, config.aoi_file, *(p for p in [config.true_change_file] if p)):
        if config.raw_dir not in path.parents:
            raise InputError(f"{config.source}: {path} is not under {config.raw_dir}; "
                             "the demo writes only there")


def _staging_folder(config: Config) -> Path:
    """A fresh staging folder next to ``raw/`` (a stale one of an interrupted run is removed)."""
    staging = config.data_root / STAGING_NAME
    if staging.exists():
        if not (staging / _STAGING_TAG).is_file():
            raise InputError(f"{staging} exists but was not created by the demo generator; "
                             "remove it yourself")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / _STAGING_TAG).write_text("demo generator staging folder\n", encoding="utf-8")
    return staging


def generate_demo(config: Config, seed: int = 0, size: int = DEFAULT_SIZE, *,
                  overwrite: bool = False) -> DemoSummary:
    """Generate the demo study area under ``config.data_root/raw``.

    Args:
        config: Configuration whose data root receives the demo (its class table must be the
            paper's eight classes).
        seed: Random seed; the same seed and size give byte-identical files.
        size: Scene side in 10 m pixels; a multiple of 6 (default 648, i.e. 6.48 km).
        overwrite: Replace an existing demo ``raw/`` folder (one with the completion marker):
            the files that the generator wrote are replaced, any other file is kept.

    Returns:
        A summary of what was written (``kept`` lists the files that were kept).

    Raises:
        ValueError: For an invalid size.
        InputError: If ``raw/`` holds data not written by this generator, or already holds a
            demo and ``overwrite`` is False, or the config does not suit the demo.
    """
    check_size(size)
    _check_config(config)
    demo_manifest.recover(config.raw_dir, MARKER_NAME)
    state = raw_state(config)
    if state == "foreign":
        raise InputError(f"{config.raw_dir} holds data that the demo generator did not write "
                         f"(no {MARKER_NAME}); refusing to touch it; point paths.data_root elsewhere")
    if state == "demo" and not overwrite:
        raise InputError(f"{config.raw_dir} already holds a demo; pass overwrite to regenerate it")
    if config.data_root.exists() and not config.data_root.is_dir():
        raise InputError(f"data root {config.data_root} is not a folder")
    started = time.perf_counter()

    streams = _streams(seed)
    scene = build_scene(seed, size)
    plans = plan_dates(config, streams[4])
    staging = _staging_folder(config)

    def staged(path: Path) -> Path:
        return staging / path.relative_to(config.raw_dir)

    sentinel = staged(config.raw_sentinel_dir("L1C"))
    sentinel.mkdir(parents=True)
    for plan, date_rng in zip(plans, streams[5].spawn(len(plans)), strict=True):
        bands, cloud_pct = render_date(scene, plan, date_rng)
        _write_product(sentinel, plan, bands, cloud_pct)

    gt = _gt_frame(scene)
    _write_shapefile(gt, staged(config.gt_file))
    aoi = aoi_polygon(streams[6], size)
    _write_shapefile(gpd.GeoDataFrame({"id": np.array([1], dtype=np.int32)}, geometry=[aoi], crs=CRS),
                     staged(config.aoi_file))
    changes = _change_frame(scene)
    if len(changes):
        change_file = config.true_change_file or config.raw_dir / "ground_truth/true_changes/true_changes.shp"
        _write_shapefile(changes, staged(change_file))

    counts = np.bincount(scene.label.ravel(), minlength=9)
    summary = DemoSummary(
        data_root=config.data_root, seed=seed, size=size, n_products=len(plans),
        dates=tuple(p.label for p in plans), class_pixels={c: int(counts[c]) for c in CLASS_IDS},
        n_gt_polygons=len(gt), n_true_change_polygons=len(changes),
        changed_pixels=int(np.count_nonzero(scene.label != scene.label_new)),
        cloudy_dates=tuple(p.label for p in plans if p.cloudy),
        partial_date=next((p.label for p in plans if p.partial), None),
        aoi_share=float(aoi.area / (size * PIXEL_SIZE) ** 2), seconds=time.perf_counter() - started,
    )
    (staging / _STAGING_TAG).unlink()
    recorded = {k: v for k, v in summary.to_dict().items() if k not in ("data_root", "seconds")}
    marker = {"generator": "src/data_processing/00_make_demo_data.py", "seed": seed, "size": size,
              "changes": [asdict(c) for c in scene.changes], "summary": recorded,
              demo_manifest.MANIFEST_KEY: demo_manifest.list_files(staging, MARKER_NAME)}
    _atomic_write_bytes(staging / MARKER_NAME, json.dumps(marker, indent=2).encode("utf-8"))

    kept = demo_manifest.swap_in(config.raw_dir, staging, MARKER_NAME)  # a user's extra files stay
    return dataclasses.replace(summary, kept=tuple(kept))
