"""Clouds in the scene pass: per pixel, only the clear dates of a combination (hand computations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scene_stacks import (
    IDENTITY,
    N_BANDS,
    N_CLASSES,
    SHAPE,
    collect_blocks,
    fcn_stand_in,
    make_stacks,
    one_hot,
    sequence_stand_in,
    write_cloud_mask,
)

from helpers.core.errors import InputError
from helpers.predict.clear_dates import ClearCounts, cloud_mask_paths, combine_clear, pattern_codes
from helpers.predict.sliding_windows import WindowModel, mean_over_dates, predict_scene, renormalised


def _clear(rng: np.random.Generator, shape: tuple[int, ...], share: float = 0.6) -> np.ndarray:
    return rng.random(shape) < share


def test_pattern_codes_set_one_bit_per_clear_date() -> None:
    clear = np.zeros((1, 3, 1, 4), dtype=bool)
    clear[0, 0, 0, 1] = clear[0, 2, 0, 2] = True
    clear[0, :, 0, 3] = True
    assert pattern_codes(clear).tolist() == [[[0, 1, 4, 7]]]


def test_fcn_mean_over_the_clear_dates_equals_a_hand_computation() -> None:
    rng = np.random.default_rng(1)
    features = rng.random((2, 4, 5, 5, 3)).astype(np.float32)
    clear = _clear(rng, (2, 4, 5, 5))
    scores, used = combine_clear(mean_over_dates, features, clear, 3, min_clear=2, mean=True)
    for n, y, x in np.ndindex(2, 5, 5):
        dates = np.flatnonzero(clear[n, :, y, x])
        if len(dates) >= 2:
            np.testing.assert_allclose(scores[n, y, x], features[n, dates, y, x].mean(axis=0), rtol=1e-6)
            assert used[n, y, x] == len(dates)
        else:
            assert used[n, y, x] == 0 and not scores[n, y, x].any()
    general, general_used = combine_clear(mean_over_dates, features, clear, 3, min_clear=2)
    np.testing.assert_allclose(general, scores, rtol=1e-6)  # once per pattern: the same
    np.testing.assert_array_equal(general_used, used)


def test_a_sequence_model_gets_the_clear_dates_of_each_pixel() -> None:
    rng = np.random.default_rng(2)
    features = rng.integers(0, 50, size=(3, 3, 4, 4, N_BANDS)).astype(np.float32)
    clear = _clear(rng, (3, 3, 4, 4), 0.7)
    lengths: list[int] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        lengths.append(sequences.shape[1])
        return renormalised(sequence_stand_in(sequences))

    scores, used = combine_clear(head, features, clear, N_CLASSES, min_clear=1)
    for n, y, x in np.ndindex(3, 4, 4):
        dates = np.flatnonzero(clear[n, :, y, x])
        if len(dates):
            expected = one_hot(np.int64(features[n, dates, y, x, 0].sum()))
            np.testing.assert_array_equal(scores[n, y, x], expected)
        else:
            assert not scores[n, y, x].any() and used[n, y, x] == 0
    assert set(lengths) <= {1, 2, 3} and len(lengths) == len(set(pattern_codes(clear)[used > 0].tolist()))


def test_fixed_dates_classifies_only_pixels_clear_on_every_date() -> None:
    features = np.ones((1, 2, 2, 2, 3), dtype=np.float32)
    clear = np.ones((1, 2, 2, 2), dtype=bool)
    clear[0, 1, 0, 0] = False
    scores, used = combine_clear(lambda f: np.full((*f.shape[:1], 2, 2, 3), 1 / 3, np.float32), features, clear, 3,
                                 min_clear=1, fixed_dates=True)
    assert used.tolist() == [[[0, 2], [2, 2]]]
    assert not scores[0, 0, 0].any() and scores[0, 1, 1].sum() == pytest.approx(1.0)


def _masks(tmp_path: Path, dates: int, seed: int) -> tuple[list[Path], np.ndarray]:
    """Cloud masks with blobs of cloud (1), shadow (2) and no data (255); returns paths and the clear arrays."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((dates, *SHAPE), dtype=np.uint8)
    for d in range(dates):
        for value in (1, 2, 255):
            y, x = rng.integers(0, SHAPE[0] - 30), rng.integers(0, SHAPE[1] - 30)
            masks[d, y: y + int(rng.integers(10, 30)), x: x + int(rng.integers(10, 30))] = value
    paths = [write_cloud_mask(tmp_path / f"clouds_{d}.tif", masks[d]) for d in range(dates)]
    return paths, masks == 0


