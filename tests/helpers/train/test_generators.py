"""Tests of the training data generators (tile sets, normalisation, augmentation, batches).

Each test writes its own small training-tile folders (8x8 px GeoTIFF tiles in EPSG:32633,
13 bands + ground truth) and a config copy of ``configs/demo.toml`` pointing at them.
Band 1 of every tile holds a code of its date and band 2 a code of its grid position, so a
batch tells which (date, tile) each sample came from; both are constant over the tile and
survive flips and rotations.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import rasterio
from affine import Affine
from skimage.transform import rotate
from study_area import base_settings, dump_toml

from helpers.core.config import Config, load_config
from helpers.core.errors import InputError
from helpers.train.generators import (
    FixedSequenceGenerator,
    Normaliser,
    RandomSequenceGenerator,
    SingleTileGenerator,
    augment,
    load_tiles,
    normaliser_for,
    one_hot,
    tile_cache_paths,
    transform_batch,
)

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
        path = self.config_path.with_name("changed.toml")
        path.write_text(dump_toml(settings), encoding="utf-8")
        return load_config(path)

    def endings(self, date: str, split: str = "train") -> list[str]:
        if split == "train":
            return [e for e in TRAIN if e != MISSING.get(date)]
        return VALID if split == "valid" else TEST.get(date, [])


@pytest.fixture
def area(tmp_path: Path) -> Area:
    """Tiles of four dates (train, valid, test splits) and a config with identity normalisation."""
    settings = base_settings(tmp_path / "data", training=POOL, new=())
    settings["normalisation"] = {"mean": [0.0] * BANDS, "std": [1.0] * BANDS}
    config_path = tmp_path / "config.toml"
    config_path.write_text(dump_toml(settings), encoding="utf-8")
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


# ---------------------------------------------------------------------- loading and caching
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
    assert all(path.is_file() for path in tile_cache_paths(area.config, POOL[1], "train"))


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
    later = max(p.stat().st_mtime_ns for p in tile_cache_paths(area.config, date, "valid")) + 10**9
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
    with pytest.raises(InputError, match=re.escape(str(folder))):
        SingleTileGenerator(area.config, [POOL[0], POOL[3]], "test")


# ---------------------------------------------------------------------- one-hot and normalisation
def test_one_hot_maps_class_c_to_channel_c_minus_1_and_0_to_zeros() -> None:
    labels = np.array([[[0, 1], [8, 3]]], dtype=np.uint8)
    encoded = one_hot(labels, N_CLASSES)
    assert encoded.dtype == np.float32 and encoded.shape == (1, 2, 2, N_CLASSES)
    np.testing.assert_array_equal(encoded[0, 0, 0], np.zeros(N_CLASSES))
    for (r, c), label in np.ndenumerate(labels[0]):
        if label:
            np.testing.assert_array_equal(encoded[0, r, c], np.eye(N_CLASSES)[label - 1])
    with pytest.raises(ValueError, match="exceeds"):
        one_hot(np.array([9], dtype=np.uint8), N_CLASSES)


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


# ---------------------------------------------------------------------- augmentation
def test_rotation_and_flips_match_skimage() -> None:
    rng = np.random.default_rng(7)
    batch, size, channels = 6, 32, 4
    x = rng.normal(size=(batch, size, size, channels)).astype(np.float32)
    y = rng.integers(1, N_CLASSES + 1, (batch, size, size)).astype(np.uint8)
    flip_ud = np.array([False, True, False, True, False, True])
    flip_lr = np.array([False, False, True, True, True, False])
    angles = np.array([0.0, 12.5, -33.3, 44.0, -7.9, 90.0])
    out, labels = transform_batch(x, y, flip_ud, flip_lr, angles)
    assert out.dtype == np.float32 and out.shape == x.shape and labels.shape == y.shape
    for b in range(batch):
        image, label = x[b].astype(np.float64), y[b].astype(np.float64)
        if flip_ud[b]:
            image, label = image[::-1], label[::-1]
        if flip_lr[b]:
            image, label = image[:, ::-1], label[:, ::-1]
        for c in range(channels):
            expected = rotate(image[..., c], angles[b], order=1, mode="reflect", preserve_range=True)
            np.testing.assert_allclose(out[b, ..., c], expected, atol=1e-4)
        expected_labels = rotate(label, angles[b], order=0, mode="reflect", preserve_range=True)
        np.testing.assert_array_equal(labels[b], expected_labels)


def test_rotated_labels_keep_valid_class_ids_unlike_bilinear() -> None:
    stripes = np.where(np.arange(32)[None, :] % 8 < 4, 2, 5).repeat(32, axis=0).astype(np.uint8)
    y = np.stack([stripes] * 8)
    x = np.zeros((8, 32, 32, 1), dtype=np.float32)
    _, labels = augment(x, y, np.random.default_rng(0))
    assert set(np.unique(labels)) <= {2, 5}
    # the original's bilinear label rotation, cast to int, invents class ids 3 and 4 at the borders
    bilinear = rotate(stripes.astype(np.float64), 30, order=1, mode="reflect", preserve_range=True).astype(int)
    assert not set(np.unique(bilinear)) <= {2, 5}


def test_augmentation_is_identical_for_every_date(area: Area) -> None:
    dates = [POOL[0]] * 4
    generator = FixedSequenceGenerator(area.config, dates, "train", batch_size=8, steps=3, augment=True, seed=5)
    plain = FixedSequenceGenerator(area.config, dates, "train", batch_size=8, steps=3, augment=False, seed=5)
    changed = False
    for index in range(3):
        x, _ = generator[index]
        for t in range(1, len(dates)):
            np.testing.assert_array_equal(x[:, t], x[:, 0])
        changed |= not np.array_equal(x, plain[index][0])
    assert changed

    rng = np.random.default_rng(1)
    frame = rng.normal(size=(5, 1, 16, 16, 3)).astype(np.float32)
    sequence = np.repeat(frame, 6, axis=1)
    out, _ = augment(sequence, rng.integers(1, 9, (5, 16, 16)).astype(np.uint8), rng)
    assert all(np.array_equal(out[:, t], out[:, 0]) for t in range(6))


# ---------------------------------------------------------------------- generators
def check_one_hot_batch(y: np.ndarray, shape: tuple[int, ...]) -> None:
    assert y.dtype == np.float32 and y.shape == (*shape, N_CLASSES)
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)  # no label 0 in these tiles


def test_generator_shapes_and_dtypes(area: Area) -> None:
    single = SingleTileGenerator(area.config, POOL[:2], "train", batch_size=5, steps=3, augment=True, seed=1)
    assert isinstance(single, keras.utils.PyDataset) and len(single) == 3
    x, y = single[0]
    assert x.dtype == np.float32 and x.shape == (5, SIZE, SIZE, BANDS)
    check_one_hot_batch(y, (5, SIZE, SIZE))

    fixed = FixedSequenceGenerator(area.config, POOL[:3], "train", batch_size=4, steps=2, augment=True, seed=1)
    x, y = fixed[1]
    assert x.dtype == np.float32 and x.shape == (4, 3, SIZE, SIZE, BANDS)
    check_one_hot_batch(y, (4, SIZE, SIZE))

    random = RandomSequenceGenerator(area.config, POOL, timesteps=3, split="train", batch_size=4, steps=2,
                                     augment=True, seed=1)
    x, y = random[0]
    assert x.dtype == np.float32 and x.shape == (4, 3, SIZE, SIZE, BANDS)
    check_one_hot_batch(y, (4, SIZE, SIZE))


def test_single_tiles_are_drawn_from_all_dates(area: Area) -> None:
    generator = SingleTileGenerator(area.config, POOL[:2], "train", batch_size=6, steps=10, seed=2)
    seen_dates = set()
    for index in range(10):
        x, y = generator[index]
        for sample, labels, (date, ending) in zip(x, y, generator.last_pairs, strict=True):
            layers = tile_layers(date, ending)
            assert ending in area.endings(date)
            np.testing.assert_array_equal(sample, np.moveaxis(layers[:BANDS], 0, -1))  # identity normalisation
            np.testing.assert_array_equal(labels.argmax(-1) + 1, layers[BANDS])
        seen_dates |= {d for d, _ in generator.last_pairs}
    assert seen_dates == set(POOL[:2])


def check_sequences(x: np.ndarray, y: np.ndarray, dates: tuple[str, ...], area: Area) -> None:
    """Every sample is one tile on each date, present on all of them, with that tile's labels."""
    for sample, labels in zip(x, y, strict=True):
        code = round(float(sample[0, 0, 0, 1]))
        ending = f"tile_{code // 100:03d}_{code % 100:03d}"
        for t, date in enumerate(dates):
            assert round(sample[t, 0, 0, 0]) == date_code(date)
            np.testing.assert_array_equal(np.rint(sample[t, ..., 1]), code)
            assert ending in area.endings(date)
        np.testing.assert_array_equal(labels.argmax(-1) + 1, tile_layers(dates[0], ending)[BANDS])


