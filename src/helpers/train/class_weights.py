"""Class weights from the class table's pixel counts, without a deep-learning backend.

The deep models' loss (:mod:`helpers.train.losses`) and the random-forest baseline
(:mod:`helpers.train.forest`) weight the classes alike: inverse pixel frequencies normalised
to sum to 1000, the unclassifiable class 0. Kept apart from the Keras loss so that a forest
trains without importing TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from helpers.core.config import Config
from helpers.core.errors import ConfigError

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
