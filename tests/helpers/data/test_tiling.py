"""Training tiles: grid shape, keep rule, names and georeferenced tile files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from helpers.core.errors import ConfigError, InputError
from helpers.core.grid import SceneGrid
from helpers.core.io import write_raster
from helpers.data.tiling import (
    bands_on_image,
    check_tile_fits,
    parse_ending,
    select_tiles,
    sparse_warning,
    tile_ending,
    tile_grid_shape,
    tile_view,
    write_tiles,
)

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


# ---------------------------------------------------------------------- sparse ground truth
@pytest.mark.parametrize(("labelled", "fraction", "kept"), [
    (64, 1.0, True), (63, 1.0, False), (32, 0.5, True), (31, 0.5, False), (20, 0.3, True), (19, 0.3, False),
    (1, 0.01, True), (0, 0.01, False),
])
def test_min_labelled_fraction(labelled: int, fraction: float, kept: bool) -> None:
    """A tile needs at least ceil(fraction x 64) labelled pixels (0.3 x 64 = 19.2 -> 20)."""
    gt, band1 = full_image()
    unlabelled = np.arange(SIZE * SIZE).reshape(SIZE, SIZE) >= labelled
    gt[9:17, 9:17][unlabelled] = 0  # tile (1, 1)
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE, fraction)
    assert bool(selection.kept[1, 1]) is kept
    assert selection.n_kept == 8 + kept and selection.min_labelled_fraction == fraction


def test_sparse_tiles_still_need_every_pixel_on_the_image() -> None:
    gt, band1 = full_image()
    gt[:, :] = 0
    gt[0:4, :] = 3  # half of every tile of row 0 is labelled
    band1[7, 20] = 0  # ... and one pixel of tile (0, 2) is off the image
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE, 0.5)
    assert np.argwhere(selection.kept).tolist() == [[0, 0], [0, 1]]


def test_sparse_warning_names_the_setting() -> None:
    gt, band1 = full_image()
    gt[:, 9:] = 0
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.n_kept == 3 and not selection.sparse  # 3 of 9 = 33 %
    gt[9:, :] = 0
    selection = select_tiles(gt, band1, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.n_kept == 1 and selection.sparse
    assert sparse_warning(selection, "configs/my.toml") == (
        "warning: only 1 of 9 tile positions (11.1 %) are labelled on at least 100 % of their pixels and on the "
        "image; for sparse ground truth lower [tiling] min_labelled_fraction in configs/my.toml")
    big = select_tiles(np.ones((33 * 40, 33 * 40), np.uint8), np.ones((33 * 40, 33 * 40), np.uint8), 32, 33, 8, 0.5)
    big.kept[:] = False
    big.kept[0, :11] = True
    assert "only 11 of 1,600 tile positions (0.7 %) are labelled on at least 50 % of" in sparse_warning(big, "c")


def write_stack(path: Path, stack: np.ndarray) -> Path:
    grid = SceneGrid(rasterio.crs.CRS.from_epsg(32633), Affine(10.0, 0.0, 400020.0, 0.0, -10.0, 5639940.0),
                     stack.shape[2], stack.shape[1])
    write_raster(path, stack, grid.profile())
    return path


@pytest.mark.parametrize("block_rows", [1, 5, 256])
def test_bands_on_image_needs_every_listed_band(tmp_path: Path, block_rows: int) -> None:
    """A band covering only part of the scene takes the rest off the image; unlisted bands do not count."""
    stack = np.full((4, 26, 30), 700, dtype=np.uint16)
    stack[2, :, :15] = 0  # band 3 covers the right half only
    stack[1, 3, 4] = 0
    stack[3] = 0  # e.g. L2A's cloud probability: 0 is a valid value there
    path = write_stack(tmp_path / "stack.tif", stack)
    mask = bands_on_image(path, [1, 2, 3], block_rows)
    expected = np.ones((26, 30), dtype=bool)
    expected[:, :15] = False
    expected[3, 4] = False
    np.testing.assert_array_equal(mask, expected)
    selection = select_tiles(np.full((26, 30), 2, np.uint8), mask, SIZE, STRIDE, UNCLASSIFIABLE)
    assert np.argwhere(selection.kept).tolist() == [[0, 2], [1, 2], [2, 2]]


def test_bands_on_image_of_a_missing_stack(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'none.tif'}: file not found")):
        bands_on_image(tmp_path / "none.tif", [1])


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


def test_an_image_smaller_than_a_tile_has_no_tiles() -> None:
    """No ValueError from numpy: an empty view, and an empty selection."""
    image = np.ones((5, 40), dtype=np.uint8)
    assert tile_view(image, SIZE, STRIDE).shape == (0, 4, SIZE, SIZE)
    assert tile_view(np.ones((5, 5), dtype=np.uint8), 640, 641).shape == (0, 0, 640, 640)
    selection = select_tiles(image, image, SIZE, STRIDE, UNCLASSIFIABLE)
    assert selection.n_candidates == 0 and selection.endings() == []


def test_check_tile_fits_names_the_setting_and_the_scene() -> None:
    check_tile_fits(84, 84, 84, "tiling.tile_size", "area.toml", "aoi.shp")
    with pytest.raises(ConfigError, match=re.escape(
            "area.toml: config key 'tiling.tile_size': a 640x640 px tile does not fit the scene of 84x83 px (the 10 m "
            "grid of the AOI aoi.shp); lower tiling.tile_size or use a larger AOI")):
        check_tile_fits(83, 84, 640, "tiling.tile_size", "area.toml", "aoi.shp")