def test_fixed_sequences_hold_tiles_present_on_every_date(area: Area) -> None:
    generator = FixedSequenceGenerator(area.config, POOL, "train", batch_size=6, steps=4, seed=3)
    shared = set(TRAIN) - set(MISSING.values())
    assert set(generator.endings) == shared
    for index in range(4):
        x, y = generator[index]
        check_sequences(x, y, POOL, area)


def test_random_sequences_are_chronological_from_the_pool_with_shared_tiles(area: Area) -> None:
    generator = RandomSequenceGenerator(area.config, POOL[::-1], timesteps=3, split="train", batch_size=8,
                                        steps=20, seed=4)
    drawn = set()
    for index in range(20):
        x, y = generator[index]
        dates = generator.last_dates
        assert len(dates) == 3 and list(dates) == sorted(set(dates)) and set(dates) <= set(POOL)
        check_sequences(x, y, dates, area)
        drawn.add(dates)
    assert len(drawn) > 1


def test_seeds_make_batches_reproducible(area: Area) -> None:
    def make(seed: int) -> RandomSequenceGenerator:
        return RandomSequenceGenerator(area.config, POOL, timesteps=2, split="train", batch_size=4, steps=5,
                                       augment=True, seed=seed)

    first, second, other = make(11), make(11), make(12)
    for index in (0, 3):
        np.testing.assert_array_equal(first[index][0], second[index][0])
        np.testing.assert_array_equal(first[index][1], second[index][1])
    assert not np.array_equal(first[0][0], first[1][0])
    assert not np.array_equal(first[0][0], other[0][0])
    before = first[0][0]
    first.on_epoch_end()
    assert not np.array_equal(first[0][0], before)
    single_a = SingleTileGenerator(area.config, POOL, "valid", batch_size=3, steps=2, augment=True, seed=9)
    single_b = SingleTileGenerator(area.config, POOL, "valid", batch_size=3, steps=2, augment=True, seed=9)
    np.testing.assert_array_equal(single_a[1][0], single_b[1][0])


def test_no_shared_tiles_is_an_input_error(area: Area) -> None:
    with pytest.raises(InputError, match="no tile of the test split"):
        FixedSequenceGenerator(area.config, POOL[:2], "test")
    with pytest.raises(InputError, match="no tile of the test split"):
        RandomSequenceGenerator(area.config, POOL[:2], timesteps=2, split="test")
    with pytest.raises(InputError, match="cannot draw 5 dates"):
        RandomSequenceGenerator(area.config, POOL, timesteps=5, split="train")


def test_keras_trains_on_a_generator(area: Area) -> None:
    generator = SingleTileGenerator(area.config, POOL[:2], "train", batch_size=4, steps=2, augment=True, seed=0,
                                    workers=2)  # batches built in two threads
    validation = SingleTileGenerator(area.config, POOL[:2], "valid", batch_size=4, steps=1, seed=0)
    model = keras.Sequential([keras.Input((SIZE, SIZE, BANDS)),
                              keras.layers.Conv2D(N_CLASSES, 1, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(generator, validation_data=validation, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert generator.epoch >= 1
    assert isinstance(Normaliser.from_values([0.0], [1.0])(np.array([[3]], dtype=np.uint16))[0, 0], np.float32)
