"""The scene pass: window plan, combinations sharing per-date work, ensembles, output blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
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
)

from helpers.core.errors import InputError
from helpers.predict.sliding_windows import buffer_rows, plan_axis, predict_scene, window_geometry
from helpers.predict.window_models import WindowModel, renormalised


@pytest.mark.parametrize("length, window, margin", [(100, 32, 8), (90, 32, 8), (32, 32, 8), (47, 32, 8),
                                                    (700, 320, 32), (320, 320, 32)])
def test_plan_covers_every_pixel_once_from_window_cores(length: int, window: int, margin: int) -> None:
    plan = plan_axis(length, window, margin)
    covered = np.zeros(length, dtype=int)
    for start, lo, hi in zip(plan.starts, plan.lo, plan.hi, strict=True):
        assert start >= 0 and start + window <= length
        assert start <= lo < hi <= start + window
        assert lo == 0 or lo >= start + margin  # only the first window writes its outer part ...
        assert hi == length or hi <= start + window - margin  # ... and only the last
        covered[lo:hi] += 1
    assert (covered == 1).all()


def test_faithful_plan_is_the_original_grid_inside() -> None:
    plan = plan_axis(2828, 32, 8)
    assert list(plan.starts[:3]) == [0, 16, 32]
    assert list(plan.lo[1:3]) == [24, 40] and plan.hi[0] == 24  # centre rows r*16+8 ... r*16+24


def test_scene_smaller_than_a_window_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="smaller than one"):
        window_geometry("faithful", shape=(20, 90))
    assert window_geometry("fast", shape=SHAPE) == (64, 16)  # fast windows shrink to the scene


def counted_fcn(calls: list[int]) -> WindowModel:
    """The one-hot stand-in FCN, recording the number of windows of every call."""
    def encode(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return fcn_stand_in(batch)

    return WindowModel.fcn(encode, IDENTITY)


def date_sum_sequence() -> WindowModel:
    """A sequence stand-in: per date band 1; per combination half a one-hot of the sum over its dates."""
    def combine(features: np.ndarray) -> np.ndarray:
        return renormalised(0.5 * one_hot(features[..., 0].sum(axis=1).astype(np.int64)))

    return WindowModel(lambda batch: batch[..., :1].copy(), combine, IDENTITY)


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_combinations_in_one_pass_equal_separate_passes_with_each_date_encoded_once(tmp_path: Path,
                                                                                   mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=4)
    combinations = [[0, 1, 2], [1, 2, 3], [0, 3]]
    window, margin = window_geometry(mode, shape=SHAPE)
    calls: list[int] = []
    together, _ = collect_blocks(predict_scene([counted_fcn(calls)], stacks, combinations, N_BANDS, N_CLASSES,
                                               window, margin, batch_size=4))
    windows = len(plan_axis(SHAPE[0], window, margin).starts) * len(plan_axis(SHAPE[1], window, margin).starts)
    assert len(calls) == -(-windows // 4) and set(calls) == {4 * 4}  # every call: 4 windows x all 4 dates
    codes = bands[:, 0].astype(np.int64)
    for k, combo in enumerate(combinations):
        alone = classify_scene(fcn_stand_in, [stacks[d] for d in combo], window, margin,
                               IDENTITY, sequence=False, batch_size=3)[0]
        np.testing.assert_allclose(together[k], alone, atol=1e-6)
        expected = np.moveaxis(one_hot(codes[combo]).mean(axis=0), -1, 0) * area
        np.testing.assert_allclose(together[k], expected, atol=1e-6)


def test_sequence_combinations_of_different_lengths(tmp_path: Path) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    combinations = [[0, 1], [0, 1, 2], [1, 2]]
    maps, got_area = collect_blocks(predict_scene([date_sum_sequence()], stacks, combinations, N_BANDS, N_CLASSES,
                                                  32, 8, batch_size=7))
    np.testing.assert_array_equal(got_area, area)
    for k, combo in enumerate(combinations):
        codes = bands[combo, 0].astype(np.int64).sum(axis=0)
        np.testing.assert_allclose(maps[k], np.moveaxis(one_hot(codes), -1, 0) * area, atol=1e-6)


def test_an_ensemble_is_the_mean_of_its_members(tmp_path: Path) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=2)
    shifted = WindowModel.fcn(lambda batch: fcn_stand_in(batch + 1.0), IDENTITY)
    maps, _ = collect_blocks(predict_scene([WindowModel.fcn(fcn_stand_in, IDENTITY), shifted], stacks, [[0, 1]],
                                           N_BANDS, N_CLASSES, 32, 8))
    codes = bands[:, 0].astype(np.int64)
    expected = (one_hot(codes).mean(axis=0) + one_hot(codes + 1).mean(axis=0)) / 2
    np.testing.assert_allclose(maps[0], np.moveaxis(expected, -1, 0) * area, atol=1e-6)


@pytest.mark.parametrize("block_rows", [1, 8, 37, 256])
def test_blocks_are_consecutive_rows_and_independent_of_their_height(tmp_path: Path, block_rows: int) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=2)
    reference, _ = collect_blocks(predict_scene([WindowModel.fcn(fcn_stand_in, IDENTITY)], stacks, [[0, 1]],
                                                N_BANDS, N_CLASSES, 32, 8))
    blocks = list(predict_scene([WindowModel.fcn(fcn_stand_in, IDENTITY)], stacks, [[0, 1]], N_BANDS, N_CLASSES,
                                32, 8, batch_size=5, block_rows=block_rows))
    assert [b.row for b in blocks] == list(range(0, SHAPE[0], block_rows))
    assert all(b.probabilities.shape[2] == min(block_rows, SHAPE[0] - b.row) for b in blocks)
    np.testing.assert_array_equal(collect_blocks(blocks)[0], reference)


def test_far_apart_windows_in_one_batch_do_not_overflow_the_buffer(tmp_path: Path) -> None:
    stacks, bands, _ = make_stacks(tmp_path, dates=1)
    sparse = np.zeros(SHAPE, dtype=np.uint16)
    sparse[::20, 0] = sparse[-1, 0] = 1  # one window in every 20 rows: a batch of 5 spans the scene
    with rasterio.open(stacks[0], "r+") as dst:
        dst.write(sparse, N_BANDS + 1)
    assert buffer_rows(32, 5, 5, block_rows=8) == 72 < SHAPE[0]
    maps, area = collect_blocks(predict_scene([WindowModel.fcn(fcn_stand_in, IDENTITY)], stacks, [[0]], N_BANDS,
                                              N_CLASSES, 32, 8, batch_size=5, block_rows=8))
    expected = np.moveaxis(one_hot(bands[0, 0].astype(np.int64)), -1, 0) * sparse.astype(bool)
    np.testing.assert_array_equal(area, sparse.astype(bool))
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)


def test_bad_combinations_and_grids(tmp_path: Path) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=2)
    model = WindowModel.fcn(fcn_stand_in, IDENTITY)
    for combinations in ([[0, 2]], [[]], []):
        with pytest.raises(ValueError, match="non-empty lists of indices below 2"):
            next(predict_scene([model], stacks, combinations, N_BANDS, N_CLASSES, 32, 8))
    with rasterio.open(stacks[1]) as src:
        profile = {**src.profile, "transform": src.transform @ Affine.translation(1, 0)}
        data = src.read()
    with rasterio.open(stacks[1], "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(InputError, match="grid differs"):
        next(predict_scene([model], stacks, [[0, 1]], N_BANDS, N_CLASSES, 32, 8))
