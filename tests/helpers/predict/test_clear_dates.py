"""Clouds in the scene pass: per pixel, only the clear dates of a combination (hand computations)."""

from __future__ import annotations

from collections import Counter
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
from helpers.predict.clear_counts import ClearCounts
from helpers.predict.clear_dates import _chunks, cloud_mask_paths, combine_clear, pattern_codes
from helpers.predict.sliding_windows import predict_scene
from helpers.predict.window_models import WindowModel, mean_over_dates, renormalised


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
    assert set(lengths) == set(used[used > 0].tolist())  # one call per sequence length (3 windows: no chunks)


def test_fixed_dates_classifies_only_pixels_clear_on_every_date() -> None:
    features = np.ones((1, 2, 2, 2, 3), dtype=np.float32)
    clear = np.ones((1, 2, 2, 2), dtype=bool)
    clear[0, 1, 0, 0] = False
    scores, used = combine_clear(lambda f: np.full((*f.shape[:1], 2, 2, 3), 1 / 3, np.float32), features, clear, 3,
                                 min_clear=1, fixed_dates=True)
    assert used.tolist() == [[[0, 2], [2, 2]]]
    assert not scores[0, 0, 0].any() and scores[0, 1, 1].sum() == pytest.approx(1.0)


def test_a_masked_combination_is_called_once_and_its_unclassified_pixels_cleared() -> None:
    features = np.ones((2, 3, 4, 4, 3), dtype=np.float32)
    clear = np.ones((2, 3, 4, 4), dtype=bool)
    clear[0, :2, 0, 0] = False  # one clear date left: not enough for min_clear 2
    calls = []

    def masked(batch: np.ndarray, masks: np.ndarray) -> np.ndarray:
        calls.append(masks.copy())
        return np.full((*batch.shape[:1], 4, 4, 3), 1 / 3, np.float32)

    def per_pattern(batch: np.ndarray) -> np.ndarray:
        raise AssertionError("the per-pattern combination is not used")

    scores, used = combine_clear(per_pattern, features, clear, 3, min_clear=2, masked=masked, patch_size=2)
    assert len(calls) == 1 and np.array_equal(calls[0], clear)
    assert used[0, 0, 0] == 0 and not scores[0, 0, 0].any() and (used.ravel()[1:] >= 2).all()
    np.testing.assert_allclose(scores.sum(axis=-1)[used > 0], 1.0)


def _box(images: np.ndarray) -> np.ndarray:
    """3x3 sum over the rows and columns of ``(n, rows, cols, channels)``, zero padded ('same')."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows, cols = images.shape[1:3]
    return sum(padded[:, dy: dy + rows, dx: dx + cols] for dy in range(3) for dx in range(3))


def _toy_head(sequences: np.ndarray) -> np.ndarray:
    """A ConvLSTM in miniature: ``(n, t, rows, cols, 2) -> (n, rows, cols, 3)`` probabilities.

    One 3x3 convolution of the date and one of the state per date, with a bias: the output at a
    pixel depends on every date, their order and number, and on the inputs exactly ``t`` pixels
    around it (and a zero state is not neutral, like the padding of a real ConvLSTM). A wrong
    gather (dates, window), scatter or halo changes it.
    """
    state = np.zeros((len(sequences), *sequences.shape[2:4], 3))
    weights = np.array([[0.7, -0.4, 0.2], [-0.3, 0.5, 0.9]])
    for date in range(sequences.shape[1]):
        state = np.tanh(0.25 * _box(sequences[:, date].astype(np.float64) @ weights) + 0.3 * _box(state[..., ::-1])
                        + 0.1 * (date + 1))
    return renormalised(np.exp(2.0 * state))


def _per_pattern(head, features: np.ndarray, clear: np.ndarray, min_clear: int,
                 fixed_dates: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every window, every pattern in it, the head on that window alone and its dates."""
    n, n_dates = clear.shape[:2]
    counts = clear.sum(axis=1)
    used = np.where(counts >= (n_dates if fixed_dates else min_clear), counts, 0)
    codes = np.where(used > 0, pattern_codes(clear), -1)
    scores = np.zeros((*codes.shape, 3), dtype=np.float32)
    for window in range(n):
        for code in set(codes[window].ravel().tolist()) - {-1}:
            dates = [d for d in range(n_dates) if code >> d & 1]
            out = head(features[window: window + 1, dates])[0]
            scores[window][codes[window] == code] = out[codes[window] == code]
    return scores, used


