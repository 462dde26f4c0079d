"""The 10 m scene grid every processed raster of a study area shares."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from helpers.core.errors import InputError
from helpers.core.io import open_raster


@dataclass(frozen=True)
class SceneGrid:
    """A north-up raster grid.

    Attributes:
        crs: Coordinate reference system.
        transform: Affine transform of the upper-left pixel corner.
        width: Columns.
        height: Rows.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> float:
        """Pixel size in CRS units."""
        return self.transform.a

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        return self.window_bounds(Window(0, 0, self.width, self.height))

    def row_blocks(self, rows: int) -> Iterator[Window]:
        """Windows of ``rows`` full-width rows covering the grid top to bottom."""
        for row in range(0, self.height, rows):
            yield Window(0, row, self.width, min(rows, self.height - row))

    def window_transform(self, window: Window) -> Affine:
        """Transform of a window's upper-left corner."""
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of a window."""
        transform = self.window_transform(window)
        left, top = transform.c, transform.f
        return left, top + int(window.height) * transform.e, left + int(window.width) * transform.a, top

    def profile(self) -> dict:
        """The grid part of a rasterio profile."""
        return {"crs": self.crs, "transform": self.transform, "width": self.width, "height": self.height}

    def inside_mask(self, geometry: BaseGeometry, window: Window | None = None) -> np.ndarray:
        """Boolean mask of the pixels whose centre lies inside a geometry (gdalwarp -cutline rule)."""
        window = window or Window(0, 0, self.width, self.height)
        shape = (int(window.height), int(window.width))
        return geometry_mask([geometry], out_shape=shape, transform=self.window_transform(window), invert=True)


def grid_from_bounds(bounds: tuple[float, float, float, float], crs: str | CRS, resolution: float) -> SceneGrid:
    """The grid covering ``bounds``, its edges snapped outwards to multiples of ``resolution``.

    Snapping to multiples of the pixel size keeps the grid aligned with the Sentinel-2 tile
    grids (their origins are multiples of 60 m), so no sub-pixel shift is introduced.
    """
    left, bottom, right, top = bounds
    left = math.floor(round(left / resolution, 6)) * resolution
    bottom = math.floor(round(bottom / resolution, 6)) * resolution
    right = math.ceil(round(right / resolution, 6)) * resolution
    top = math.ceil(round(top / resolution, 6)) * resolution
    width = round((right - left) / resolution)
    height = round((top - bottom) / resolution)
    return SceneGrid(CRS.from_user_input(crs), Affine(resolution, 0, left, 0, -resolution, top), width, height)


def grid_of_raster(path: Path) -> SceneGrid:
    """The grid of an existing raster file."""
    with open_raster(path) as src:
        if src.crs is None:
            raise InputError(f"{path}: raster has no CRS")
        return SceneGrid(src.crs, src.transform, src.width, src.height)


def check_same_grid(path: Path, grid: SceneGrid, reference: Path) -> None:
    """Raise :class:`InputError` if ``path`` is not on ``grid`` (the grid of ``reference``)."""
    other = grid_of_raster(path)
    if (other.crs != grid.crs or other.width != grid.width or other.height != grid.height
            or not other.transform.almost_equals(grid.transform, precision=1e-6)):
        raise InputError(
            f"{path}: grid {other.width}x{other.height} {other.crs} {tuple(other.transform)[:6]} differs from "
            f"{reference} ({grid.width}x{grid.height} {grid.crs}); re-run the earlier steps with --force"
        )
