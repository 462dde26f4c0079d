"""Keras runs as window models of the scene pass: split per date, and how a sequence model takes cloud masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scene_stacks import IDENTITY, N_BANDS, N_CLASSES, SHAPE, classify_scene, collect_blocks, make_stacks
from sequence_models import sequence_model_at

from helpers.predict.sliding_windows import predict_scene, window_geometry


def test_saved_models_split_per_date_give_the_whole_models_maps_at_the_fast_window(tmp_path: Path) -> None:
    import keras

    from helpers.predict.keras_windows import keras_window_model
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


def test_a_sequence_model_masked_per_pattern_runs_small_clouds_on_patches_of_its_head_with_the_windows_values() -> None:
    import keras

    from helpers.predict.clear_dates import combine_clear
    from helpers.predict.keras_windows import HEAD_PATCH_SIZE, keras_window_model
    from helpers.train.models import build_fcn_lstm, build_unet

    keras.utils.set_random_seed(6)
    sequence = build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), 3, 32)
    assert keras_window_model(sequence, HEAD_PATCH_SIZE, IDENTITY, "per_pattern").patch_size == 0  # none below
    assert keras_window_model(sequence, 128, IDENTITY).patch_size == 0  # recurrent masking: no patterns, no patches
    model = keras_window_model(sequence, 128, IDENTITY, "per_pattern")
    assert model.patch_size == HEAD_PATCH_SIZE and model.combine_masked is None
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


def test_tensorflows_expected_retracing_warning_is_dropped_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from helpers.predict.keras_windows import _quiet_expected_retracing

    _quiet_expected_retracing()
    _quiet_expected_retracing()  # once is enough
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <f> triggered tf.function retracing.")
        logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
    assert sum(type(f).__name__ == "_ExpectedRetracing" for f in logger.filters) == 1


def test_recurrent_masking_gives_the_masked_head_and_an_unknown_method_is_refused() -> None:
    import keras

    from helpers.predict.keras_windows import keras_window_model
    from helpers.train.models import build_fcn_lstm, build_unet

    keras.utils.set_random_seed(7)
    sequence = build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), 3, 32)
    model = keras_window_model(sequence, 64, IDENTITY)
    assert model.keras.masked_head_for is not None and model.combine_masked is not None
    features = np.random.default_rng(3).normal(size=(2, 3, 64, 64, N_CLASSES)).astype(np.float32)
    clear = np.ones((2, 3, 64, 64), dtype=bool)
    np.testing.assert_allclose(model.combine_masked(features, clear), model.combine(features), atol=1e-6)
    clear[:, 1] = False  # date 1 cloudy everywhere: the head on the other two dates
    np.testing.assert_allclose(model.combine_masked(features, clear), model.combine(features[:, [0, 2]]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown sequence masking 'exact'"):
        keras_window_model(sequence, 64, IDENTITY, "exact")
