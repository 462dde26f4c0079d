"""Robustness measures on hand-made class maps."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.predict.change_detection import (
    CHANGE_ID,
    UNSTABLE_ID,
    change_map,
    compare_maps,
    compare_periods,
    period_change_map,
    score_against_true_changes,
    summarise,
    summarise_periods,
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


# Two periods without GT: two maps of A, three of B, hand-checked pixel by pixel below.
A1 = np.array([[2, 2, 5, 5, 3],
               [5, 1, 0, 4, 0],
               [3, 3, 5, 5, 2]], dtype=np.uint8)
A2 = np.array([[2, 2, 5, 5, 3],
               [5, 2, 4, 4, 0],
               [3, 3, 5, 5, 2]], dtype=np.uint8)
B1 = np.array([[2, 5, 2, 2, 3],
               [4, 4, 4, 4, 0],
               [3, 2, 5, 3, 0]], dtype=np.uint8)
B2 = np.array([[2, 5, 2, 2, 3],
               [4, 4, 4, 0, 0],
               [3, 2, 5, 3, 2]], dtype=np.uint8)
B3 = np.array([[2, 5, 2, 2, 1],
               [4, 4, 4, 4, 0],
               [3, 2, 5, 3, 2]], dtype=np.uint8)
# (0,0) stable 2; (0,1) robust 2->5; (0,2) robust 5->2; (0,3) robust 5->2; (0,4) unstable (B disagrees);
# (1,0) robust 5->4; (1,1) unstable (A disagrees); (1,2) excluded (A1 not classified); (1,3) excluded
# (B2); (1,4) outside (no map classifies it); (2,0) stable 3; (2,1) robust 3->2; (2,2) stable 5;
# (2,3) robust 5->3; (2,4) excluded (B1).
STABLE = {(0, 0), (2, 0), (2, 2)}
ROBUST = {(0, 1), (0, 2), (0, 3), (1, 0), (2, 1), (2, 3)}
UNSTABLE = {(0, 4), (1, 1)}
EXCLUDED = {(1, 2), (1, 3), (2, 4)}
NAMES = ["B", "G", "F", "S", "A", "I", "W", "U"]


def _pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in np.argwhere(mask)}


def test_each_period_category_is_counted_right() -> None:
    result = compare_periods([A1, A2], iter([B1, B2, B3]))  # an iterator: maps read one at a time
    assert _pixels(result.stable) == STABLE
    assert _pixels(result.robust_change) == ROBUST
    assert _pixels(result.unstable) == UNSTABLE
    assert _pixels(result.excluded) == EXCLUDED
    assert _pixels(~result.inside) == {(1, 4)}
    assert result.evaluated.sum() == len(STABLE | ROBUST | UNSTABLE) == 11
    assert {(r, c): (int(result.from_class[r, c]), int(result.to_class[r, c])) for r, c in ROBUST} == {
        (0, 1): (2, 5), (0, 2): (5, 2), (0, 3): (5, 2), (1, 0): (5, 4), (2, 1): (3, 2), (2, 3): (5, 3)}


def test_period_change_map_codes() -> None:
    values = period_change_map(compare_periods([A1, A2], [B1, B2, B3]))
    assert _pixels(values == CHANGE_ID) == ROBUST and _pixels(values == UNSTABLE_ID) == UNSTABLE
    assert values[0, 0] == 2 and values[2, 0] == 3 and values[2, 2] == 5
    assert _pixels(values == 0) == EXCLUDED | {(1, 4)}


def test_from_to_matrix_in_pixels_and_hectares() -> None:
    result = compare_periods([A1, A2], [B1, B2, B3])
    report = summarise_periods(result, list(range(1, 9)), NAMES, pixel_area_m2=20.0 * 20.0)  # 0.04 ha a pixel
    overall = report["overall"]
    assert {k: overall[k] for k in ("inside", "evaluated", "excluded", "stable", "robust_change", "unstable")} == {
        "inside": 14, "evaluated": 11, "excluded": 3, "stable": 3, "robust_change": 6, "unstable": 2}
    assert overall["hectares"]["robust_change"] == pytest.approx(0.24)
    assert overall["hectares"]["excluded"] == pytest.approx(0.12)
    assert overall["shares"] == pytest.approx({"stable": 3 / 11, "robust_change": 6 / 11, "unstable": 2 / 11})
    matrix = {a: {b: cell["pixels"] for b, cell in row.items()} for a, row in report["change_matrix"].items()}
    assert matrix == {"G": {"A": 1}, "F": {"G": 1}, "A": {"G": 2, "S": 1, "F": 1}}
    assert report["change_matrix"]["A"]["G"]["hectares"] == pytest.approx(0.08)
    # per period-A class: A = Farmland (5) at (0,2), (0,3), (1,0), (2,2), (2,3): 1 stable, 4 robust
    assert report["per_class_a"]["A"] == pytest.approx({"n_pixels": 5, "stable": 0.2, "robust_change": 0.8,
                                                        "unstable": 0.0})
    assert "B" not in report["per_class_a"]  # (1,1) is 1 in A1 but 2 in A2: A has no common class there


def test_a_single_map_per_period_has_no_unstable_pixels() -> None:
    result = compare_periods([A1], [B1])
    assert not result.unstable.any()
    expected = (A1 != 0) & (B1 != 0) & (A1 != B1)
    np.testing.assert_array_equal(result.robust_change, expected)


def test_period_scoring_uses_the_evaluated_pixels() -> None:
    result = compare_periods([A1, A2], [B1, B2, B3])
    true = np.zeros(A1.shape, dtype=bool)
    true[0, 1] = true[0, 4] = true[1, 2] = True  # a hit, a miss (unstable), an excluded pixel
    scores = score_against_true_changes(result, true)
    assert scores["hits"] == 1 and scores["true_change_pixels"] == 2 and scores["robust_change_pixels"] == 6
    assert scores["precision"] == pytest.approx(1 / 6) and scores["recall"] == pytest.approx(0.5)


@pytest.mark.parametrize(("maps_a", "maps_b", "match"), [
    ([], [B1], "period A: no class maps"),
    ([A1], [], "period B: no class maps"),
    ([A1, A1[:2]], [B1], r"period A: maps of shapes \(3, 5\) and \(2, 5\)"),
    ([A1], [B1[:, :4]], "differ in shape"),
])
def test_period_maps_that_cannot_be_compared(maps_a: list, maps_b: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compare_periods(maps_a, maps_b)
