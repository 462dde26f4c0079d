"""Sliding-window stitching of full-scene classification, with stand-in models of known output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from scene_stacks import (
    IDENTITY,
    N_BANDS,
    N_CLASSES,
    SHAPE,
    classify_scene,
    collect_blocks,
    fcn_stand_in,
    make_stacks,
    one_hot,
    sequence_stand_in,
)

from helpers.predict.sliding_windows import predict_scene, window_geometry
from helpers.predict.window_models import WindowModel


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_fcn_class_map_is_the_mean_over_dates_everywhere(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    window, margin = window_geometry(mode, shape=SHAPE)
    probabilities, classes, confidence = classify_scene(fcn_stand_in, stacks, window, margin, IDENTITY,
                                                        sequence=False, batch_size=5)
    expected = np.moveaxis(one_hot(bands[:, 0].astype(np.int64)).mean(axis=0), -1, 0)
    want = np.where(area, np.argmax(expected, axis=0) + 1, 0)
    np.testing.assert_array_equal(classes, want)  # the border included
    np.testing.assert_allclose(probabilities, expected * area, atol=1e-6)
    np.testing.assert_allclose(confidence, np.where(area, expected.max(axis=0), 0), atol=1e-6)
    assert classes.dtype == np.uint8 and probabilities.dtype == np.float32 and confidence.dtype == np.float32


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_sequence_class_map_and_renormalised_probabilities(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=4)
    window, margin = window_geometry(mode, shape=SHAPE)
    probabilities, classes, _ = classify_scene(sequence_stand_in, stacks, window, margin, IDENTITY,
                                               sequence=True, batch_size=3)
    codes = bands[:, 0].astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(classes, np.where(area, codes % N_CLASSES + 1, 0))
    np.testing.assert_allclose(probabilities.sum(axis=0), area.astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_only_window_centres_are_kept_except_at_the_scene_edges(tmp_path: Path, mode: str) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=1)
    full = np.ones(SHAPE, dtype=np.uint16)
    with rasterio.open(stacks[0], "r+") as dst:
        dst.write(full, N_BANDS + 1)
    window, margin = window_geometry(mode, shape=SHAPE)

    def position_coded(batch: np.ndarray) -> np.ndarray:  # class 1 in a window's core, class 2 in its margin
        codes = np.ones(batch.shape[:3], dtype=np.int64)
        codes[:, :margin] = codes[:, -margin:] = codes[:, :, :margin] = codes[:, :, -margin:] = 2
        return one_hot(codes - 1)

    _, classes, _ = classify_scene(position_coded, stacks, window, margin, IDENTITY, sequence=False)
    want = np.full(SHAPE, 1, dtype=np.uint8)
    want[:margin] = want[-margin:] = want[:, :margin] = want[:, -margin:] = 2
    np.testing.assert_array_equal(classes, want)


def test_windows_outside_the_area_are_not_predicted(tmp_path: Path) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=1)
    area = np.zeros(SHAPE, dtype=np.uint16)
    area[60:70, 60:70] = 1
    with rasterio.open(stacks[0], "r+") as dst:
        dst.write(area, N_BANDS + 1)
    calls = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return fcn_stand_in(batch)

    maps, found_area = collect_blocks(predict_scene([WindowModel.fcn(counting, IDENTITY)], stacks, [[0]], N_BANDS,
                                                    N_CLASSES, 32, 8, batch_size=1))
    assert len(calls) <= 4  # 10x10 px reach at most 2x2 window cores
    assert maps[0][:, ~area.astype(bool)].max() == 0
    np.testing.assert_array_equal(found_area, area.astype(bool))


def test_combinations_are_split_into_passes_only_beyond_the_buffer_budget() -> None:
    from helpers.predict.classification import group_combinations

    assert group_combinations([0, 1, 2, 3, 4, 5], 100, budget=1000) == [[0, 1, 2, 3, 4, 5]]
    assert group_combinations([0, 1, 2, 3, 4, 5], 400, budget=1000) == [[0, 1], [2, 3], [4, 5]]
    assert group_combinations([3, 5], 5000, budget=1000) == [[3], [5]]
