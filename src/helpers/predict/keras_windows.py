"""A Keras run in the scene pass of classify.py, as a :class:`~helpers.predict.window_models.WindowModel`.

* An FCN is one per-date model: ``encode`` gives each date's softmax, ``combine`` their mean
  over a combination's dates.
* An FCN + ConvLSTM is split into its per-date FCN logits (``encode``, once per date for all
  the combinations that hold it) and its ConvLSTM head (``combine``, per combination). With
  cloud masks the head either steps over each pixel's clear dates in one call
  (``sequence_masking = "recurrent"``, :mod:`helpers.predict.masked_recurrence`) or runs once
  per pattern of clear dates (``"per_pattern"``, :func:`helpers.predict.clear_dates.combine_clear`,
  on whole windows and on square patches of :data:`HEAD_PATCH_SIZE`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.core.config_schema import SEQUENCE_MASKING
from helpers.predict.masked_recurrence import masked_head_for
from helpers.predict.window_models import ArrayFn, KerasParts, WindowModel, renormalised

if TYPE_CHECKING:
    from helpers.train.normalisation import Normaliser

HEAD_PATCH_SIZE = 64
"""Side of the square patches a sequence model's head runs on with ``per_pattern`` cloud masking (px).

A pattern of clear dates that fills a small part of a window runs on such patches around its
pixels (:func:`helpers.predict.clear_dates.combine_clear`); one size: one more traced head per
sequence length. 64 px is large enough that a patch of an 8-date sequence keeps a valid part of
48 px (8 px on each side depend on its edges), and small enough that a 320-px window of the
fast mode holds 25 of them: a small cloud costs a few patches instead of a window.
"""


def _keras_predict(model: Any) -> ArrayFn:
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch))

    return predict


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's warning about retraced predict functions.

    With ``per_pattern`` cloud masking a sequence model's head is called on a few batch sizes per
    sequence length (powers of two, :mod:`helpers.predict.clear_dates`), each traced once;
    TensorFlow warns about that as if it were a mistake, in the middle of the classification's report.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_expected_retracing() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _ExpectedRetracing) for f in logger.filters):
        logger.addFilter(_ExpectedRetracing())


def keras_window_model(model: Any, window: int, normaliser: Normaliser,
                       sequence_masking: str = SEQUENCE_MASKING[0]) -> WindowModel:
    """A saved FCN or FCN + ConvLSTM as a :class:`WindowModel` for ``window``-px windows.

    A sequence model is split into its per-date FCN logits and its ConvLSTM head
    (:func:`helpers.train.models.split_sequence_model`), so that a date shared by several
    combinations goes through the FCN once.

    Args:
        model: The Keras model.
        window: Side of the square windows.
        normaliser: The run's band standardisation.
        sequence_masking: How a sequence model takes cloud masks (:data:`SEQUENCE_MASKING`):
            ``recurrent``, one masked head call (fused on the device with the rest of the pass);
            ``per_pattern``, one head call per pattern of clear dates, on whole windows and on
            square patches of :data:`HEAD_PATCH_SIZE` (when smaller than the window).

    Raises:
        ValueError: For an unknown ``sequence_masking``; from the combination, on inputs that
            are not square.
    """
    from helpers.train.models import LSTM_LAYER, is_sequence_model, split_sequence_model

    if sequence_masking not in SEQUENCE_MASKING:
        raise ValueError(f"unknown sequence masking '{sequence_masking}' (use one of {SEQUENCE_MASKING})")
    if not is_sequence_model(model):
        return WindowModel.fcn(_keras_predict(model), normaliser, KerasParts(model))
    logits, head_for = split_sequence_model(model, window)

    def combine(features: np.ndarray) -> np.ndarray:
        rows, cols = features.shape[2:4]
        if rows != cols:
            raise ValueError(f"the ConvLSTM head takes square inputs, not {rows}x{cols}")
        return renormalised(head_for(features.shape[1], rows).predict_on_batch(features))

    if sequence_masking == "per_pattern":
        _quiet_expected_retracing()
        return WindowModel(_keras_predict(logits), combine, normaliser, keras=KerasParts(logits, head_for),
                           patch_size=HEAD_PATCH_SIZE if window > HEAD_PATCH_SIZE else 0)
    masked_head = masked_head_for(head_for(1).get_layer(LSTM_LAYER))  # cells built at the window size

    def combine_masked(features: np.ndarray, clear: np.ndarray) -> np.ndarray:
        return renormalised(masked_head(features.shape[1]).predict_on_batch([features, clear]))

    return WindowModel(_keras_predict(logits), combine, normaliser, keras=KerasParts(logits, head_for, masked_head),
                       combine_masked=combine_masked)