def _cloudy_windows() -> np.ndarray:
    """bool ``(6, 4, 24, 24)`` clear masks: windows without clouds and with one to several patterns."""
    clear = np.ones((6, 4, 24, 24), dtype=bool)
    clear[1, 1, 3:7, 15:20] = False  # one small cloud: two patterns, 4 and 3 dates
    clear[2, 0, 2:5, 2:5] = clear[2, 2, 17:22, 14:21] = False  # two clouds on two dates, far apart
    clear[2, 3, 16:19, 0:4] = clear[2, 2, 0:3, 20:24] = False  # one touching the edge, one in a corner
    clear[3, 0] = False  # a whole date cloudy: one pattern of 3 dates
    clear[3, 1, 8:16, 8:16] = clear[3, 2, 12:20, 10:14] = False  # overlapping clouds: 2 and 1 dates left
    clear[4, :, 5:9, 5:9] = False  # no date clear
    clear[4, 1:3, 14:18, 3:23] = False
    clear[5] = np.random.default_rng(7).random((4, 24, 24)) < 0.7  # speckle: many patterns, all lengths
    return clear


def _work(calls: list[tuple[int, ...]]) -> int:
    """Pixels the head computed over all calls (items x dates x rows x cols)."""
    return sum(int(np.prod(shape[:4])) for shape in calls)


