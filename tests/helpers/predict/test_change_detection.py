"""Robustness measures on hand-made class maps."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.predict.change_detection import (
    CHANGE_ID,
    UNSTABLE_ID,
    change_map,
    compare_maps,
    score_against_true_changes,
    summarise,
)

GT = np.array([[1, 1, 2, 2],
               [3, 3, 8, 0],
               [5, 5, 5, 7]], dtype=np.uint8)
MAP_A = np.array([[1, 2, 2, 5],
                  [3, 4, 5, 4],
                  [5, 2, 0, 7]], dtype=np.uint8)
MAP_B = np.array([[1, 2, 2, 3],
                  [3, 4, 5, 4],
                  [5, 2, 5, 1]], dtype=np.uint8)
# pixel by pixel: (0,0) stable, (0,1) robust 1->2, (0,2) stable, (0,3) unstable, (1,0) stable,
# (1,1) robust 3->4, (1,2) unclassifiable GT: not evaluated, (1,3) GT 0: not evaluated,
# (2,0) stable, (2,1) robust 5->2, (2,2) unclassified in one map: not evaluated, (2,3) unstable


def test_each_category_is_counted_right() -> None:
    result = compare_maps([MAP_A, MAP_B], GT, unclassifiable_id=8)
    assert result.evaluated.sum() == 9
    assert {tuple(p) for p in np.argwhere(result.stable)} == {(0, 0), (0, 2), (1, 0), (2, 0)}
    assert {tuple(p) for p in np.argwhere(result.robust_change)} == {(0, 1), (1, 1), (2, 1)}
    assert {tuple(p) for p in np.argwhere(result.unstable)} == {(0, 3), (2, 3)}


def test_class_9_exactly_where_all_maps_agree_on_another_class() -> None:
    result = compare_maps([MAP_A, MAP_B], GT, unclassifiable_id=8)
    values = change_map(result, GT)
    expected_change = (MAP_A == MAP_B) & (MAP_A != GT) & (GT != 0) & (GT != 8) & (MAP_A != 0)
    np.testing.assert_array_equal(values == CHANGE_ID, expected_change)
    assert values[0, 0] == 1 and values[0, 3] == UNSTABLE_ID and values[1, 2] == 0 and values[2, 2] == 0


def test_a_single_map_has_no_unstable_pixels() -> None:
    result = compare_maps([MAP_A], GT, unclassifiable_id=8)
    assert not result.unstable.any()
    assert {tuple(p) for p in np.argwhere(result.robust_change)} == {(0, 1), (0, 3), (1, 1), (2, 1)}


def test_shares_and_change_matrix() -> None:
    result = compare_maps([MAP_A, MAP_B], GT, unclassifiable_id=8)
    names = ["B", "G", "F", "S", "A", "I", "W"]
    report = summarise(result, GT, [1, 2, 3, 4, 5, 6, 7], names)
    assert report["overall"] == pytest.approx({"n_pixels": 9, "stable": 4 / 9, "robust_change": 3 / 9,
                                               "unstable": 2 / 9})
    assert report["per_class"]["B"] == pytest.approx({"n_pixels": 2, "stable": 0.5, "robust_change": 0.5,
                                                      "unstable": 0.0})
    assert report["per_class"]["A"]["n_pixels"] == 2  # (2,2) is not classified in map A
    assert report["change_matrix"] == {"B": {"G": 1}, "F": {"S": 1}, "A": {"G": 1}}


def test_scoring_against_true_changes() -> None:
    result = compare_maps([MAP_A, MAP_B], GT, unclassifiable_id=8)
    true = np.zeros(GT.shape, dtype=bool)
    true[0, 1] = true[2, 3] = true[1, 2] = True  # one hit, one miss (unstable), one not evaluated
    scores = score_against_true_changes(result, true)
    assert scores["hits"] == 1 and scores["true_change_pixels"] == 2 and scores["robust_change_pixels"] == 3
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
