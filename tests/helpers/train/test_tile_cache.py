"""Tests of the tile cache (helpers.train.tile_cache): one read of the GeoTIFFs, then memory maps."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import rasterio
from training_tiles import BANDS, POOL, SIZE, VALID, Area, tile_layers, write_tile

from helpers.core.errors import InputError
from helpers.train.tile_cache import load_tiles


def test_load_tiles_reads_every_tile(area: Area) -> None:
    tiles = load_tiles(area.config, POOL[1], "train")
    expected = area.endings(POOL[1])
    assert tiles.endings == sorted(expected)
    assert tiles.x.dtype == np.uint16 and tiles.x.shape == (len(expected), SIZE, SIZE, BANDS)
    assert tiles.y.dtype == np.uint8 and tiles.y.shape == (len(expected), SIZE, SIZE)
    for i, ending in enumerate(tiles.endings):
        layers = tile_layers(POOL[1], ending)
        np.testing.assert_array_equal(tiles.x[i], np.moveaxis(layers[:BANDS], 0, -1))
        np.testing.assert_array_equal(tiles.y[i], layers[BANDS])
    assert all(path.is_file() for path in area.config.tile_cache_paths(POOL[1], "train"))


def test_second_load_memory_maps_the_cache(area: Area, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_tiles(area.config, POOL[0], "valid")

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tile GeoTIFF was opened again")

    monkeypatch.setattr(rasterio, "open", no_reading)
    second = load_tiles(area.config, POOL[0], "valid")
    assert isinstance(second.x, np.memmap) and isinstance(second.y, np.memmap)
    np.testing.assert_array_equal(second.x, first.x)
    np.testing.assert_array_equal(second.y, first.y)
    assert second.endings == first.endings


def test_cache_is_rebuilt_after_retiling(area: Area) -> None:
    date = POOL[0]
    load_tiles(area.config, date, "valid")
    ending = VALID[0]
    changed = tile_layers(date, ending)
    changed[5] = 4321
    write_tile(area.config.tiles_dir(date, None, "valid") / f"{date}_L1C_{ending}.tif", changed, ending)
    summary = area.config.tiles_summary_path(date, None)
    later = max(p.stat().st_mtime_ns for p in area.config.tile_cache_paths(date, "valid")) + 10**9
    os.utime(summary, ns=(later, later))
    tiles = load_tiles(area.config, date, "valid")
    assert np.all(tiles.x[tiles.endings.index(ending), :, :, 5] == 4321)


def test_missing_tile_folder_is_an_input_error(area: Area) -> None:
    folder = area.config.tiles_dir(POOL[2], None, "test")
    with pytest.raises(InputError, match=re.escape(str(folder))) as error:
        load_tiles(area.config, POOL[2], "test")
    assert "05_split_into_tiles.py" in str(error.value) and "\n" not in str(error.value)


def test_empty_split_is_an_input_error(area: Area) -> None:
    folder = area.config.tiles_dir(POOL[3], None, "test")
    with pytest.raises(InputError, match=re.escape(str(folder))):
        load_tiles(area.config, POOL[3], "test")
