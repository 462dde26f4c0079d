"""Change detection against the ground truth, with robustness over several date combinations.

These robustness measures are this project's definitions (the article's exact formulas are
not known). For every evaluated pixel (GT class 1..n except the unclassifiable class, and a
class in every map), compare the class maps M_1..M_K of the K date combinations with the GT:

* **stable**: every map equals the GT;
* **robust change**: every map agrees on one class that differs from the GT (a candidate
  actual land-cover change, or a GT error);
* **unstable**: the maps disagree (the result depends on the images chosen: a misclassification).

Without ground truth, two periods are compared instead (:func:`compare_periods`): the maps
A_1..A_I of period A's combinations and B_1..B_J of period B's, all classified with one model.
A pixel classified in every map is

* **stable** where every map of both periods agrees;
* **robust change** where all maps of A agree on class a and all maps of B on class b != a
  (counted in a from-to matrix a -> b, in pixels and hectares);
* **unstable** otherwise (a period's maps disagree: no change can be claimed).

A pixel inside the classified area (some map classifies it) but not classified in some map
(0, e.g. under clouds) is **excluded** and counted; a pixel no map classifies is outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CHANGE_ID = 9
"""Class id of "Change to Ground Truth" in change maps (the original's colour dictionary)."""
UNSTABLE_ID = 10
"""Class id of unstable pixels in change maps (ours)."""
CHANGE_COLOUR = "#ff00ff"
UNSTABLE_COLOUR = "#7f7f7f"


@dataclass
class ChangeResult:
    """Per-pixel categories and the maps' consensus.

    Attributes:
        evaluated: Pixels taking part (GT class 1..n except unclassifiable, every map classified).
        stable: Every map equals the GT.
        robust_change: Every map agrees on one class that is not the GT's.
        unstable: The maps disagree.
        consensus: The maps' common class where they agree, else 0.
    """

    evaluated: np.ndarray
    stable: np.ndarray
    robust_change: np.ndarray
    unstable: np.ndarray
    consensus: np.ndarray


def compare_maps(maps: Sequence[np.ndarray], gt: np.ndarray, unclassifiable_id: int) -> ChangeResult:
    """Classify every pixel as stable, robust change or unstable (see the module docstring).

    Args:
        maps: Class maps of the date combinations (0 = not classified).
        gt: Ground-truth class raster (0 = outside).
        unclassifiable_id: Id of the excluded class (never evaluated).

    Returns:
        The boolean category masks and the consensus class.
    """
    if not maps:
        raise ValueError("no class maps to compare")
    stack = np.stack(maps)
    first = stack[0]
    agree = (stack == first).all(axis=0)
    evaluated = (gt != 0) & (gt != unclassifiable_id) & (stack != 0).all(axis=0)
    stable = evaluated & agree & (first == gt)
    robust = evaluated & agree & (first != gt)
    unstable = evaluated & ~agree
    return ChangeResult(evaluated, stable, robust, unstable, np.where(agree, first, 0).astype(np.uint8))


def change_map(result: ChangeResult, gt: np.ndarray) -> np.ndarray:
    """uint8 map: GT class where stable, 9 where robust change, 10 where unstable, 0 elsewhere."""
    out = np.zeros(gt.shape, dtype=np.uint8)
    out[result.stable] = gt[result.stable]
    out[result.robust_change] = CHANGE_ID
    out[result.unstable] = UNSTABLE_ID
    return out


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def summarise(result: ChangeResult, gt: np.ndarray, class_ids: Sequence[int], class_names: Sequence[str]) -> dict:
    """Shares of the categories overall and per GT class, and the change matrix.

    Returns:
        ``overall`` {n_pixels, stable, robust_change, unstable} (shares), ``per_class`` {name: the
        same}, ``change_matrix`` {from GT class name: {to class name: pixels}} of robust changes.
    """
    names = dict(zip(class_ids, class_names, strict=True))

    def shares(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        return {"n_pixels": n,
                "stable": _share(int((result.stable & mask).sum()), n),
                "robust_change": _share(int((result.robust_change & mask).sum()), n),
                "unstable": _share(int((result.unstable & mask).sum()), n)}

    per_class = {names[c]: shares(result.evaluated & (gt == c)) for c in class_ids
                 if (result.evaluated & (gt == c)).any()}
    size = max(max(class_ids), int(result.consensus.max()), int(gt.max())) + 1
    pairs = np.bincount(gt[result.robust_change].astype(np.int64) * size
                        + result.consensus[result.robust_change].astype(np.int64), minlength=size * size)
    matrix = pairs.reshape(size, size)
    change_matrix = {names[a]: {names.get(b, str(b)): int(matrix[a, b]) for b in range(size) if matrix[a, b]}
                     for a in class_ids if matrix[a].any()}
    return {"overall": shares(result.evaluated), "per_class": per_class, "change_matrix": change_matrix}


@dataclass
class PeriodChangeResult:
    """Per-pixel categories of a two-period comparison and each period's consensus.

    Attributes:
        inside: Pixels some map classifies (the classified area).
        evaluated: Pixels every map of both periods classifies.
        excluded: Inside, but not classified in some map.
        stable: Every map of both periods agrees.
        robust_change: All maps of A agree on one class, all of B on another.
        unstable: Evaluated, but the maps of A or those of B disagree.
        from_class: Period A's common class where its maps agree (and every map classifies), else 0.
        to_class: Period B's common class likewise.
    """

    inside: np.ndarray
    evaluated: np.ndarray
    excluded: np.ndarray
    stable: np.ndarray
    robust_change: np.ndarray
    unstable: np.ndarray
    from_class: np.ndarray
    to_class: np.ndarray


def _consensus(maps: Iterable[np.ndarray], what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One period's maps, read one at a time: common class (0 where they disagree), agreement, all/any classified."""
    first = agree = classified = any_classified = None
    for values in maps:
        if first is None:
            first = np.asarray(values)
            agree = np.ones(first.shape, dtype=bool)
            classified = first != 0
            any_classified = classified.copy()
            continue
        if values.shape != first.shape:
            raise ValueError(f"{what}: maps of shapes {first.shape} and {values.shape} cannot be compared")
        agree &= values == first
        nonzero = values != 0
        classified &= nonzero
        any_classified |= nonzero
    if first is None:
        raise ValueError(f"{what}: no class maps to compare")
    return np.where(agree, first, 0).astype(np.uint8), agree, classified, any_classified


def compare_periods(maps_a: Iterable[np.ndarray], maps_b: Iterable[np.ndarray]) -> PeriodChangeResult:
    """Classify every pixel as stable, robust change, unstable or excluded (see the module docstring).

    Args:
        maps_a: Class maps of period A's combinations (0 = not classified); an iterator is read
            one map at a time, so that memory stays at a few maps whatever their number.
        maps_b: Class maps of period B's combinations.

    Returns:
        The boolean category masks and both periods' common classes.

    Raises:
        ValueError: A period without maps, or maps of different shapes.
    """
    from_class, agree_a, classified_a, any_a = _consensus(maps_a, "period A")
    to_class, agree_b, classified_b, any_b = _consensus(maps_b, "period B")
    if from_class.shape != to_class.shape:
        raise ValueError(f"period A maps {from_class.shape} and period B maps {to_class.shape} differ in shape")
    inside = any_a | any_b
    evaluated = classified_a & classified_b
    both_agree = evaluated & agree_a & agree_b
    stable = both_agree & (from_class == to_class)
    robust = both_agree & (from_class != to_class)
    from_class[~evaluated] = 0
    to_class[~evaluated] = 0
    return PeriodChangeResult(inside, evaluated, inside & ~evaluated, stable, robust, evaluated & ~both_agree,
                              from_class, to_class)


def period_change_map(result: PeriodChangeResult) -> np.ndarray:
    """uint8 map: the common class where stable, 9 where robust change, 10 where unstable, 0 elsewhere.

    The same codes as the ground-truth mode's :func:`change_map`, with "stable" meaning both
    periods' class rather than the GT's.
    """
    out = np.zeros(result.evaluated.shape, dtype=np.uint8)
    out[result.stable] = result.to_class[result.stable]
    out[result.robust_change] = CHANGE_ID
    out[result.unstable] = UNSTABLE_ID
    return out


def summarise_periods(result: PeriodChangeResult, class_ids: Sequence[int], class_names: Sequence[str],
                      pixel_area_m2: float) -> dict:
    """Counts, shares and hectares of the categories, per period-A class, and the from-to matrix.

    Args:
        result: The comparison.
        class_ids: The model's class ids (a map value outside them is named by its number).
        class_names: Their names.
        pixel_area_m2: Area of one pixel (from the maps' transform).

    Returns:
        ``overall`` {inside, evaluated, excluded, stable, robust_change, unstable: pixels; the
        same in hectares under ``hectares``; ``shares`` of the evaluated pixels},
        ``per_class_a`` {period-A class name: {n_pixels, stable, robust_change, unstable} shares
        of the pixels all A maps call that class}, ``change_matrix`` {from name: {to name:
        {pixels, hectares}}} of robust changes.
    """
    names = dict(zip(class_ids, class_names, strict=True))
    hectares = pixel_area_m2 / 10_000.0
    counts = {key: int(getattr(result, key).sum())
              for key in ("inside", "evaluated", "excluded", "stable", "robust_change", "unstable")}
    evaluated = counts["evaluated"]
    overall = {**counts, "hectares": {key: n * hectares for key, n in counts.items()},
               "shares": {key: _share(counts[key], evaluated) for key in ("stable", "robust_change", "unstable")}}
    size = max(max(class_ids), int(result.from_class.max()), int(result.to_class.max())) + 1
    agreed_a = result.evaluated & (result.from_class != 0)
    per_a = np.bincount(result.from_class[agreed_a], minlength=size)
    per_class = {}
    for c in np.flatnonzero(per_a):
        mask = agreed_a & (result.from_class == c)
        n = int(per_a[c])
        per_class[names.get(int(c), str(c))] = {
            "n_pixels": n, "stable": _share(int((result.stable & mask).sum()), n),
            "robust_change": _share(int((result.robust_change & mask).sum()), n),
            "unstable": _share(int((result.unstable & mask).sum()), n)}
    pairs = np.bincount(result.from_class[result.robust_change].astype(np.int64) * size
                        + result.to_class[result.robust_change], minlength=size * size).reshape(size, size)
    matrix = {names.get(a, str(a)): {names.get(b, str(b)): {"pixels": int(pairs[a, b]),
                                                            "hectares": int(pairs[a, b]) * hectares}
                                     for b in range(size) if pairs[a, b]}
              for a in range(size) if pairs[a].any()}
    return {"overall": overall, "per_class_a": per_class, "change_matrix": matrix}


def score_against_true_changes(result: ChangeResult | PeriodChangeResult, true_change: np.ndarray,
                               evaluated: np.ndarray | None = None) -> dict:
    """Precision, recall and F1 of robust change against known changes, on the evaluated pixels.

    Args:
        result: A comparison with the GT or between two periods.
        true_change: Where the land cover is known to have changed.
        evaluated: Score on these pixels only (default: the result's evaluated pixels), e.g. the
            ground-truth mode's pixels, to compare the two modes like for like.
    """
    where = result.evaluated if evaluated is None else evaluated & result.evaluated
    true = true_change & where
    robust = result.robust_change & where
    hits = int((robust & true).sum())
    precision = _share(hits, int(robust.sum()))
    recall = _share(hits, int(true.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_change_pixels": int(true.sum()),
            "robust_change_pixels": int(robust.sum()), "hits": hits}
