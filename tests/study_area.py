"""Generated study areas for the pre-processing tests.

Every input is written on the fly with a real CRS (EPSG:32633) and a 10 m grid whose
upper-left corner is a multiple of 60 m, so the 20 m and 60 m bands line up with it. The
pixel values are simple functions of band, date, row and column, which lets the tests
predict every output by hand (with numpy or shapely, never with the code under test).

Scene layout (10 m pixels, 96 x 96, origin x=399960, y=5640000):

* The AOI covers scene rows/cols 6..90 (an 84 x 84 grid) minus a triangular notch in the
  upper-left corner, so some pixels of the grid lie outside the AOI and are 0.
* The GT (attribute ``ATKIS_mod``) tiles the grid with classes 1..7, leaves a hole without
  any polygon, and ends with a small unclassifiable (8) polygon drawn over class 2.
* The lower right part is water (7). Its two leftmost column pairs are a shoreline whose
  NDWI changes between the two training dates.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import struct
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from helpers.core.config import Config, load_config
from helpers.core.paths import REPO_ROOT
from helpers.data.sentinel import ESA_BAND_IDS
from helpers.demo import safe_writer
from helpers.demo.safe_writer import BAND_RESOLUTION, CRS, TILE_ID, ProductId

ORIGIN_X = 399960.0
ORIGIN_Y = 5640000.0
SCENE_PX = 96
"""Scene side in 10 m pixels (a multiple of 6, so the 60 m bands cover it exactly)."""
GRID_OFFSET = 6
"""Scene row/col of the AOI grid's upper-left pixel."""
GRID_PX = 84
"""AOI grid side in 10 m pixels."""

ESA_BANDS = ESA_BAND_IDS
"""Band order of the ``band_id`` attributes in the product metadata."""
L2A_EXTRA_RESOLUTION: dict[str, int] = {"AOT": 10, "WVP": 10, "SCL": 20, "CLD": 20, "SNW": 20}
LAYERS: tuple[str, ...] = ESA_BANDS + tuple(L2A_EXTRA_RESOLUTION)

TRAINING_DATES: tuple[str, str] = ("20160403", "20160522")
NEW_DATES: tuple[str] = ("20220419",)
OFFSET_DATES: tuple[str] = ("20220419",)
"""Dates whose product has processing baseline 04.00 (DN = reflectance * 10000 + 1000)."""

WRONG_RESOLUTION_VALUE = 9999
"""Value of the coarser duplicates of an L2A band, which ingestion must not pick."""

# Shoreline design: (B03, B08) per date parity.  NDWI = (B03 - B08) / (B03 + B08).
SHORE_A = {0: (1000, 1500), 1: (1500, 1000)}   # NDWI -0.2, +0.2 -> minimum -0.2
SHORE_B = {0: (1600, 400), 1: (1200, 800)}     # NDWI +0.6, +0.2 -> minimum +0.2
LAKE = (3000, 1000)                            # NDWI +0.5 on every date
WATER_TOP_ROW = 42                             # scene rows >= 42 ...
SHORE_A_COLS = (56, 58)                        # ... scene cols [56, 58) shoreline A
SHORE_B_COLS = (58, 60)                        # ... scene cols [58, 60) shoreline B, then lake

# GT polygons in grid pixel coordinates (col0, row0, col1, row1), drawn in this order.
GT_BOXES: tuple[tuple[int, tuple[int, int, int, int]], ...] = (
    (1, (0, 0, 28, 36)),
    (2, (28, 0, 56, 36)),
    (3, (56, 0, 84, 36)),
    (4, (0, 36, 20, 84)),
    (5, (20, 36, 40, 84)),
    (6, (40, 36, 50, 84)),
    (7, (50, 36, 84, 84)),
    (8, (30, 10, 34, 14)),
)
GT_HOLE = (0, 54, 9, 63)
"""Grid box (col0, row0, col1, row1) that no GT polygon covers."""
NOTCH = 12.3
"""The AOI's upper-left corner is cut along col + row = NOTCH (grid pixels); no centre lies on it."""

DELETE = object()
"""Marker for :meth:`StudyArea.write_config`: remove the key."""


