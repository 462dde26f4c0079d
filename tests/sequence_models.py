"""A reference for the sequence model's split into per-date logits and per-sequence heads.

The scene pass never runs a whole FCN + ConvLSTM at the window size: it uses the two parts of
:func:`helpers.train.models.split_sequence_model`. The tests compare those parts with the
whole model built at the window size through the production builders, with the weights copied.
"""

from __future__ import annotations

import keras

from helpers.train.models import build_fcn_lstm, build_unet, model_bands, model_classes

FULL_WIDTH_FILTERS = 64


def sequence_model_at(model: keras.Model, tile_size: int, timesteps: int | None = None) -> keras.Model:
    """The same FCN + ConvLSTM built at another window size (and number of dates), with a copy of its weights.

    Args:
        model: A model from ``build_fcn_lstm(build_unet(...), ...)``.
        tile_size: Side of the new square input (a multiple of 32).
        timesteps: Dates per sequence (default: the model's).
    """
    timesteps = model.inputs[0].shape[1] if timesteps is None else timesteps
    width = model.weights[0].shape[-1] / FULL_WIDTH_FILTERS  # the first VGG19 convolution has 64 x width filters
    fcn = build_unet(model_bands(model), model_classes(model), width=width, tile_size=tile_size)
    copy = build_fcn_lstm(fcn, timesteps, tile_size)
    copy.set_weights(model.get_weights())
    return copy
