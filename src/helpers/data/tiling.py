"""Training tiles: which grid positions are kept, and writing them as GeoTIFFs."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window
from tqdm import tqdm

from helpers.core.errors import ConfigError, InputError
from helpers.core.grid import SceneGrid
from helpers.core.io import open_raster

_ENDING_RE = re.compile(r"tile_(\d+)_(\d+)$")


def tile_ending(row: int, col: int) -> str:
    """Name ending of a tile at grid position (row, col): ``tile_RRR_CCC``."""
    return f"tile_{row:03d}_{col:03d}"


def parse_ending(ending: str) -> tuple[int, int]:
    """Grid position (row, col) of a ``tile_RRR_CCC`` ending."""
    match = _ENDING_RE.search(ending)
    if not match:
        raise ValueError(f"not a tile ending: {ending!r}")
    return int(match.group(1)), int(match.group(2))


def tile_grid_shape(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """Number of tile rows and columns that fit on an image (2828x3500, 32/33 -> 85x106)."""
    rows = (height - size) // stride + 1 if height >= size else 0
    cols = (width - size) // stride + 1 if width >= size else 0
    return rows, cols


def tile_view(image: np.ndarray, size: int, stride: int) -> np.ndarray:
    """View of a 2-D image as (tile_rows, tile_cols, size, size) without copying.

    An image smaller than one tile gives an empty view (no tile rows or columns); the tile steps
    refuse such a scene first, with a message naming the setting (:func:`check_tile_fits`).
    """
    rows, cols = tile_grid_shape(*image.shape, size, stride)
    if rows == 0 or cols == 0:
        return np.empty((rows, cols, size, size), dtype=image.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows[: rows * stride: stride, : cols * stride: stride][:rows, :cols]


def check_tile_fits(height: int, width: int, size: int, key: str, source: object, scene: object) -> None:
    """Refuse a scene smaller than one tile, naming the setting and the scene size.

    Args:
        height: Scene rows.
        width: Scene columns.
        size: Tile side in pixels.
        key: The config key that sets ``size`` (``tiling.tile_size``).
        source: The config file.
        scene: What the scene's size comes from (the AOI file), named in the message.

    Raises:
        ConfigError: If a tile does not fit.
    """
    if height < size or width < size:
        raise ConfigError(source, key, f"a {size}x{size} px tile does not fit the scene of {width}x{height} px "
                                       f"(the 10 m grid of the AOI {scene}); lower {key} or use a larger AOI")


@dataclass
class TileSelection:
    """Kept training tiles of one image.

    Attributes:
        kept: Boolean (tile_rows, tile_cols): labelled on at least ``min_labelled_fraction`` of
            its pixels and every band on the image on every pixel.
        unclassifiable: Boolean (tile_rows, tile_cols): the tile holds unclassifiable pixels.
        min_labelled_fraction: The labelled share a kept tile needs (1.0: the original's rule).
    """

    kept: np.ndarray
    unclassifiable: np.ndarray
    min_labelled_fraction: float = 1.0

    @property
    def n_candidates(self) -> int:
        """Tile positions on the grid."""
        return int(self.kept.size)

    @property
    def n_kept(self) -> int:
        """Kept tiles."""
        return int(self.kept.sum())

    @property
    def n_kept_with_unclassifiable(self) -> int:
        """Kept tiles that contain at least one unclassifiable pixel."""
        return int((self.kept & self.unclassifiable).sum())

    @property
    def sparse(self) -> bool:
        """Fewer than a quarter of the tile positions are kept (worth a warning)."""
        return self.n_kept < SPARSE_SHARE * self.n_candidates

    def endings(self) -> list[str]:
        """Endings of the kept tiles in row-major order."""
        return [tile_ending(int(r), int(c)) for r, c in zip(*np.nonzero(self.kept), strict=True)]


SPARSE_SHARE = 0.25
"""Below this share of kept tile positions the tiling steps warn about the labelled-fraction rule."""


def select_tiles(gt: np.ndarray, on_image: np.ndarray, size: int, stride: int, unclassifiable_id: int,
                 min_labelled_fraction: float = 1.0) -> TileSelection:
    """Keep a tile if enough of its pixels are labelled and all of them are on the image.

    With ``min_labelled_fraction`` 1.0 (the original's rule) every GT pixel must be non-zero;
    a lower value admits tiles of sparse ground truth, whose unlabelled pixels (0) get no loss
    in training. Tiles with unclassifiable pixels are kept (their pixels get loss weight 0).

    Args:
        gt: Class raster (0 = unlabelled).
        on_image: Non-zero where the image has data in every band (see :func:`bands_on_image`;
            band 1 alone gives the original's test).
        size: Tile side in pixels.
        stride: Distance between tile origins.
        unclassifiable_id: Id of the zero-weight class.
        min_labelled_fraction: Share of a tile's pixels that must be labelled, in (0, 1].

    Returns:
        The selection.
    """
    needed = math.ceil(round(min_labelled_fraction * size * size, 6))
    labelled = tile_view(gt != 0, size, stride).sum(axis=(2, 3), dtype=np.int64) >= needed
    on_image = tile_view(on_image != 0, size, stride).all(axis=(2, 3))
    unclassifiable = tile_view(gt == unclassifiable_id, size, stride).any(axis=(2, 3))
    return TileSelection(labelled & on_image, unclassifiable, min_labelled_fraction)


def sparse_warning(selection: TileSelection, config_source: object) -> str:
    """The line that explains a small tile set and names the setting that controls it."""
    share = 100 * selection.n_kept / selection.n_candidates if selection.n_candidates else 0.0
    return (f"warning: only {selection.n_kept:,} of {selection.n_candidates:,} tile positions ({share:.1f} %) are "
            f"labelled on at least {100 * selection.min_labelled_fraction:g} % of their pixels and on the image; "
            f"for sparse ground truth lower [tiling] min_labelled_fraction in {config_source}")


def bands_on_image(path: Path, bands: Sequence[int], block_rows: int = 256) -> np.ndarray:
    """True where every given band of a stack is non-zero (0 is the no-data value of every band).

    Read ``block_rows`` rows at a time, so memory is one boolean image plus one block of bands.
    A band that covers only part of the scene thus removes the tiles where it is missing.

    Args:
        path: The stack (a scene or a merged stack).
        bands: 1-based band indexes to test.
        block_rows: Rows per read.

    Returns:
        Boolean (rows, cols).
    """
    with open_raster(path) as src:
        mask = np.empty((src.height, src.width), dtype=bool)
        for row in range(0, src.height, block_rows):
            height = min(block_rows, src.height - row)
            try:
                block = src.read(list(bands), window=Window(0, row, src.width, height))
            except RasterioError as error:
                raise InputError(f"{path}: corrupt raster data ({str(error).splitlines()[0]})") from None
            np.all(block != 0, axis=0, out=mask[row:row + height])
    return mask


def write_tiles(stack_path: Path, grid: SceneGrid, positions: Mapping[str, Iterable[tuple[int, int]]],
                folders: Mapping[str, Path], prefix: str, size: int, stride: int,
                descriptions: list[str] | None = None, progress: bool = False) -> dict[str, int]:
    """Cut tiles out of a merged stack and write each as a georeferenced GeoTIFF.

    The stack is read one tile row at a time, so memory does not grow with the scene.

    Args:
        stack_path: Merged stack (bands + gt).
        grid: Its grid.
        positions: Subset name -> (row, col) tile positions to write.
        folders: Subset name -> destination folder (must exist).
        prefix: File-name prefix, ``{date}_{level}``.
        size: Tile size in pixels.
        stride: Tile stride in pixels.
        descriptions: Band descriptions copied to every tile.
        progress: Show a progress bar.

    Returns:
        Subset name -> number of tiles written.
    """
    by_row: dict[int, list[tuple[int, str]]] = {}
    for split, items in positions.items():
        for row, col in items:
            by_row.setdefault(row, []).append((col, split))
    counts = dict.fromkeys(positions, 0)
    with open_raster(stack_path) as src:
        profile = {"driver": "GTiff", "width": size, "height": size, "count": src.count, "dtype": src.dtypes[0],
                   "crs": grid.crs}
        bar = tqdm(sorted(by_row), desc=f"tiles {prefix}", disable=None if progress else True, leave=False)
        for row in bar:
            strip = src.read(window=Window(0, row * stride, grid.width, size))
            for col, split in sorted(by_row[row]):
                x0 = col * stride
                transform = grid.window_transform(Window(x0, row * stride, size, size))
                path = folders[split] / f"{prefix}_{tile_ending(row, col)}.tif"
                with rasterio.open(path, "w", transform=transform, **profile) as dst:
                    dst.write(strip[:, :, x0:x0 + size])
                    if descriptions:
                        dst.descriptions = tuple(descriptions)
                counts[split] += 1
    return counts
