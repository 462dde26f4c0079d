"""Class-weighted per-pixel categorical cross-entropy of the original study.

Class weights are inverse pixel frequencies normalised to sum to 1000; the unclassifiable
class gets weight 0, so tiles that contain such pixels can stay in the training set without
teaching the model anything about them. Label 0 (outside the study area) is encoded as an
all-zero one-hot vector and contributes nothing either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from helpers.config import Config
from helpers.errors import ConfigError

WEIGHT_SUM = 1000.0
"""The weights of the counted classes sum to this value (as in the original)."""


def class_weights_from_counts(counts: Sequence[int | None]) -> np.ndarray:
    """Loss weights from class pixel counts: ``w_c = (1/n_c) / sum_j(1/n_j) * 1000``.

    Args:
        counts: Pixel count of each class in channel order; None for a class that must not
            contribute to the loss (weight 0).

    Returns:
        float32 array with one weight per entry of ``counts``.

    Raises:
        ValueError: If no class has a count or a count is not positive.
    """
    present = [n for n in counts if n is not None]
    if not present:
        raise ValueError("at least one class needs a pixel count")
    if any(n <= 0 for n in present):
        raise ValueError(f"pixel counts must be positive, got {list(counts)}")
    total = math.fsum(1.0 / n for n in present)
    weights = [0.0 if n is None else (1.0 / n) / total * WEIGHT_SUM for n in counts]
    return np.asarray(weights, dtype=np.float32)


def class_weights(config: Config) -> np.ndarray:
    """Loss weights of a study area's classes, in the order of their ids.

    Channel ``c - 1`` of the one-hot labels and of the model output is class ``c``, so the
    class ids must be 1..n. The unclassifiable class gets weight 0 (whatever its count).

    Args:
        config: The study-area configuration (class table with pixel counts).

    Returns:
        float32 array of n weights; entry ``c - 1`` belongs to class id ``c``.

    Raises:
        ConfigError: If the class ids are not 1..n.
    """
    classes = sorted(config.classes, key=lambda c: c.id)
    ids = [c.id for c in classes]
    if ids != list(range(1, len(ids) + 1)):
        reason = f"class ids must be 1..{len(ids)} (one output channel each), got {ids}"
        raise ConfigError(config.source, "classes", reason)
    counts = [None if c.id == config.unclassifiable_id else c.pixel_count for c in classes]
    try:
        return class_weights_from_counts(counts)
    except ValueError as error:
        raise ConfigError(config.source, "classes", str(error)) from None


@keras.saving.register_keras_serializable(package="landcover")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Per-pixel categorical cross-entropy with one weight per class.

    Behaves like ``segmentation_models.losses.CategoricalCELoss(class_weights=w)``, the
    original's loss: the predictions are renormalised to sum to 1 over the class axis and
    clipped to ``[eps, 1 - eps]``; the loss of a sample is
    ``-mean_{h,w,c}(y_true * log(y_pred) * w)``, and Keras' default ``sum_over_batch_size``
    reduction averages the samples (so the total is the mean over all elements, as the
    original). Unlike the original, a prediction that is all zeros does not give NaN.

    Args:
        class_weights: One weight per class channel (0 switches a class off).
        name: Name of the loss.
        **kwargs: Passed to ``keras.losses.Loss`` (``reduction``, ``dtype``).

    Inputs:
        y_true: One-hot labels ``(batch, ..., n_classes)``; label 0 is an all-zero vector.
        y_pred: Class probabilities of the same shape.
    """

    def __init__(
        self, class_weights: Sequence[float], name: str = "weighted_categorical_crossentropy", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        weights = [float(w) for w in class_weights]
        if not weights or not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError(f"class weights must be a non-empty list of finite values >= 0, got {weights}")
        self.class_weights = weights

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample loss.

        Args:
            y_true: One-hot labels ``(batch, ..., n_classes)``.
            y_pred: Predicted probabilities ``(batch, ..., n_classes)``.

        Returns:
            Tensor ``(batch,)``: the weighted cross-entropy averaged over pixels and classes.
        """
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        n_classes = y_pred.shape[-1]
        if n_classes is not None and n_classes != len(self.class_weights):
            raise ValueError(f"the loss has {len(self.class_weights)} class weights but the model {n_classes} classes")
        eps = keras.config.epsilon()
        weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
        total = ops.sum(y_pred, axis=-1, keepdims=True)
        probabilities = ops.clip(y_pred / ops.maximum(total, eps), eps, 1.0 - eps)
        terms = y_true * ops.log(probabilities) * weights
        return -ops.mean(terms, axis=tuple(range(1, len(y_pred.shape))))

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration (the weights as a list of floats)."""
        config = super().get_config()
        config["class_weights"] = list(self.class_weights)
        return config
