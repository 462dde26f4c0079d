"""Reading vector inputs (ground truth, AOI, true changes) with clear errors.

A damaged vector file must never be half-read: a Shapefile truncated in the middle still opens,
and GDAL returns the features whose geometry lies past the end as features *without* a
geometry, so dropping those silently would burn only part of the ground truth. Shapefiles are
therefore checked against their own headers and index before they are read (cheap: headers
and 8 bytes per feature), and any feature without a geometry is an error, whatever the format.
"""

from __future__ import annotations

import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry.base import BaseGeometry

from helpers.core.errors import InputError

POLYGON_TYPES = {"Polygon", "MultiPolygon"}
SHAPEFILE_HEADER = 100
"""Bytes of the main-file and index-file header of a Shapefile."""
SHAPEFILE_CODE = 9994
_SHOWN = 5
"""Feature numbers listed in a message before '...'."""


def _sidecar(path: Path, suffix: str) -> Path | None:
    """The sidecar file of a Shapefile (``.shx``, ``.dbf``) in either case, None if absent."""
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.is_file():
            return candidate
    return None


def _shapefile_header(path: Path, data: bytes) -> int:
    """Check the 100-byte header of a ``.shp`` or ``.shx``; return the file length it declares in bytes."""
    if len(data) < SHAPEFILE_HEADER:
        raise InputError(f"{path}: damaged Shapefile: {len(data)} bytes, shorter than its 100-byte header")
    code, = struct.unpack(">i", data[:4])
    if code != SHAPEFILE_CODE:
        raise InputError(f"{path}: damaged Shapefile: file code {code}, not {SHAPEFILE_CODE}")
    words, = struct.unpack(">i", data[24:28])
    return 2 * words


def check_shapefile(path: Path, what: str) -> int:
    """Check that a Shapefile's ``.shp``, ``.shx`` and ``.dbf`` are complete and agree.

    Reads the headers, the index (8 bytes per feature) and the 8-byte header of every record in
    the ``.shp`` (memory-mapped, so only those pages are touched): a file cut short, an index
    pointing past the end or at the wrong record, or a ``.dbf`` with another number of records
    is a damaged file.

    Args:
        path: The ``.shp`` file.
        what: What the file is (for messages).

    Returns:
        The number of features.

    Raises:
        InputError: Naming the file and what is damaged.
    """
    shp_size = path.stat().st_size
    with path.open("rb") as stream:
        declared = _shapefile_header(path, stream.read(SHAPEFILE_HEADER))
    if shp_size < declared:
        raise InputError(f"{path}: damaged {what} Shapefile: {shp_size:,} bytes, its header says {declared:,} "
                         f"(the file is truncated); replace it with an intact copy")
    shx = _sidecar(path, ".shx")
    if shx is None:
        raise InputError(f"{path}: {what} Shapefile has no .shx index file beside it")
    index_bytes = shx.read_bytes()
    index_declared = _shapefile_header(shx, index_bytes)
    if len(index_bytes) != index_declared or (len(index_bytes) - SHAPEFILE_HEADER) % 8:
        raise InputError(f"{shx}: damaged {what} Shapefile index: {len(index_bytes):,} bytes, its header says "
                         f"{index_declared:,}; replace it with an intact copy")
    records = np.frombuffer(index_bytes, dtype=">i4", offset=SHAPEFILE_HEADER).reshape(-1, 2).astype(np.int64)
    count = len(records)
    offsets, lengths = 2 * records[:, 0], 2 * records[:, 1]
    beyond = np.flatnonzero((offsets < SHAPEFILE_HEADER) | (offsets + 8 + lengths > shp_size))
    if beyond.size:
        raise InputError(f"{path}: damaged {what} Shapefile: {beyond.size} of {count} features lie beyond the end "
                         f"of its {shp_size:,} bytes (first: feature {beyond[0] + 1}); the file is truncated or "
                         f"does not belong to {shx.name}; replace it with an intact copy")
    if count:
        heads = np.memmap(path, dtype=np.uint8, mode="r")[offsets[:, None] + np.arange(8)]
        numbers = heads[:, :4].copy().view(">i4").ravel()
        content = 2 * heads[:, 4:].copy().view(">i4").ravel().astype(np.int64)
        wrong = np.flatnonzero((numbers != np.arange(1, count + 1)) | (content != lengths))
        if wrong.size:
            raise InputError(f"{path}: damaged {what} Shapefile: record {wrong[0] + 1} does not match its entry in "
                             f"{shx.name} ({wrong.size} of {count} records); replace it with an intact copy")
    dbf = _sidecar(path, ".dbf")
    if dbf is not None:
        _check_dbf(dbf, what, count)
    return count