@pytest.mark.parametrize("patch_size", [0, 10, 16])
@pytest.mark.parametrize(("min_clear", "fixed_dates"), [(1, False), (2, False), (3, False), (1, True)])
def test_grouped_heads_equal_one_call_per_window_and_pattern(patch_size: int, min_clear: int,
                                                            fixed_dates: bool) -> None:
    clear = _cloudy_windows()
    features = np.random.default_rng(3).normal(size=(*clear.shape, 2)).astype(np.float32)
    calls: list[tuple[int, ...]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        calls.append(sequences.shape)
        return _toy_head(sequences)

    scores, used = combine_clear(head, features, clear, 3, min_clear, fixed_dates=fixed_dates,
                                 patch_size=patch_size)
    expected, expected_used = _per_pattern(_toy_head, features, clear, min_clear, fixed_dates)
    np.testing.assert_array_equal(used, expected_used)
    assert used.dtype == np.uint8 and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(scores.argmax(axis=-1), expected.argmax(axis=-1))
    assert not scores[used == 0].any()
    whole = [shape for shape in calls if shape[2:4] == (24, 24)]
    assert all(shape[0] in (1, 2, 4, len(clear)) for shape in calls if shape[2:4] == (24, 24))  # batch size or 2^k
    as_many_pixels = len(clear) * 24 * 24 // max(1, patch_size) ** 2  # patches: about the batch's pixels a call
    assert all(shape[0] & (shape[0] - 1) == 0 and shape[0] <= as_many_pixels for shape in calls if shape[2] != 24)
    if patch_size == 0:  # whole windows only, at most one per (window, pattern), by length in chunks
        items = Counter(bin(code).count("1") for window in np.where(used > 0, pattern_codes(clear), -1)
                        for code in set(window.ravel().tolist()) - {-1})
        assert len(whole) == len(calls)
        assert {shape[1] for shape in calls} == set(items)
        assert all(sum(shape[0] for shape in calls if shape[1] == length) <= count for length, count in items.items())
    else:  # one patch shape per length, and less work than on whole windows
        assert all(shape[2:4] in ((patch_size, patch_size), (24, 24)) for shape in calls)
        assert all(patch_size - 2 * shape[1] >= 1 for shape in calls if shape[2:4] != (24, 24))
        assert fixed_dates or len(whole) < len(calls)
        if len(whole) < len(calls):
            windows_only: list[tuple[int, ...]] = []
            combine_clear(lambda s: windows_only.append(s.shape) or _toy_head(s), features, clear, 3, min_clear,
                          fixed_dates=fixed_dates)
            assert _work(calls) < _work(windows_only)


def test_patterns_far_apart_share_one_window_of_a_call() -> None:
    clear = np.ones((3, 3, 16, 16), dtype=bool)
    clear[0, 0, 2:5, 2:5] = False  # two dates left in a block; its reach (2 px around) ends at column 6
    clear[1, 1, 2:5, 9:12] = False  # another window, other dates, reach from column 7: fits beside it
    clear[2, 2, 2:5, 6:9] = False  # a third one too close to both: its own call
    features = np.random.default_rng(6).normal(size=(*clear.shape, 2)).astype(np.float32)
    calls: list[tuple[int, ...]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        calls.append(sequences.shape[:2])
        return _toy_head(sequences)

    scores, used = combine_clear(head, features, clear, 3, 1)
    expected, expected_used = _per_pattern(_toy_head, features, clear, 1)
    np.testing.assert_array_equal(used, expected_used)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    assert sorted(calls) == [(2, 2), (3, 3)]  # three items of 2 dates in two windows, three windows of 3


@pytest.mark.parametrize("patch_size", [0, 10, 16])
def test_only_the_kept_pixels_are_computed_and_equal_the_reference(patch_size: int) -> None:
    clear = _cloudy_windows()
    features = np.random.default_rng(4).normal(size=(*clear.shape, 2)).astype(np.float32)
    keep = np.zeros((6, 24, 24), dtype=bool)
    keep[:, 6:18, 6:18] = True  # the cores
    keep[2, :18, 6:] = True  # a window at the scene's top right edge keeps its outer part
    keep[4] = False  # a padding window
    calls: list[tuple[int, ...]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        calls.append(sequences.shape)
        return _toy_head(sequences)

    scores, used = combine_clear(head, features, clear, 3, 1, patch_size=patch_size, keep=keep)
    expected, expected_used = _per_pattern(_toy_head, features, clear, 1)
    np.testing.assert_array_equal(used, expected_used)  # counted everywhere
    np.testing.assert_allclose(scores, np.where(keep[..., None], expected, 0.0), rtol=0, atol=1e-6)
    grown = [(min(24, 18 + shape[1]),) * 2 for shape in calls]  # the kept pixels' box (18 x 18) and the reach
    assert all(shape[2:4] in ((patch_size, patch_size), side) for shape, side in zip(calls, grown, strict=True))
    everything: list[tuple[int, ...]] = []
    combine_clear(lambda sequences: everything.append(sequences.shape) or _toy_head(sequences), features, clear, 3, 1,
                  patch_size=patch_size)
    assert _work(calls) < _work(everything)  # patterns outside the cores skipped


@pytest.mark.parametrize("min_clear", [1, 2])
def test_with_cores_kept_the_head_runs_on_the_core_and_its_reach_only(min_clear: int) -> None:
    clear = _cloudy_windows()
    features = np.random.default_rng(9).normal(size=(*clear.shape, 2)).astype(np.float32)
    keep = np.zeros((6, 24, 24), dtype=bool)
    keep[:, 8:16, 8:16] = True  # faithful mode's core: the middle of the window
    shapes: list[tuple[int, ...]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        shapes.append(sequences.shape)
        return _toy_head(sequences)

    scores, used = combine_clear(head, features, clear, 3, min_clear, keep=keep)
    expected, expected_used = _per_pattern(_toy_head, features, clear, min_clear)
    np.testing.assert_array_equal(used, expected_used)
    np.testing.assert_allclose(scores, np.where(keep[..., None], expected, 0.0), rtol=0, atol=1e-6)
    assert shapes and all(shape[2:4] == (8 + 2 * shape[1], 8 + 2 * shape[1]) for shape in shapes)
    assert not combine_clear(head, features, clear, 3, min_clear, keep=np.zeros_like(keep))[0].any()


@pytest.mark.parametrize("patch_size", [10, 16])
@pytest.mark.parametrize("pixel", [(0, 0), (1, 22), (23, 23), (22, 1), (0, 12), (12, 11), (5, 17)])
def test_a_lone_pixel_at_a_corner_an_edge_or_inside_gets_the_whole_windows_value(patch_size: int,
                                                                                   pixel: tuple[int, int]) -> None:
    clear = np.ones((2, 4, 24, 24), dtype=bool)
    clear[0, 1, pixel[0], pixel[1]] = False  # one pixel of 3 dates in a window of 4
    clear[1, 2, pixel[0], pixel[1]] = clear[1, 0, 12, 6] = False  # and with a second one in the middle
    features = np.random.default_rng(8).normal(size=(*clear.shape, 2)).astype(np.float32)
    calls: list[tuple[int, ...]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        calls.append(sequences.shape)
        return _toy_head(sequences)

    scores, _ = combine_clear(head, features, clear, 3, 1, patch_size=patch_size)
    expected, _ = _per_pattern(_toy_head, features, clear, 1)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)
    patches = [shape for shape in calls if shape[2:4] == (patch_size, patch_size)]
    assert sum(shape[0] for shape in patches) == 3 and {shape[1] for shape in patches} == {3}
    assert sorted(shape[:2] for shape in calls if shape[2:4] == (24, 24)) == [(2, 4)]


def test_more_items_than_windows_go_in_calls_of_the_batch_size_and_powers_of_two() -> None:
    clear = np.ones((3, 4, 8, 8), dtype=bool)
    for date in range(4):  # rows 0-3: one date cloudy each, four patterns of 3 dates
        clear[:, date, date] = False
    clear[:, [0, 1], 4] = clear[:, [2, 3], 5] = clear[:, [0, 2], 6] = False  # rows 4-6: three patterns of 2
    clear[0, [1, 3], 7] = False  # row 7: all dates clear, except in window 0 (a fourth pattern of 2 there)
    features = np.random.default_rng(5).normal(size=(*clear.shape, 2)).astype(np.float32)
    sizes: list[tuple[int, int]] = []

    def head(sequences: np.ndarray) -> np.ndarray:
        sizes.append(sequences.shape[:2])
        return _toy_head(sequences)

    scores, _ = combine_clear(head, features, clear, 3, 1)
    np.testing.assert_allclose(scores, _per_pattern(_toy_head, features, clear, 1)[0], rtol=0, atol=1e-6)
    # 10 items of 2 dates, 12 of 3, 2 of 4: calls of the batch size (3), the rest in powers of two, no padding
    assert sizes == [(3, 2), (3, 2), (3, 2), (1, 2), (3, 3), (3, 3), (3, 3), (3, 3), (2, 4)]


@pytest.mark.parametrize(("count", "largest"), [(0, 4), (1, 4), (7, 4), (13, 192), (174, 192), (400, 192), (5, 6)])
def test_chunks_cover_every_item_once_in_few_sizes(count: int, largest: int) -> None:
    chunks = _chunks(count, largest)
    assert [start for start, _ in chunks] == list(np.cumsum([0] + [size for _, size in chunks])[:-1])
    assert sum(size for _, size in chunks) == count
    assert all(size == largest or (size < largest and size & (size - 1) == 0) for _, size in chunks)


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
