"""Tests of the band normalisation (helpers.train.normalisation): config constants or computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from training_tiles import BANDS, POOL, SIZE, Area

from helpers.train.generators import SingleTileGenerator
from helpers.train.normalisation import normaliser_for
from helpers.train.tile_cache import load_tiles


def test_normaliser_uses_the_config_constants(area: Area) -> None:
    mean = [1624.433, 1331.316, 1133.162, 1004.656, 1274.255, 2089.642, 2409.098,
            2368.672, 1001.349, 15.249, 1292.258, 744.962, 2595.425]
    std = [960.795, 1049.623, 995.824, 1202.114, 1217.579, 1298.338, 1380.193,
           1361.936, 544.678, 8.625, 958.988, 667.875, 1438.869]
    config = area.with_settings(normalisation={"mean": mean, "std": std})
    normaliser = normaliser_for(config, None, [])
    x = np.random.default_rng(3).integers(0, 10000, (4, SIZE, SIZE, BANDS), dtype=np.uint16)
    out = normaliser(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, (x - np.array(mean)) / np.array(std), rtol=1e-5, atol=1e-5)


def test_normaliser_computed_from_training_tiles_and_saved(area: Area, tmp_path: Path) -> None:
    config = area.with_settings(normalisation={"mean": "compute", "std": "compute"})
    sets = [load_tiles(config, d, "train") for d in POOL[:2]]
    pixels = np.concatenate([s.x.reshape(-1, BANDS) for s in sets]).astype(np.float64)
    saved = tmp_path / "out" / "normalisation.json"
    normaliser = normaliser_for(config, None, sets, save_to=saved)
    written = json.loads(saved.read_text(encoding="utf-8"))
    np.testing.assert_allclose(written["mean"], pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(written["std"], pixels.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(normaliser.mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(normaliser.std, pixels.std(axis=0), rtol=1e-6)
    generator = SingleTileGenerator(config, POOL[:2], "valid", batch_size=2, steps=1)  # stats from the train split
    np.testing.assert_array_equal(generator.normaliser.mean, normaliser.mean)
