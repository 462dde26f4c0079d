"""A forest's training pixels, class weights and flags, on small generated tiles of four dates."""

from __future__ import annotations

import numpy as np
import pytest
from training_tiles import MISSING, POOL, TRAIN, Area, date_code, tile_code, tile_layers

from helpers.core.errors import InputError
from helpers.train.class_weights import class_weights
from helpers.train.forest import forest_class_weights, plan_forest_run, training_pixels

BANDS = 13
UNCLASSIFIABLE = 8


def expected_pixels(dates: tuple[str, ...], endings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled, classifiable pixel of the tiles, dates stacked per pixel (built from the generator)."""
    layers = np.stack([np.stack([tile_layers(date, e) for e in endings]) for date in dates], axis=1)  # n,T,14,H,W
    labels = layers[:, 0, BANDS].reshape(-1)
    features = np.moveaxis(layers[:, :, :BANDS], (1, 2), (3, 4)).reshape(-1, len(dates) * BANDS)  # pixel, T*B
    keep = (labels != 0) & (labels != UNCLASSIFIABLE)
    return features[keep], labels[keep]


def test_monotemporal_pixels_are_every_date_pooled(area: Area) -> None:
    sample = training_pixels(area.config, POOL, "L1C", sequence=False, max_pixels=10**6,
                             rng=np.random.default_rng(0))
    parts = [expected_pixels((date,), area.endings(date)) for date in POOL]
    np.testing.assert_array_equal(sample.x, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(sample.y, np.concatenate([p[1] for p in parts]))
    assert sample.available == len(sample.y) and not np.isin(sample.y, [0, UNCLASSIFIABLE]).any()


def test_multitemporal_pixels_stack_the_dates_of_the_common_tiles(area: Area) -> None:
    dates = (POOL[2], POOL[0], POOL[1])  # stacked in chronological order whatever the order given
    sample = training_pixels(area.config, dates, "L1C", sequence=True, max_pixels=10**6,
                             rng=np.random.default_rng(0))
    common = [e for e in TRAIN if e not in (MISSING[POOL[1]], MISSING[POOL[2]])]
    x, y = expected_pixels(tuple(sorted(dates)), common)
    np.testing.assert_array_equal(sample.x, x)
    np.testing.assert_array_equal(sample.y, y)
    assert sample.x.shape[1] == 3 * BANDS
    np.testing.assert_array_equal(sample.x[:, [0, BANDS, 2 * BANDS]],
                                  np.broadcast_to([date_code(d) for d in sorted(dates)], (len(y), 3)))
    assert set(np.unique(sample.x[:, 1])) == {tile_code(e) for e in common}


def test_the_pixel_budget_draws_without_replacement_by_seed(area: Area) -> None:
    def draw(seed: int, sequence: bool = False) -> np.ndarray:
        return training_pixels(area.config, POOL, "L1C", sequence, max_pixels=40,
                               rng=np.random.default_rng(seed)).x

    first = draw(5)
    assert first.shape == (40, BANDS)
    np.testing.assert_array_equal(first, draw(5))
    assert not np.array_equal(first, draw(6))
    everything = training_pixels(area.config, POOL, "L1C", False, 10**6, np.random.default_rng(0)).x
    rows = {row.tobytes() for row in everything}
    assert all(row.tobytes() in rows for row in first)
    assert len({row.tobytes() for row in first}) == 40, "no pixel twice"
    assert draw(5, sequence=True).shape == (40, len(POOL) * BANDS)


def test_class_weights_are_the_deep_models(area: Area) -> None:
    sample = training_pixels(area.config, POOL, "L1C", False, 10**6, np.random.default_rng(0))
    weights = class_weights(area.config)
    given = forest_class_weights(weights, sample.y)
    assert sorted(given) == sorted(int(c) for c in np.unique(sample.y)) and UNCLASSIFIABLE not in given
    assert given == {c: pytest.approx(float(weights[c - 1])) for c in given}


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-pixels", "0"], r"--max-pixels 0: must be at least 1"),
    (["--trees", "0"], r"--trees 0: must be at least 1"),
    (["--seed", "-1"], r"--seed -1: must be in 0\.\."),
    (["--kind", "multi"], r"--kind multi needs at least 2 dates in dates\.fixed_sequence \(it has 1\)"),
])
def test_bad_flags_and_dates_are_refused_before_anything_is_written(area: Area, flags: list[str],
                                                                      message: str) -> None:
    config = area.with_settings(dates={**area.settings["dates"], "fixed_sequence": [POOL[0]]})
    with pytest.raises(InputError, match=message):
        plan_forest_run("test", ["--config", str(config.source), *flags])
    assert not config.models_root.exists()


def test_a_run_is_named_by_its_kind(area: Area) -> None:
    mono = plan_forest_run("test", ["--config", str(area.config_path)])
    multi = plan_forest_run("test", ["--config", str(area.config_path), "--kind", "multi"])
    assert (mono.run, mono.paths.model.name, mono.dates) == ("random_forest_mono_01", "random_forest_mono_01.skops",
                                                             area.config.fcn_training)
    assert (multi.run, multi.dates) == ("random_forest_multi_01", tuple(sorted(area.config.fixed_sequence)))
    assert mono.settings["n_jobs"] >= 1 and not mono.sequence and multi.sequence
