"""Tests of the Keras training generators (helpers.train.generators): batches of tiles and sequences.

The tiles come from :mod:`training_tiles` (the ``area`` fixture): band 1 of every tile holds a
code of its date and band 2 a code of its grid position, so a batch tells which (date, tile)
each sample came from.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from training_tiles import BANDS, MISSING, N_CLASSES, POOL, SIZE, TRAIN, Area, date_code, tile_layers

from helpers.core.errors import InputError
from helpers.train.generators import (
    FixedSequenceGenerator,
    RandomSequenceGenerator,
    SingleTileGenerator,
)
from helpers.train.normalisation import Normaliser


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


def test_empty_split_is_an_input_error(area: Area) -> None:
    folder = area.config.tiles_dir(POOL[3], None, "test")
    with pytest.raises(InputError, match=re.escape(str(folder))):
        SingleTileGenerator(area.config, [POOL[0], POOL[3]], "test")


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