# ---------------------------------------------------------------------- coordinates
def scene_xy(col: float, row: float) -> tuple[float, float]:
    """Map coordinates of a scene pixel corner (col, row) of the 10 m scene grid."""
    return ORIGIN_X + 10.0 * col, ORIGIN_Y - 10.0 * row


def grid_box(col0: float, row0: float, col1: float, row1: float) -> Polygon:
    """A rectangle given in AOI-grid pixel coordinates, in map coordinates."""
    x0, y0 = scene_xy(col0 + GRID_OFFSET, row0 + GRID_OFFSET)
    x1, y1 = scene_xy(col1 + GRID_OFFSET, row1 + GRID_OFFSET)
    return box(x0, y1, x1, y0)


def aoi_polygon() -> Polygon:
    """The study area's AOI: the 84 x 84 grid minus a triangular notch at its upper-left corner."""
    corners = [(NOTCH, 0), (GRID_PX, 0), (GRID_PX, GRID_PX), (0, GRID_PX), (0, NOTCH)]
    return Polygon([scene_xy(c + GRID_OFFSET, r + GRID_OFFSET) for c, r in corners])


GRID_TRANSFORM = Affine(10.0, 0.0, scene_xy(GRID_OFFSET, GRID_OFFSET)[0], 0.0, -10.0,
                        scene_xy(GRID_OFFSET, GRID_OFFSET)[1])
"""Transform every processed raster of the standard study area must have."""


def centres_inside(geometry: BaseGeometry, transform: Affine, height: int, width: int) -> np.ndarray:
    """Boolean (height, width): whose pixel centre lies inside ``geometry`` (shapely, not rasterio)."""
    rows, cols = np.indices((height, width))
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    return shapely.contains_xy(geometry, xs, ys)


# ---------------------------------------------------------------------- pixel values
def band_values(layer: str, date_index: int, resolution: int | None = None) -> np.ndarray:
    """Reflectance-like DNs of one layer over the whole scene at its native (or a given) resolution.

    Spectral bands: ``200 + 100 * k + 7 * date_index + (3 * row + 5 * col) % 61`` (k = position
    in :data:`LAYERS`), always >= 200. B03 and B08 are overridden over the water (see the module
    docstring). L2A auxiliary layers get small non-zero values. A layer written at a coarser
    resolution than its native one holds :data:`WRONG_RESOLUTION_VALUE` everywhere.

    Args:
        layer: Band or L2A layer name.
        date_index: Position of the date among the study area's dates.
        resolution: Pixel size in metres (default: the native one).

    Returns:
        uint16 array of (SCENE_PX * 10 / resolution) square pixels.
    """
    native = BAND_RESOLUTION.get(layer) or L2A_EXTRA_RESOLUTION[layer]
    resolution = resolution or native
    side = SCENE_PX * 10 // resolution
    if resolution != native:
        return np.full((side, side), WRONG_RESOLUTION_VALUE, dtype=np.uint16)
    rows, cols = np.indices((side, side))
    k = LAYERS.index(layer)
    if layer in L2A_EXTRA_RESOLUTION:
        return (1 + (13 * k + 3 * rows + 5 * cols + date_index) % 97).astype(np.uint16)
    values = 200 + 100 * k + 7 * date_index + (3 * rows + 5 * cols) % 61
    if layer in ("B03", "B08"):
        pick = 0 if layer == "B03" else 1
        parity = date_index % 2
        water = rows >= WATER_TOP_ROW
        values[water & (cols >= SHORE_A_COLS[0]) & (cols < SHORE_A_COLS[1])] = SHORE_A[parity][pick]
        values[water & (cols >= SHORE_B_COLS[0]) & (cols < SHORE_B_COLS[1])] = SHORE_B[parity][pick]
        values[water & (cols >= SHORE_B_COLS[1])] = LAKE[pick]
    return values.astype(np.uint16)


