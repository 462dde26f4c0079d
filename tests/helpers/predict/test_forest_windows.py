"""A random forest in the scene pass: every pixel predicted once, as the forest predicts it directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scene_stacks import IDENTITY, N_BANDS, N_CLASSES, SHAPE, collect_blocks, make_stacks
from sklearn.ensemble import RandomForestClassifier

from helpers.predict.forest_windows import forest_window_model, per_pixel_geometry
from helpers.predict.sliding_windows import predict_scene, window_geometry
from helpers.train.forest_model import ForestModel

CLASS_IDS = tuple(range(1, N_CLASSES + 1))


def forest_on(n_features: int, seed: int = 0) -> RandomForestClassifier:
    """A small forest on pixels like the stacks' (values 0..199), classes 1..7 (never 8)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 200, size=(400, n_features)).astype(np.float32)
    y = (x[:, 0] // 30 + 1).astype(np.int64)  # classes 1..7 by the first feature
    return RandomForestClassifier(n_estimators=5, min_samples_leaf=2, random_state=seed).fit(x, y)


def scene_maps(model: ForestModel, stacks: list[Path], combinations: list[list[int]], mode: str) -> np.ndarray:
    window, margin = per_pixel_geometry(*window_geometry(mode, shape=SHAPE))
    blocks = predict_scene([forest_window_model(model, IDENTITY)], stacks, combinations, N_BANDS, N_CLASSES, window,
                           margin, batch_size=7)
    return collect_blocks(blocks)[0]


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_monotemporal_forest_maps_are_the_mean_of_its_date_probabilities(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    model = ForestModel(forest_on(N_BANDS), N_BANDS, 1, CLASS_IDS)
    maps = scene_maps(model, stacks, [[0, 1, 2], [1]], mode)
    pixels = np.moveaxis(bands, 1, -1).reshape(3, -1, N_BANDS).astype(np.float32)  # date, pixel, band
    per_date = np.stack([model.forest.predict_proba(p) for p in pixels])  # classes 1..7 = channels 0..6
    for index, dates in enumerate(([0, 1, 2], [1])):
        expected = np.zeros((N_CLASSES, *SHAPE), dtype=np.float32)
        expected[:7] = np.moveaxis(per_date[dates].mean(axis=0), -1, 0).reshape(7, *SHAPE)
        np.testing.assert_allclose(maps[index], expected * area, atol=1e-6)


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_multitemporal_forest_maps_stack_the_combination_dates(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    model = ForestModel(forest_on(2 * N_BANDS), N_BANDS, 2, CLASS_IDS)
    maps = scene_maps(model, stacks, [[0, 2], [1, 2]], mode)
    for index, dates in enumerate(([0, 2], [1, 2])):
        features = np.moveaxis(bands[dates], (0, 1), (2, 3)).reshape(-1, 2 * N_BANDS).astype(np.float32)
        expected = np.zeros((N_CLASSES, *SHAPE), dtype=np.float32)
        expected[:7] = np.moveaxis(model.forest.predict_proba(features), -1, 0).reshape(7, *SHAPE)
        np.testing.assert_allclose(maps[index], expected * area, atol=1e-6)
        np.testing.assert_allclose(maps[index].sum(axis=0), area.astype(np.float32), atol=1e-5)
