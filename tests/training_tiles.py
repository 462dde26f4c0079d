"""Small training-tile areas for the tests of the training input (tile cache, augmentation, generators).

An area holds 8x8 px GeoTIFF tiles in EPSG:32633 (13 bands + ground truth) of four dates and
a config copy of ``configs/demo.toml`` pointing at them. Band 1 of every tile holds a code of
its date and band 2 a code of its grid position, so a batch tells which (date, tile) each
sample came from; both are constant over the tile and survive flips and rotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from study_area import base_settings, write_config_file

from helpers.core.config import Config, load_config

POOL = ("20160403", "20160522", "20160828", "20160929")
SIZE = 8
BANDS = 13
N_CLASSES = 8
TRAIN = [f"tile_{r:03d}_{c:03d}" for r in range(3) for c in range(4)]
"""Train tiles of the first date; each later date lacks one of them."""
MISSING = {POOL[1]: "tile_000_001", POOL[2]: "tile_000_002", POOL[3]: "tile_000_003"}
VALID = [f"tile_004_{c:03d}" for c in range(3)]
TEST = {POOL[0]: ["tile_006_000"], POOL[1]: ["tile_006_001"], POOL[3]: []}
"""Test split: two dates without a common tile, one empty folder, one date without a folder."""


def date_code(date: str) -> int:
    """Band-1 value of every tile of a date."""
    return 1000 * (POOL.index(date) + 1)


def tile_code(ending: str) -> int:
    """Band-2 value of a tile: 100 * row + col."""
    row, col = (int(v) for v in ending.split("_")[1:])
    return 100 * row + col


def tile_layers(date: str, ending: str) -> np.ndarray:
    """The 14 layers (13 bands + gt) of one tile; the gt is the same on every date."""
    position = np.random.default_rng(tile_code(ending))
    gt = np.kron(position.integers(1, N_CLASSES + 1, (2, 2)), np.ones((4, 4), dtype=np.int64))
    varying = np.random.default_rng([tile_code(ending), POOL.index(date)]).integers(0, 5000, (BANDS - 2, SIZE, SIZE))
    layers = np.empty((BANDS + 1, SIZE, SIZE), dtype=np.uint16)
    layers[0] = date_code(date)
    layers[1] = tile_code(ending)
    layers[2:BANDS] = varying
    layers[BANDS] = gt
    return layers


def write_tile(path: Path, layers: np.ndarray, ending: str) -> None:
    row, col = (int(v) for v in ending.split("_")[1:])
    transform = Affine(10.0, 0.0, 400000.0 + 10 * (SIZE + 1) * col, 0.0, -10.0, 5800000.0 - 10 * (SIZE + 1) * row)
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": layers.shape[0], "dtype": "uint16",
               "crs": "EPSG:32633", "transform": transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(layers)


@dataclass
class Area:
    """A generated training-tile area."""

    config: Config
    config_path: Path
    settings: dict[str, Any]

    def with_settings(self, **sections: Any) -> Config:
        """Write a changed config beside the original and load it."""
        settings = {**self.settings, **sections}
        return load_config(write_config_file(self.config_path.with_name("changed.toml"), settings))

    def endings(self, date: str, split: str = "train") -> list[str]:
        if split == "train":
            return [e for e in TRAIN if e != MISSING.get(date)]
        return VALID if split == "valid" else TEST.get(date, [])


def build_area(tmp_path: Path) -> Area:
    """Tiles of four dates (train, valid, test splits) and a config with identity normalisation."""
    settings = base_settings(tmp_path / "data", training=POOL, new=())
    settings["normalisation"] = {"mean": [0.0] * BANDS, "std": [1.0] * BANDS}
    config_path = write_config_file(tmp_path / "config.toml", settings)
    config = load_config(config_path)
    assert config.tile_size == SIZE
    result = Area(config, config_path, settings)
    for date in POOL:
        for split in ("train", "valid", "test"):
            if split == "test" and date not in TEST:
                continue
            folder = config.tiles_dir(date, None, split)
            folder.mkdir(parents=True)
            for ending in result.endings(date, split):
                write_tile(folder / f"{date}_L1C_{ending}.tif", tile_layers(date, ending), ending)
        config.tiles_summary_path(date, None).write_text("{}", encoding="utf-8")
    return result
