"""The masked ConvLSTM head: every pixel's state steps over its own clear dates only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scene_stacks import N_BANDS, N_CLASSES
from scipy import ndimage

from helpers.predict.clear_dates import combine_clear, pattern_codes
from helpers.predict.masked_recurrence import masked_head_for

DATES = 4
SIDE = 64


@pytest.fixture(scope="module")
def heads() -> tuple[Any, Any]:
    """A small random FCN + ConvLSTM's head per date count, and its masked form."""
    import keras

    from helpers.train.models import LSTM_LAYER, build_fcn_lstm, build_unet, split_sequence_model

    keras.utils.set_random_seed(21)
    sequence = build_fcn_lstm(build_unet(N_BANDS, N_CLASSES, width=0.0625, tile_size=32), DATES, 32)
    _, head_for = split_sequence_model(sequence, SIDE)
    return head_for, masked_head_for(head_for(1).get_layer(LSTM_LAYER))


def date_features(seed: int, n: int = 2) -> np.ndarray:
    """Per-date head inputs ``(n, DATES, SIDE, SIDE, classes)`` of a few units, as FCN logits are."""
    return np.random.default_rng(seed).normal(scale=2.0, size=(n, DATES, SIDE, SIDE, N_CLASSES)).astype(np.float32)


def overlapping_clouds(n: int = 2) -> np.ndarray:
    """Clear masks with two overlapping clouds on dates 1 and 2 of the first window and one on the
    last date of the second: six patterns of clear dates, with large areas of each."""
    clear = np.ones((n, DATES, SIDE, SIDE), dtype=bool)
    clear[0, 1, 6:26, 4:24] = False
    clear[0, 2, 16:40, 14:36] = False
    clear[1, DATES - 1, 20:44, 0:30] = False
    return clear


def test_with_every_date_clear_it_is_the_head(heads: tuple) -> None:
    head_for, masked = heads
    features = date_features(1)
    clear = np.ones(features.shape[:4], dtype=bool)
    np.testing.assert_allclose(masked(DATES).predict_on_batch([features, clear]),
                               head_for(DATES, SIDE).predict_on_batch(features), atol=1e-6)


def test_away_from_cloud_edges_it_is_the_head_on_each_pixels_clear_dates(heads: tuple) -> None:
    head_for, masked = heads
    features, clear = date_features(2), overlapping_clouds()
    got = np.asarray(masked(DATES).predict_on_batch([features, clear]))

    def per_pattern(batch: np.ndarray) -> np.ndarray:  # the head on one pattern's dates of the whole window
        return np.asarray(head_for(batch.shape[1], SIDE).predict_on_batch(batch))

    reference, used = combine_clear(per_pattern, features, clear, N_CLASSES, 1)
    codes = pattern_codes(clear)
    reach = 2 * DATES + 1  # a pixel's map depends on the pixels within DATES px (one 3x3 step per date)
    alone = np.stack([(ndimage.maximum_filter(c, size=reach, mode="nearest") == c)
                      & (ndimage.minimum_filter(c, size=reach, mode="nearest") == c) for c in codes])
    assert (used > 0).all() and alone.mean() > 0.5 and len(np.unique(codes[0])) == 4
    np.testing.assert_allclose(got[alone], reference[alone], atol=1e-5)
    assert np.abs(got[~alone] - reference[~alone]).max() > 1e-3  # at the edges the two methods differ


def test_cloudy_inputs_reach_no_pixel_and_a_pixel_without_clear_dates_stays_empty(heads: tuple) -> None:
    _, masked = heads
    features, clear = date_features(3), overlapping_clouds()
    clear[1, :, 50:, 50:] = False  # no clear date at all here
    before = np.asarray(masked(DATES).predict_on_batch([features, clear]))
    noisy = features + np.where(clear[..., None], 0.0, 50.0).astype(np.float32)  # bright clouds
    np.testing.assert_array_equal(masked(DATES).predict_on_batch([noisy, clear]), before)
    changed = features.copy()
    changed[0, 0, 30, 30] += 5.0  # a clear input does count, for its neighbours too
    after = np.asarray(masked(DATES).predict_on_batch([changed, clear]))
    assert np.abs(after - before)[0, 29:32, 29:32].min() > 0
    assert not before[1, 50:, 50:].any()


def test_a_head_that_is_not_a_bidirectional_convlstm_is_refused(heads: tuple) -> None:
    import keras

    with pytest.raises(ValueError, match="Bidirectional ConvLSTM head"):
        masked_head_for(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="at least 1 date"):
        heads[1](0)
