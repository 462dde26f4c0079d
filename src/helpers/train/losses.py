"""Class-weighted per-pixel categorical cross-entropy of the original study, and a masked accuracy.

Class weights are inverse pixel frequencies normalised to sum to 1000; the unclassifiable
class gets weight 0, so tiles that contain such pixels can stay in the training set without
teaching the model anything about them. Label 0 (outside the study area) is encoded as an
all-zero one-hot vector and contributes nothing either.

The original monitored Keras' ``categorical_accuracy``, which also scores the pixels the loss
ignores (label 0 counts as class 1 there, and the unclassifiable class as any other), so it
rewards or punishes predictions nobody trains for. :class:`MaskedAccuracy` scores only the
labelled, classifiable pixels, as the test-split metrics do; on fully labelled data the two
agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from helpers.core.config import Config
from helpers.train import class_weights as _weights

# the loss's class weights (kept in a module of their own so that a random forest trains without Keras)
WEIGHT_SUM = _weights.WEIGHT_SUM
class_weights = _weights.class_weights
class_weights_from_counts = _weights.class_weights_from_counts


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


def ignored_channels(config: Config) -> list[int]:
    """Output channels that :class:`MaskedAccuracy` leaves out: the unclassifiable class's (``id - 1``)."""
    return [config.unclassifiable_id - 1]


@keras.saving.register_keras_serializable(package="landcover")
class MaskedAccuracy(keras.metrics.Metric):
    """Pixel accuracy over the labelled pixels of the classes the model is trained on.

    A pixel counts if its label is not 0 (outside the study area: an all-zero one-hot row)
    and its class channel is not one of ``ignored_channels`` (the unclassifiable class, whose
    loss weight is 0). The result is correct / counted pixels over everything seen since the
    last reset (0 when nothing was counted). With no such pixels it equals Keras'
    ``categorical_accuracy`` (equally sized tiles).

    Args:
        ignored_channels: Class channels (class id - 1) left out of the count.
        name: Name of the metric (the key in the training logs, ``val_`` prefixed for validation).
        dtype: Dtype of the counters.
    """

    def __init__(self, ignored_channels: Sequence[int] = (), name: str = "masked_accuracy",
                 dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        channels = [int(c) for c in ignored_channels]
        if any(c < 0 for c in channels):
            raise ValueError(f"ignored channels must be >= 0 (class id - 1), got {channels}")
        self.ignored_channels = channels
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.counted = self.add_variable(shape=(), initializer="zeros", name="counted")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add a batch.

        Args:
            y_true: One-hot labels ``(batch, ..., n_classes)``; label 0 is an all-zero vector.
            y_pred: Class scores of the same shape.
            sample_weight: Not supported (must be None): pixels are selected by their labels.
        """
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} takes no sample weights")
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        true_class = ops.argmax(y_true, axis=-1)
        keep = ops.max(y_true, axis=-1) > 0
        for channel in self.ignored_channels:
            keep = ops.logical_and(keep, ops.not_equal(true_class, channel))
        hits = ops.logical_and(keep, ops.equal(true_class, ops.argmax(y_pred, axis=-1)))
        self.correct.assign_add(ops.sum(ops.cast(hits, self.dtype)))
        self.counted.assign_add(ops.sum(ops.cast(keep, self.dtype)))

    def result(self) -> Any:
        """Correct / counted pixels (0 when no pixel was counted)."""
        return ops.divide_no_nan(self.correct, self.counted)

    def reset_state(self) -> None:
        """Forget every batch (Keras calls it at the start of each epoch and evaluation)."""
        self.correct.assign(0.0)
        self.counted.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration (name, dtype and the ignored channels)."""
        return {"name": self.name, "dtype": self.dtype, "ignored_channels": list(self.ignored_channels)}