@pytest.mark.parametrize("mode", [(32, 8), (64, 16)])
def test_scene_pass_with_masks_equals_the_per_pixel_hand_computation(tmp_path: Path, mode: tuple[int, int]) -> None:
    window, margin = mode
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    masks, clear = _masks(tmp_path, 3, seed=4)
    fcn = WindowModel.fcn(fcn_stand_in, IDENTITY)
    sequence = WindowModel.sequence(sequence_stand_in, IDENTITY)
    combos = [[0, 1, 2], [1, 2]]
    for model in (fcn, sequence):
        blocks = list(predict_scene([model], stacks, combos, N_BANDS, N_CLASSES, window, margin,
                                    cloud_masks=masks, min_clear_dates=2))
        probabilities, got_area = collect_blocks(blocks)
        used = np.concatenate([b.dates_used for b in blocks], axis=1)
        np.testing.assert_array_equal(got_area, area)
        for k, combo in enumerate(combos):
            count = clear[combo].sum(axis=0)
            expected_used = np.where((count >= 2) & area, count, 0)
            np.testing.assert_array_equal(used[k], expected_used)
            codes = bands[combo, 0].astype(np.int64)
            if model is fcn:
                expected = (one_hot(codes) * clear[combo][..., None]).sum(axis=0) / np.maximum(count, 1)[..., None]
            else:
                expected = one_hot((codes * clear[combo]).sum(axis=0))
            expected = np.where(expected_used[..., None] > 0, expected, 0.0)
            np.testing.assert_allclose(np.moveaxis(probabilities[k], 0, -1), expected, atol=1e-6)


def test_scene_pass_without_masks_reports_no_dates_used(tmp_path: Path) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=2)
    blocks = list(predict_scene([WindowModel.fcn(fcn_stand_in, IDENTITY)], stacks, [[0, 1]], N_BANDS, N_CLASSES,
                                32, 8))
    assert all(b.dates_used is None for b in blocks)


def test_clear_counts_split_all_fewer_and_not_classified() -> None:
    counts = ClearCounts()
    used = np.array([[3, 3, 2], [1, 0, 3]], dtype=np.uint8)
    area = np.array([[True, True, True], [True, True, False]])
    counts.add(used, area, n_dates=3)
    assert (counts.all_dates, counts.fewer_dates, counts.not_classified) == (2, 2, 1)
    assert counts.shares()["not_classified"] == pytest.approx(0.2)
    assert counts.as_dict()["pixels_by_dates_used"] == {"0": 1, "1": 1, "2": 1, "3": 2}
    assert "40.0 % from all dates" in counts.line()


def test_a_missing_or_misplaced_mask_is_named(tmp_path: Path, write_config) -> None:
    from helpers.core.config import load_config

    config = load_config(write_config())
    stacks, _, _ = make_stacks(tmp_path, dates=1)
    with pytest.raises(InputError, match=r"no cloud mask for date 20180330; run src/data_processing/03b_cloud_masks"):
        cloud_mask_paths(config, ["20180330"], "L1C", stacks[0])
    from affine import Affine

    write_cloud_mask(config.cloud_mask_path("20180330", "L1C"), np.zeros(SHAPE, np.uint8),
                     Affine(10.0, 0.0, 0.0, 0.0, -10.0, 0.0))
    with pytest.raises(InputError, match=r"20180330_L1C_clouds\.tif"):
        cloud_mask_paths(config, ["20180330"], "L1C", stacks[0])
