"""Reading vector inputs (ground truth, AOI, true changes) with clear errors."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from pyogrio.errors import DataLayerError, DataSourceError
from shapely.geometry.base import BaseGeometry

from helpers.errors import InputError

POLYGON_TYPES = {"Polygon", "MultiPolygon"}


def read_vector(path: Path, what: str, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a Shapefile or GeoPackage layer and check that it is usable.

    Args:
        path: The vector file.
        what: What the file is (for messages: "ground truth", "AOI").
        crs: If given, the layer is reprojected to this CRS.

    Returns:
        The layer, without empty geometries.

    Raises:
        InputError: If the file is missing or unreadable, has no CRS, no features, or
            geometries that are not polygons.
    """
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        frame = gpd.read_file(path)
    except (DataSourceError, DataLayerError, OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: cannot read {what} vector file ({message})") from None
    if frame.crs is None:
        raise InputError(f"{path}: {what} has no CRS (add a .prj file or set the layer CRS)")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if frame.empty:
        raise InputError(f"{path}: {what} has no features with a geometry")
    kinds = set(frame.geom_type)
    if not kinds <= POLYGON_TYPES:
        other = sorted(kinds - POLYGON_TYPES)
        raise InputError(f"{path}: {what} has non-polygon geometries ({', '.join(other)}); only polygons are supported")
    if crs is not None:
        frame = frame.to_crs(crs)
    return frame


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
