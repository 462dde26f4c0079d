"""Scores of predicted class maps against the ground truth: accuracy, kappa, F1, confusion matrices.

Pure numpy, no Keras and no files: the scoring rules of the paper in one place. Pixels whose
ground truth is the unclassifiable class (or 0, outside the study area) are removed before
scoring; predictions of a class outside the scored labels count as errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def score(y_true: np.ndarray, y_pred: np.ndarray, class_ids: Sequence[int], class_names: Sequence[str],
          unclassifiable_id: int) -> dict[str, Any]:
    """Score predicted class ids against the ground truth.

    Pixels whose ground truth is ``unclassifiable_id`` or 0 are removed first. A prediction
    of a class outside the scored labels (for example the unclassifiable class) counts as an
    error: it lowers the accuracy, kappa and the recall of the true class, and it is absent
    from the confusion matrix columns, whose rows are normalised by the class support.
    Averages are support-weighted; a ratio with a zero denominator is 0.

    Args:
        y_true: Ground-truth class ids, any shape.
        y_pred: Predicted class ids, the same shape.
        class_ids: Every class id of the class table (in table order).
        class_names: The names of ``class_ids``, in the same order.
        unclassifiable_id: The class removed before scoring.

    Returns:
        ``overall_accuracy``, ``kappa``, ``f1_weighted``, ``precision_weighted``,
        ``recall_weighted``, ``jaccard_weighted``, ``per_class`` (name -> f1, precision,
        recall, jaccard, support), ``confusion_matrix`` (rows: truth, columns: prediction),
        ``confusion_matrix_normalised``, ``labels`` (the scored class ids) and ``n_pixels``.

    Raises:
        ValueError: If the shapes differ, the names do not match the ids, no pixel is left,
            or the ground truth holds an id outside the class table.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in size: {y_true.size} and {y_pred.size}")
    if len(class_ids) != len(class_names):
        raise ValueError("class_ids and class_names differ in length")
    pairs = [(int(i), str(n)) for i, n in zip(class_ids, class_names, strict=True) if int(i) != unclassifiable_id]
    labels = np.array([i for i, _ in pairs], dtype=np.int64)
    names = [n for _, n in pairs]

    keep = (y_true != unclassifiable_id) & (y_true != 0)
    truth = y_true[keep].astype(np.int64)
    pred = y_pred[keep].astype(np.int64)
    n = int(truth.size)
    if n == 0:
        raise ValueError("no pixel left to score after removing the unclassifiable and outside pixels")
    if truth.min() < 0 or pred.min() < 0:
        raise ValueError("class ids must not be negative")
    size = int(max(labels.max(), truth.max(), pred.max(), unclassifiable_id)) + 1
    unknown = np.setdiff1d(np.unique(truth), labels)
    if unknown.size:
        raise ValueError(f"ground truth holds ids outside the class table: {unknown.tolist()}")

    full = np.bincount(truth * size + pred, minlength=size * size).reshape(size, size).astype(np.int64)
    support = full.sum(axis=1)  # true pixels per id
    predicted = full.sum(axis=0)  # predicted pixels per id
    hits = np.diag(full)

    overall = float(hits.sum() / n)
    expected = float((support.astype(np.float64) * predicted).sum() / (float(n) * n))
    kappa = float((overall - expected) / (1.0 - expected)) if expected < 1.0 else 0.0

    tp, sup, pre = hits[labels], support[labels], predicted[labels]
    precision = _ratio(tp, pre)
    recall = _ratio(tp, sup)
    f1 = _ratio(2 * tp, sup + pre)
    jaccard = _ratio(tp, sup + pre - tp)
    weights = sup / sup.sum()

    matrix = full[np.ix_(labels, labels)]
    normalised = _ratio(matrix, sup[:, np.newaxis].repeat(len(labels), axis=1))
    return {
        "overall_accuracy": overall,
        "kappa": kappa,
        "f1_weighted": float(weights @ f1),
        "precision_weighted": float(weights @ precision),
        "recall_weighted": float(weights @ recall),
        "jaccard_weighted": float(weights @ jaccard),
        "per_class": {
            name: {"f1": float(f1[k]), "precision": float(precision[k]), "recall": float(recall[k]),
                   "jaccard": float(jaccard[k]), "support": int(sup[k])}
            for k, name in enumerate(names)
        },
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalised": normalised.tolist(),
        "labels": labels.tolist(),
        "n_pixels": n,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator`` as float64, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