def upsampled(native: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling by pixel repetition (the oracle for 20 m and 60 m bands)."""
    return np.repeat(np.repeat(native, factor, axis=0), factor, axis=1)


def expected_scene(layers: Iterable[str], date_index: int, aoi: BaseGeometry | None = None,
                   window: tuple[int, int, int, int] = (GRID_OFFSET, GRID_OFFSET, GRID_PX, GRID_PX),
                   natives: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The stack step 01 must write, computed independently of the code under test.

    Args:
        layers: Layers in output order.
        date_index: Date position (as in :func:`band_values`).
        aoi: AOI polygon; pixels whose centre is outside it are 0 (default: :func:`aoi_polygon`).
        window: (col0, row0, width, height) of the output grid in scene pixels.
        natives: Layer -> native array replacing :func:`band_values` (its factor follows from its size).

    Returns:
        uint16 array (layers, height, width).
    """
    col0, row0, width, height = window
    aoi = aoi_polygon() if aoi is None else aoi
    transform = Affine(10.0, 0.0, scene_xy(col0, row0)[0], 0.0, -10.0, scene_xy(col0, row0)[1])
    inside = centres_inside(aoi, transform, height, width)
    planes = []
    for layer in layers:
        source = (natives or {}).get(layer)
        source = band_values(layer, date_index) if source is None else source
        full = upsampled(source, SCENE_PX // source.shape[0])
        planes.append(np.where(inside, full[row0:row0 + height, col0:col0 + width], 0))
    return np.stack(planes).astype(np.uint16)


def expected_gt() -> np.ndarray:
    """The rasterised GT on the 84 x 84 grid: boxes painted in order, then the hole."""
    gt = np.zeros((GRID_PX, GRID_PX), dtype=np.uint8)
    for value, (c0, r0, c1, r1) in GT_BOXES:
        gt[r0:r1, c0:c1] = value
    c0, r0, c1, r1 = GT_HOLE
    gt[r0:r1, c0:c1] = 0
    return gt


def expected_min_ndwi(date_indices: Iterable[int]) -> np.ndarray:
    """Minimum NDWI over dates on the 84 x 84 grid, with plain float arithmetic per date."""
    minimum = np.full((GRID_PX, GRID_PX), np.inf)
    window = np.s_[GRID_OFFSET:GRID_OFFSET + GRID_PX, GRID_OFFSET:GRID_OFFSET + GRID_PX]
    for index in date_indices:
        green = band_values("B03", index)[window].astype(float)
        nir = band_values("B08", index)[window].astype(float)
        total = green + nir
        value = np.where(total == 0, 0.0, (green - nir) / np.where(total == 0, 1, total))
        minimum = np.minimum(minimum, value)
    return minimum


# ---------------------------------------------------------------------- writers
def write_band(path: Path, array: np.ndarray, resolution: float, origin: tuple[float, float] = (ORIGIN_X, ORIGIN_Y),
               crs: str = CRS) -> Path:
    """Write a raster with the products' writer, :func:`helpers.demo.safe_writer.write_band` (same arguments).

    JP2 (lossless) for ``.jp2`` names, GeoTIFF otherwise; ``origin`` defaults to this area's corner.
    """
    return safe_writer.write_band(path, array, resolution, origin, crs)


def metadata_xml(level: str, date: str, baseline: str, offsets: Mapping[int, int] | None = None) -> str:
    """Text of the ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` that :mod:`helpers.demo.safe_writer` writes.

    Args:
        level: "L1C" or "L2A".
        date: YYYYMMDD.
        baseline: Processing baseline, e.g. "04.00".
        offsets: band_id -> additive offset (RADIO_ADD_OFFSET for L1C, BOA_ADD_OFFSET for L2A).

    Returns:
        The XML document.
    """
    return safe_writer.metadata_xml(ProductId(date, level, baseline=baseline), offsets=offsets).decode("utf-8")


def _offset_dn(values: np.ndarray, offset: bool) -> np.ndarray:
    return (values.astype(np.int32) + 1000).astype(np.uint16) if offset else values


def write_l1c_safe(level_dir: Path, date: str, date_index: int, baseline: str = "02.04", offset: bool = False,
                   suffix: str = ".jp2", origin: tuple[float, float] = (ORIGIN_X, ORIGIN_Y), crs: str = CRS,
                   tile: str = TILE_ID, values: Callable[[str, int], np.ndarray] | None = None) -> Path:
    """Write an L1C ``.SAFE`` folder: metadata, the 13 bands at native resolution, and decoys.

    Args:
        level_dir: ``raw/sentinel/level_L1C``.
        date: YYYYMMDD.
        date_index: Position of the date (pixel values, see :func:`band_values`).
        baseline: Processing baseline written to the XML and the name.
        offset: Add 1000 to every DN and list ``RADIO_ADD_OFFSET = -1000`` for the 13 bands.
            Baselines >= 04.00 also get the raster quality masks of such products in ``QI_DATA``.
        suffix: ".jp2" (JP2OpenJPEG, lossless) or ".tif".
        origin: Upper-left corner of the band files.
        crs: CRS of the band files.
        tile: MGRS tile id in the names.
        values: Optional (band, date_index) -> native DNs written as they are (``offset`` then only
            changes the metadata).

    Returns:
        The ``.SAFE`` folder.
    """
    product = ProductId(date, "L1C", baseline=baseline, tile=tile)
    offsets = dict.fromkeys(range(13), -1000) if offset else None
    images = [(band, BAND_RESOLUTION[band],
               values(band, date_index) if values else _offset_dn(band_values(band, date_index), offset))
              for band in ESA_BANDS]
    safe = safe_writer.write_product(level_dir, product, images, origin, crs, suffix=suffix, offsets=offsets)
    granule = safe / "GRANULE" / product.granule
    img = granule / "IMG_DATA"
    (safe / "manifest.safe").write_text("<xfdu/>\n", encoding="utf-8")
    (granule / "QI_DATA").mkdir(parents=True)
    (granule / "MTD_TL.xml").write_text("<tile/>\n", encoding="utf-8")
    if float(baseline) >= 4.0:
        write_quality_masks(granule / "QI_DATA", origin, crs)
    # Files that look like bands but must be ignored: a true-colour image and a DATASTRIP copy.
    write_band(img / f"{tile}_{date}T101022_TCI{suffix}", np.ones((8, 8), dtype=np.uint16), 120.0, origin, crs)
    write_band(safe / "DATASTRIP" / "DS_X" / "QI_DATA" / f"{tile}_{date}_B02{suffix}",
               np.full((8, 8), WRONG_RESOLUTION_VALUE, dtype=np.uint16), 5.0, origin, crs)
    return safe


def write_quality_masks(qi_data: Path, origin: tuple[float, float] = (ORIGIN_X, ORIGIN_Y), crs: str = CRS) -> None:
    """The JP2 masks that products of baseline >= 04.00 carry per band (names end in ``_<band>.jp2``).

    ``MSK_DETFOO_<band>`` holds detector ids 1..12 (non-zero everywhere), ``MSK_QUALIT_<band>``
    eight 0/1 layers, ``MSK_CLASSI_B00`` three 0/1 layers at 60 m. None of them is a band.
    """
    for band in ESA_BANDS:
        side = SCENE_PX * 10 // BAND_RESOLUTION[band]
        rows, cols = np.indices((side, side))
        write_band(qi_data / f"MSK_DETFOO_{band}.jp2", (1 + cols * 12 // side).astype(np.uint8),
                   BAND_RESOLUTION[band], origin, crs)
        quality = np.stack([(rows + cols + k) % 7 == 0 for k in range(8)]).astype(np.uint8)
        write_band(qi_data / f"MSK_QUALIT_{band}.jp2", quality, BAND_RESOLUTION[band], origin, crs)
    write_band(qi_data / "MSK_CLASSI_B00.jp2", np.ones((3, SCENE_PX // 6, SCENE_PX // 6), dtype=np.uint8), 60.0,
               origin, crs)


def write_l2a_safe(level_dir: Path, date: str, date_index: int, baseline: str = "02.11",
                   offset: bool = False) -> Path:
    """Write an L2A ``.SAFE``: ``IMG_DATA/R10m|R20m|R60m`` and the ``QI_DATA`` probability masks.

    Each band is present at its native resolution and (as in real products) at coarser ones;
    the coarser copies hold :data:`WRONG_RESOLUTION_VALUE`. B01 exists at 20 m and 60 m
    (20 m is its finest L2A version), B09 at 60 m only, B10 not at all.

    Args:
        level_dir: ``raw/sentinel/level_L2A``.
        date: YYYYMMDD.
        date_index: Position of the date.
        baseline: Processing baseline.
        offset: Add 1000 to spectral DNs and list ``BOA_ADD_OFFSET = -1000``.

    Returns:
        The ``.SAFE`` folder.
    """
    product = ProductId(date, "L2A", baseline=baseline)
    offsets = dict.fromkeys(range(13), -1000) if offset else None
    content = {
        10: ("B02", "B03", "B04", "B08", "AOT", "WVP"),
        20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "AOT", "WVP", "SCL"),
        60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "AOT", "WVP", "SCL"),
    }
    images = []
    for resolution, layers in content.items():
        side = SCENE_PX * 10 // resolution
        for layer in layers:
            native = 20 if layer == "B01" else BAND_RESOLUTION.get(layer) or L2A_EXTRA_RESOLUTION[layer]
            if resolution != native:
                array = np.full((side, side), WRONG_RESOLUTION_VALUE, dtype=np.uint16)
            else:
                array = l2a_b01(date_index) if layer == "B01" else band_values(layer, date_index)
                array = _offset_dn(array, offset and layer in BAND_RESOLUTION)
            images.append((layer, float(resolution), array))
    safe = safe_writer.write_product(level_dir, product, images, (ORIGIN_X, ORIGIN_Y), offsets=offsets)
    granule = safe / "GRANULE" / product.granule
    if float(baseline) >= 4.0:
        write_quality_masks(granule / "QI_DATA")
    for mask, layer in (("CLDPRB", "CLD"), ("SNWPRB", "SNW")):
        write_band(granule / "QI_DATA" / f"MSK_{mask}_20m.jp2", band_values(layer, date_index), 20.0)
        write_band(granule / "QI_DATA" / f"MSK_{mask}_60m.jp2", band_values(layer, date_index, 60), 60.0)
    return safe


def l2a_b01(date_index: int) -> np.ndarray:
    """B01 of an L2A product at 20 m (its finest L2A resolution)."""
    rows, cols = np.indices((SCENE_PX // 2, SCENE_PX // 2))
    return (300 + 7 * date_index + (rows + 2 * cols) % 53).astype(np.uint16)


def write_band_folder(level_dir: Path, date: str, date_index: int) -> Path:
    """Write a flat folder of per-band GeoTIFFs named ``T33UVS_<date>T101022_<band>.tif``."""
    folder = level_dir / f"{TILE_ID}_{date}_bands"
    for band in ESA_BANDS:
        write_band(folder / f"{TILE_ID}_{date}T101022_{band}.tif", band_values(band, date_index),
                   BAND_RESOLUTION[band])
    return folder


def zip_product(safe: Path) -> Path:
    """Replace a ``.SAFE`` folder by ``<name>.zip`` holding ``<name>.SAFE/...`` (as ESA ships it)."""
    archive = shutil.make_archive(str(safe.with_suffix("")), "zip", root_dir=safe.parent, base_dir=safe.name)
    shutil.rmtree(safe)
    return Path(archive)


def zip_product_stored(safe: Path) -> Path:
    """Like :func:`zip_product`, but every member stored uncompressed (as deflate stores JP2 data it
    cannot shrink): damaged bytes in a member then decode without any error from GDAL."""
    archive = safe.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        for path in sorted(safe.rglob("*")):
            zipped.write(path, path.relative_to(safe.parent).as_posix())
    shutil.rmtree(safe)
    return archive


def damage_zip_member(archive: Path, name_suffix: str, count: int = 3000) -> str:
    """Zero ``count`` bytes in the middle of a zip member's data (its CRC-32 no longer matches).

    The zip's directory stays intact, so the archive opens and the member is found.

    Args:
        archive: The zip file (rewritten in place).
        name_suffix: End of the member's name, e.g. ``_B03.jp2``.
        count: Bytes to zero (at most the member's stored size).

    Returns:
        The member's name.
    """
    with zipfile.ZipFile(archive) as zipped:
        info = next(i for i in zipped.infolist() if i.filename.endswith(name_suffix))
    data = bytearray(archive.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    count = min(count, info.compress_size)
    middle = start + (info.compress_size - count) // 2
    data[middle:middle + count] = bytes(count)
    archive.write_bytes(bytes(data))
    return info.filename


def zero_bytes(path: Path, start: int, count: int) -> None:
    """Overwrite ``count`` bytes of a file with zeros from ``start`` (the file keeps its size)."""
    data = bytearray(path.read_bytes())
    data[start:start + count] = bytes(count)
    path.write_bytes(bytes(data))


def write_vector(path: Path, geometries: list[BaseGeometry], crs: str | None = CRS, **columns: list[Any]) -> Path:
    """Write a Shapefile or GeoPackage (by suffix) with the given attribute columns.

    Args:
        path: Destination (``.shp`` or ``.gpkg``).
        geometries: One geometry per feature.
        crs: Layer CRS.
        **columns: Attribute name -> one value per feature.

    Returns:
        The path written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = gpd.GeoDataFrame(dict(columns), geometry=geometries, crs=crs)
    frame.to_file(path)
    return path


def write_aoi(path: Path, polygon: BaseGeometry, crs: str = CRS) -> Path:
    """Write an AOI layer; a polygon given in :data:`CRS` is reprojected (densified first) to ``crs``.

    Args:
        path: Destination shapefile.
        polygon: AOI in :data:`CRS` map coordinates.
        crs: CRS of the written layer (e.g. "EPSG:4326").

    Returns:
        The path written.
    """
    if crs != CRS:
        polygon = shapely.transform(polygon.segmentize(50.0), Transformer.from_crs(CRS, crs, always_xy=True).transform,
                                    interleaved=False)
    return write_vector(path, [polygon], crs=crs, id=[1])


@dataclass(frozen=True)
class ForeignScene:
    """An L1C product written in another UTM zone, with what an oracle needs to predict the warp.

    Attributes:
        path: The ``.SAFE`` folder.
        crs: Its CRS.
        left: x of its upper-left corner.
        top: y of its upper-left corner.
        side: Side of its 10 m grid in pixels.
    """

    path: Path
    crs: str
    left: float
    top: float
    side: int

    def values(self, band: str) -> np.ndarray:
        """Native DNs of a band: ``300 + 100 * k + (7 * row + 11 * col) % 89``."""
        n = self.side * 10 // BAND_RESOLUTION[band]
        rows, cols = np.indices((n, n))
        return (300 + 100 * ESA_BANDS.index(band) + (7 * rows + 11 * cols) % 89).astype(np.uint16)

    def value_at(self, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The DN of the source pixel that contains each point (x, y) given in the product's CRS."""
        res = BAND_RESOLUTION[band]
        return self.values(band)[((self.top - y) // res).astype(int), ((x - self.left) // res).astype(int)]


def write_foreign_zone_l1c(level_dir: Path, date: str, crs: str = "EPSG:32632") -> ForeignScene:
    """Write an L1C ``.SAFE`` in another UTM zone that covers the whole standard scene with a margin.

    Its corner is a multiple of 60 m in its own CRS, its side a multiple of 6 pixels.
    """
    to_foreign = Transformer.from_crs(CRS, crs, always_xy=True)
    xs, ys = to_foreign.transform([ORIGIN_X, ORIGIN_X + 960, ORIGIN_X, ORIGIN_X + 960],
                                  [ORIGIN_Y, ORIGIN_Y, ORIGIN_Y - 960, ORIGIN_Y - 960])
    left, top = (min(xs) // 60 - 2) * 60, (max(ys) // 60 + 3) * 60
    side = int((max(max(xs) - left, top - min(ys)) // 60 + 3) * 6)
    scene = ForeignScene(Path(), crs, left, top, side)
    path = write_l1c_safe(level_dir, date, 0, origin=(left, top), crs=crs, tile="T32UQB",
                          values=lambda band, _: scene.values(band))
    return ForeignScene(path, crs, left, top, side)


def gt_geometries() -> list[BaseGeometry]:
    """The GT polygons in drawing order (class 4 has the hole cut out)."""
    shapes: list[BaseGeometry] = []
    for value, bounds in GT_BOXES:
        shape = grid_box(*bounds)
        if value == 4:
            shape = shape.difference(grid_box(*GT_HOLE))
        shapes.append(shape)
    return shapes


def write_gt(path: Path, values: list[Any] | None = None, attribute: str = "ATKIS_mod",
             geometries: list[BaseGeometry] | None = None) -> Path:
    """Write the study area's GT (default: :data:`GT_BOXES` with their class ids)."""
    geometries = gt_geometries() if geometries is None else geometries
    values = [value for value, _ in GT_BOXES] if values is None else values
    return write_vector(path, geometries, **{attribute: values})


def dump_toml(data: Mapping[str, Any]) -> str:
    """Serialise nested dicts/lists of scalars as TOML (tables and arrays of tables)."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        raise TypeError(f"cannot write {item!r} as TOML")

    def is_table_array(item: Any) -> bool:
        return isinstance(item, list) and bool(item) and all(isinstance(v, dict) for v in item)

    def table(prefix: str, node: Mapping[str, Any]) -> list[str]:
        lines = [f"{k} = {value(v)}" for k, v in node.items() if not isinstance(v, dict) and not is_table_array(v)]
        for k, v in node.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines += ["", f"[{name}]", *table(name, v)]
            elif is_table_array(v):
                for entry in v:
                    lines += ["", f"[[{name}]]", *table(name, entry)]
        return lines

    return "\n".join(table("", data)) + "\n"


def apply_changes(data: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of a TOML document with dotted keys set (``classes.1.id`` indexes arrays) or deleted."""
    data = copy.deepcopy(data)
    for key, new in changes.items():
        *parents, last = key.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        index: Any = int(last) if isinstance(node, list) else last
        if new is DELETE:
            del node[index]
        else:
            node[index] = new
    return data


def demo_settings(folder: Path, data_root: Path | None = None) -> dict[str, Any]:
    """``configs/demo.toml`` as a TOML document with its data, models and reports roots under ``folder``.

    Args:
        folder: Where ``data/``, ``models/`` and ``reports/`` go.
        data_root: Another data root (e.g. shared read-only tiles); default ``folder / "data"``.
    """
    data = tomllib.loads((REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8"))
    data["paths"] = {"data_root": str(data_root or folder / "data"), "models_root": str(folder / "models"),
                     "reports_root": str(folder / "reports")}
    return data


def write_config_file(path: Path, data: Mapping[str, Any], changes: Mapping[str, Any] | None = None) -> Path:
    """The one writer of the tests' configs: a TOML document with dotted-key ``changes`` applied, at ``path``.

    Args:
        path: The config file to write.
        data: The TOML document (e.g. :func:`demo_settings`, :func:`base_settings`, or a loaded config).
        changes: Dotted key -> new value (``classes.1.name`` indexes arrays), or :data:`DELETE`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_toml(apply_changes(dict(data), changes or {})), encoding="utf-8")
    return path


def write_config_variant(source: Path, name: str, changes: Mapping[str, Any]) -> Path:
    """A config file beside ``source``, named ``name``, with dotted-key ``changes``."""
    return write_config_file(source.with_name(name), tomllib.loads(source.read_text(encoding="utf-8")), changes)


def base_settings(data_root: Path, training: tuple[str, ...] = TRAINING_DATES,
                  new: tuple[str, ...] = NEW_DATES) -> dict[str, Any]:
    """``configs/demo.toml`` adapted to a generated area: absolute roots, short dates, 8 px tiles."""
    data = tomllib.loads((REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8"))
    data["paths"] = {"data_root": str(data_root), "models_root": str(data_root.parent / "models"),
                     "reports_root": str(data_root.parent / "reports")}
    data["ground_truth"].pop("true_change_file", None)
    data.pop("change", None)  # the demo's change periods name the demo's dates
    data["dates"] = {"training_pool": list(training), "fcn_training": list(training),
                     "fixed_sequence": list(training), "evaluation": list(training), "new": list(new),
                     "reference": training[-1], "combinations": [list(new)] if new else []}
    data["tiling"] = {"tile_size": 8, "separation": 1, "prediction_stride": 4}
    return data


@dataclass
class StudyArea:
    """A generated study area: data root, raw inputs and the TOML config that points at them.

    Attributes:
        root: The data root (holds ``raw/`` and, after a run, ``processed/``).
        config_path: The TOML config.
        settings: The TOML document (as a dict) last written to ``config_path``.
        dates: Every date of the area, in order (a date's index sets its pixel values).
    """

    root: Path
    config_path: Path
    settings: dict[str, Any]
    dates: tuple[str, ...]

    @property
    def raw(self) -> Path:
        """The raw inputs (read-only for the pipeline)."""
        return self.root / "raw"

    @property
    def processed(self) -> Path:
        """What the pipeline writes."""
        return self.root / "processed"

    @property
    def l1c_dir(self) -> Path:
        """``raw/sentinel/level_L1C``."""
        return self.raw / "sentinel" / "level_L1C"

    @property
    def gt_file(self) -> Path:
        """The GT shapefile."""
        return self.raw / "ground_truth" / "gt_shapefile" / "gt.shp"

    @property
    def aoi_file(self) -> Path:
        """The AOI shapefile."""
        return self.raw / "ground_truth" / "overallshape" / "overallshape.shp"

    def date_index(self, date: str) -> int:
        """Position of a date (its pixel values depend on it)."""
        return self.dates.index(date)

    def product(self, date: str, level: str = "L1C") -> Path:
        """The raw product of a date."""
        (path,) = (self.raw / "sentinel" / f"level_{level}").glob(f"*{date}*")
        return path

    def band_file(self, date: str, band: str) -> Path:
        """The L1C band file of a date."""
        (path,) = self.product(date).glob(f"GRANULE/*/IMG_DATA/*_{band}.*")
        return path

    def config(self) -> Config:
        """The config, loaded with :func:`helpers.core.config.load_config`."""
        return load_config(self.config_path)

    def write_config(self, changes: Mapping[str, Any] | None = None, path: Path | None = None) -> Path:
        """Rewrite the config (or write a variant to ``path``) with dotted-key changes.

        Args:
            changes: Dotted key -> new value, or :data:`DELETE` to remove the key.
            path: Where to write (default: ``config_path``, whose settings are then updated).

        Returns:
            The written path.
        """
        target = write_config_file(path or self.config_path, self.settings, changes)
        if path is None:
            self.settings = apply_changes(self.settings, changes or {})
        return target

    def copy_to(self, folder: Path) -> StudyArea:
        """A copy of the raw inputs under ``folder/data`` with its own config ``folder/config.toml``."""
        root = folder / "data"
        shutil.copytree(self.raw, root / "raw")
        settings = apply_changes(self.settings, {
            "paths.data_root": str(root), "paths.models_root": str(folder / "models"),
            "paths.reports_root": str(folder / "reports"),
        })
        area = StudyArea(root, folder / "config.toml", settings, self.dates)
        area.write_config()
        return area


def build_study_area(folder: Path, training: tuple[str, ...] = TRAINING_DATES, new: tuple[str, ...] = NEW_DATES,
                     offset_dates: tuple[str, ...] = OFFSET_DATES) -> StudyArea:
    """Write a complete tiny study area under ``folder/data`` and its config ``folder/config.toml``.

    Args:
        folder: Empty folder to fill.
        training: Training-pool dates (the last is the reference).
        new: New (classification) dates.
        offset_dates: Dates written as baseline-04.00 products with the +1000 offset.

    Returns:
        The study area.
    """
    root = folder / "data"
    dates = tuple(sorted({*training, *new}))
    area = StudyArea(root, folder / "config.toml", base_settings(root, training, new), dates)
    for index, date in enumerate(dates):
        is_offset = date in offset_dates
        write_l1c_safe(area.l1c_dir, date, index, baseline="04.00" if is_offset else "02.04", offset=is_offset)
    write_gt(area.gt_file)
    write_aoi(area.aoi_file, aoi_polygon())
    area.write_config()
    return area


def demo_config_copy(folder: Path, data_root: Path) -> Path:
    """A copy of configs/demo.toml in ``folder`` whose data_root is an absolute (temporary) folder."""
    text = (REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^data_root\s*=.*$", f'data_root = "{data_root.as_posix()}"', text)
    assert count == 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path