def _check_dbf(dbf: Path, what: str, count: int) -> None:
    """The attribute table must hold one complete record per feature."""
    size = dbf.stat().st_size
    with dbf.open("rb") as stream:
        header = stream.read(12)
    if len(header) < 12:
        raise InputError(f"{dbf}: damaged {what} attribute table: {size} bytes, shorter than its header")
    records, header_length, record_length = struct.unpack("<IHH", header[4:12])
    if records != count:
        raise InputError(f"{dbf}: {what} attribute table has {records:,} records, the Shapefile {count:,} "
                         f"features; the files do not belong together or one is damaged")
    needed = header_length + records * record_length
    if size < needed:
        raise InputError(f"{dbf}: damaged {what} attribute table: {size:,} bytes, its {records:,} records need "
                         f"{needed:,} (the file is truncated); replace it with an intact copy")


def check_vector_file(path: Path, what: str) -> None:
    """The cheap checks of a vector input, without reading its features (used before a run writes).

    Args:
        path: The vector file.
        what: What the file is (for messages: "ground truth", "AOI").

    Raises:
        InputError: If the file is missing or (a Shapefile) damaged.
    """
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    if path.suffix.lower() == ".shp" and path.is_file():
        check_shapefile(path, what)


def _listing(numbers: np.ndarray) -> str:
    """``feature 3`` or ``features 3, 4, 5, 6, 7, ...`` (1-based feature numbers)."""
    shown = ", ".join(str(int(n)) for n in numbers[:_SHOWN])
    return ("feature " if len(numbers) == 1 else "features ") + shown + (", ..." if len(numbers) > _SHOWN else "")


def read_vector(path: Path, what: str, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a Shapefile or GeoPackage layer and check that it is usable.

    Args:
        path: The vector file.
        what: What the file is (for messages: "ground truth", "AOI").
        crs: If given, the layer is reprojected to this CRS.

    Returns:
        The layer (every feature has a non-empty polygon geometry).

    Raises:
        InputError: If the file is missing, unreadable or damaged, has no CRS, no features,
            features without a geometry, or geometries that are not polygons.
    """
    check_vector_file(path, what)
    try:
        frame = gpd.read_file(path)
    except (DataSourceError, DataLayerError, OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: cannot read {what} vector file ({message})") from None
    if frame.crs is None:
        raise InputError(f"{path}: {what} has no CRS (add a .prj file or set the layer CRS)")
    if frame.empty:
        raise InputError(f"{path}: {what} has no features")
    missing = np.flatnonzero((frame.geometry.isna() | frame.geometry.is_empty).to_numpy())
    if missing.size:
        raise InputError(f"{path}: {what} has {missing.size} of {len(frame)} features without a geometry "
                         f"({_listing(missing + 1)}); a feature without a geometry cannot be used: "
                         f"remove it, or replace a damaged file with an intact copy")
    kinds = set(frame.geom_type)
    if not kinds <= POLYGON_TYPES:
        other = sorted(kinds - POLYGON_TYPES)
        raise InputError(f"{path}: {what} has non-polygon geometries ({', '.join(other)}); only polygons are supported")
    if crs is not None:
        try:
            frame = frame.to_crs(crs)
        except (ProjError, CRSError) as error:  # e.g. a local (engineering) CRS: no operation to the target
            raise InputError(f"{path}: {what} CRS {frame.crs.name!r} cannot be transformed to {crs} "
                             f"({_first_line(error)})") from None
    return frame


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def read_area_of_interest(path: Path, crs: str) -> BaseGeometry:
    """Read an AOI file as one (multi)polygon in the target CRS.

    Args:
        path: The AOI vector file.
        crs: Target CRS.

    Returns:
        The union of all AOI polygons.
    """
    frame = read_vector(path, "AOI", crs)
    geometry = frame.geometry.make_valid().union_all()
    if geometry.is_empty or geometry.area <= 0:
        raise InputError(f"{path}: AOI has zero area")
    return geometry
