"""Change detection against the ground truth, with robustness over several date combinations.

These robustness measures are this project's definitions (the article's exact formulas are
not known). For every evaluated pixel (GT class 1..n except the unclassifiable class, and a
class in every map), compare the class maps M_1..M_K of the K date combinations with the GT:

* **stable**: every map equals the GT;
* **robust change**: every map agrees on one class that differs from the GT (a candidate
  actual land-cover change, or a GT error);
* **unstable**: the maps disagree (the result depends on the images chosen: a misclassification).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def score_against_true_changes(result: ChangeResult, true_change: np.ndarray) -> dict:
    """Precision, recall and F1 of robust change against known changes, on the evaluated pixels."""
    true = true_change & result.evaluated
    hits = int((result.robust_change & true).sum())
    precision = _share(hits, int(result.robust_change.sum()))
    recall = _share(hits, int(true.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_change_pixels": int(true.sum()),
            "robust_change_pixels": int(result.robust_change.sum()), "hits": hits}
