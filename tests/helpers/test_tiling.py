"""Training tiles: grid shape, keep rule, names and georeferenced tile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from helpers.grid import SceneGrid
from helpers.io import write_raster
from helpers.tiling import parse_ending, select_tiles, tile_ending, tile_grid_shape, tile_view, write_tiles

SIZE, STRIDE = 8, 9
UNCLASSIFIABLE = 8


@pytest.mark.parametrize(("height", "width", "size", "stride", "shape"), [
    (2828, 3500, 32, 33, (85, 106)),
    (8, 8, 8, 9, (1, 1)),
    (16, 17, 8, 9, (1, 2)),
    (7, 40, 8, 9, (0, 4)),
    (84, 84, 8, 9, (9, 9)),
    (84, 84, 8, 4, (20, 20)),
])
def test_tile_grid_shape(height: int, width: int, size: int, stride: int, shape: tuple[int, int]) -> None:
    assert tile_grid_shape(height, width, size, stride) == shape


def test_tile_view_matches_explicit_windows() -> None:
    image = np.arange(30 * 28).reshape(30, 28)
    view = tile_view(image, SIZE, STRIDE)
    assert view.shape == (3, 3, SIZE, SIZE)
    for r in range(3):
        for c in range(3):
            np.testing.assert_array_equal(view[r, c], image[r * STRIDE:r * STRIDE + SIZE, c * STRIDE:c * STRIDE + SIZE])


def test_tile_endings() -> None:
    assert tile_ending(3, 12) == "tile_003_012"
    assert parse_ending("20160403_L1C_tile_003_012") == (3, 12)
    assert parse_ending(tile_ending(84, 105)) == (84, 105)
    with pytest.raises(ValueError, match="not a tile ending"):
        parse_ending("20160403_L1C_003_012")


def full_image() -> tuple[np.ndarray, np.ndarray]:
    """A 26 x 26 image (3 x 3 tiles of 8 on a 9 stride): GT all class 2, band 1 all non-zero."""
    return np.full((26, 26), 2, dtype=np.uint8), np.full((26, 26), 500, dtype=np.uint16)


def test_complete_image_keeps_every_tile() -> None:
    gt, band1 = full_image()
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.kept.shape == (3, 3) and selection.kept.all()
    assert selection.n_candidates == selection.n_kept == 9
    assert selection.endings()[:4] == ["tile_000_000", "tile_000_001", "tile_000_002", "tile_001_000"]


def test_one_zero_gt_pixel_drops_its_tile() -> None:
    gt, band1 = full_image()
    gt[9 + 7, 18 + 3] = 0  # last row of tile (1, 2)
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert not selection.kept[1, 2] and selection.n_kept == 8
    assert "tile_001_002" not in selection.endings()


def test_one_zero_band1_pixel_drops_its_tile() -> None:
    gt, band1 = full_image()
    band1[18, 0] = 0  # first pixel of tile (2, 0)
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert np.argwhere(~selection.kept).tolist() == [[2, 0]]


def test_zeros_in_the_gaps_and_outside_the_grid_do_not_matter() -> None:
    gt, band1 = full_image()
    gt[8, :] = 0  # the separation row between tile rows 0 and 1
    band1[:, 17] = 0  # the separation column between tile columns 1 and 2
    gt, band1 = np.pad(gt, (0, 2)), np.pad(band1, (0, 2))  # two zero rows/cols beyond the last full tile
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.kept.shape == (3, 3) and selection.kept.all()


def test_unclassifiable_pixels_keep_the_tile_and_are_counted() -> None:
    gt, band1 = full_image()
    gt[0, 9] = UNCLASSIFIABLE  # tile (0, 1)
    gt[20:22, 20:22] = UNCLASSIFIABLE  # tile (2, 2)
    gt[19, 0] = 0  # tile (2, 0) dropped
    gt[19, 1] = UNCLASSIFIABLE  # ... although unclassifiable too
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.kept[0, 1] and selection.kept[2, 2] and not selection.kept[2, 0]
    assert np.argwhere(selection.unclassifiable).tolist() == [[0, 1], [2, 0], [2, 2]]
    assert selection.n_kept_with_unclassifiable == 2


def test_written_tiles_are_georeferenced_windows_of_the_stack(tmp_path: Path) -> None:
    transform = Affine(10.0, 0.0, 400020.0, 0.0, -10.0, 5639940.0)
    grid = SceneGrid(rasterio.crs.CRS.from_epsg(32633), transform, 30, 27)
    rng = np.random.default_rng(7)
    stack = rng.integers(1, 60000, size=(4, 27, 30), dtype=np.uint16)
    stack_path = tmp_path / "merged.tif"
    write_raster(stack_path, stack, grid.profile())
    folders = {"train": tmp_path / "train", "test": tmp_path / "test"}
    for folder in folders.values():
        folder.mkdir()
    positions = {"train": [(0, 0), (2, 1), (1, 2)], "test": [(2, 2)]}
    counts = write_tiles(stack_path, grid, positions, folders, "20160403_L1C", SIZE, STRIDE,
                         descriptions=["B01", "B02", "B03", "gt"])
    assert counts == {"train": 3, "test": 1}
    assert sorted(p.name for p in folders["train"].iterdir()) == [
        "20160403_L1C_tile_000_000.tif", "20160403_L1C_tile_001_002.tif", "20160403_L1C_tile_002_001.tif"]
    for split, items in positions.items():
        for row, col in items:
            with rasterio.open(folders[split] / f"20160403_L1C_{tile_ending(row, col)}.tif") as src:
                assert src.crs.to_epsg() == 32633
                assert src.transform == Affine(10.0, 0.0, 400020.0 + 90 * col, 0.0, -10.0, 5639940.0 - 90 * row)
                assert (src.count, src.width, src.height, src.dtypes[0]) == (4, SIZE, SIZE, "uint16")
                assert src.descriptions == ("B01", "B02", "B03", "gt")
                window = stack[:, row * STRIDE:row * STRIDE + SIZE, col * STRIDE:col * STRIDE + SIZE]
                np.testing.assert_array_equal(src.read(), window)
