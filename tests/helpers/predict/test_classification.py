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
from sequence_models import sequence_model_at

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


def test_saved_models_split_per_date_give_the_whole_models_maps_at_the_fast_window(tmp_path: Path) -> None:
    import keras

    from helpers.predict.classification import keras_window_model
    from helpers.train.models import build_fcn_lstm, build_unet
    from helpers.train.normalisation import Normaliser

    keras.utils.set_random_seed(5)
    fcn = build_unet(N_BANDS, N_CLASSES, width=0.0625)
    sequence = build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), 3, 32)
    stacks, _, _ = make_stacks(tmp_path, dates=3)
    normaliser = Normaliser.from_values([100.0] * N_BANDS, [60.0] * N_BANDS)
    window, margin = window_geometry("fast", shape=SHAPE)
    assert (window, margin) == (64, 16)
    for model, whole, is_sequence in ((fcn, fcn, False), (sequence, sequence_model_at(sequence, window), True)):
        expected = classify_scene(whole.predict_on_batch, stacks, window, margin, normaliser,
                                  sequence=is_sequence)[0]
        split = keras_window_model(model, window, normaliser)
        got, _ = collect_blocks(predict_scene([split], stacks, [[0, 1, 2], [1, 2]], N_BANDS, N_CLASSES, window,
                                              margin))
        np.testing.assert_allclose(got[0], expected, atol=1e-5)
        assert got[0].shape == expected.shape and not np.allclose(got[1], got[0])


def test_a_split_sequence_model_runs_small_clouds_on_patches_of_its_head_with_the_windows_values() -> None:
    import keras

    from helpers.predict.classification import HEAD_PATCH_SIZE, keras_window_model
    from helpers.predict.clear_dates import combine_clear
    from helpers.train.models import build_fcn_lstm, build_unet

    keras.utils.set_random_seed(6)
    sequence = build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), 3, 32)
    assert keras_window_model(sequence, HEAD_PATCH_SIZE, IDENTITY).patch_size == 0  # no patch below the window
    model = keras_window_model(sequence, 128, IDENTITY)
    assert model.patch_size == HEAD_PATCH_SIZE
    features = np.random.default_rng(9).normal(size=(2, 3, 128, 128, N_CLASSES)).astype(np.float32)
    clear = np.ones((2, 3, 128, 128), dtype=bool)
    clear[0, 1, 4:9, 118:124] = clear[1, 0, 60:64, 70:75] = False  # a small cloud near an edge, one inside
    sizes: list[tuple[int, ...]] = []

    def combine(batch: np.ndarray) -> np.ndarray:
        sizes.append(batch.shape[1:4])
        return model.combine(batch)

    patched, used = combine_clear(combine, features, clear, N_CLASSES, 1, patch_size=model.patch_size)
    whole, whole_used = combine_clear(model.combine, features, clear, N_CLASSES, 1)
    assert (2, 64, 64) in sizes and set(sizes) <= {(2, 64, 64), (3, 128, 128)}
    np.testing.assert_array_equal(used, whole_used)
    np.testing.assert_allclose(patched, whole, atol=1e-5)
    with pytest.raises(ValueError, match="square"):
        model.combine(features[:, :, :64])


def test_combinations_are_split_into_passes_only_beyond_the_buffer_budget() -> None:
    from helpers.predict.classification import group_combinations

    assert group_combinations([0, 1, 2, 3, 4, 5], 100, budget=1000) == [[0, 1, 2, 3, 4, 5]]
    assert group_combinations([0, 1, 2, 3, 4, 5], 400, budget=1000) == [[0, 1], [2, 3], [4, 5]]
    assert group_combinations([3, 5], 5000, budget=1000) == [[3], [5]]


def test_tensorflows_expected_retracing_warning_is_dropped_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from helpers.predict.classification import _quiet_expected_retracing

    _quiet_expected_retracing()
    _quiet_expected_retracing()  # once is enough
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <f> triggered tf.function retracing.")
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
    assert sum(type(f).__name__ == "_ExpectedRetracing" for f in logger.filters) == 1
