"""Cloud masks in a sequence model: its ConvLSTM steps over each pixel's clear dates only.

The head of the FCN+ConvLSTM (:func:`helpers.train.models.build_fcn_lstm`) is a bidirectional
ConvLSTM: per date, every pixel's state is updated from its own and its 3x3 neighbours' inputs
and states. With cloud masks (``[clouds] sequence_masking = "recurrent"``, the default) the head
runs once on the whole window and sequence, and at a date where a pixel is cloudy

* its state (hidden and cell state, in both directions) is carried over unchanged, so its
  map is computed from its clear dates only, in chronological order;
* its input counts as zero for its neighbours' updates (as beyond the edge of an image, where
  the convolutions pad with zeros), so no cloud or shadow enters any pixel's map.

Where every pixel within ``t`` px of a pixel has the same clear dates (``t`` the number of dates),
this equals the head run on those dates alone (the ``per_pattern`` method,
:func:`helpers.predict.clear_dates.combine_clear`); within ``t`` px of a cloud edge the neighbours
contribute the states of their own clear dates instead of their cloudy inputs. With every date
clear it equals the head. It costs one head call per combination, like the pass without
masks, and it is a static graph: it is fused with the rest of the pass on the device
(:mod:`helpers.predict.device_batches`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def masked_head_for(head: Any) -> Callable[[int], Any]:
    """The masked form of a sequence model's head, per number of dates.

    Args:
        head: The built ``Bidirectional(ConvLSTM2D)`` head of a sequence model (merge mode
            ``ave``, last state only), with its weights; its cells are shared, not copied.

    Returns:
        ``masked_head(t)``: a Keras model ``[features (n, t, rows, cols, channels), clear bool
        (n, t, rows, cols)] -> (n, rows, cols, filters)``, built once per ``t``, for inputs of
        the size ``head`` was built at (its cells are called through Keras, which checks that).

    Raises:
        ValueError: If ``head`` is not such a layer.
    """
    import keras
    from keras import ops

    forward, backward = (getattr(head, name, None) for name in ("forward_layer", "backward_layer"))
    if (getattr(head, "merge_mode", None) != "ave" or forward is None or backward is None
            or forward.go_backwards or not backward.go_backwards
            or forward.return_sequences or backward.return_sequences):
        raise ValueError("the masked head needs a Bidirectional ConvLSTM head averaging the last states "
                         "of both directions (as build_fcn_lstm makes)")

    class MaskedConvLSTM(keras.layers.Layer):
        """Both directions of the head, each pixel's state updated on its clear dates only."""

        def __init__(self) -> None:
            super().__init__(name=f"{head.name}_masked", autocast=False)
            self.cells = (forward.cell, backward.cell)

        def call(self, features: Any, clear: Any) -> Any:
            steps = features.shape[1]
            features = ops.cast(features, forward.cell.compute_dtype)  # the cells' precision (mixed or not)
            none = ops.zeros_like(features[:, 0, :, :, :1])
            last = []
            for cell, order in zip(self.cells, (range(steps), reversed(range(steps))), strict=True):
                state = ops.repeat(none, cell.filters, axis=-1)
                hidden = cell_state = state
                for step in order:
                    here = ops.expand_dims(clear[:, step], -1)
                    inputs = ops.where(here, features[:, step], ops.zeros_like(features[:, step]))
                    new_hidden, (_, new_cell_state) = cell(inputs, [hidden, cell_state])
                    hidden = ops.where(here, new_hidden, hidden)
                    cell_state = ops.where(here, new_cell_state, cell_state)
                last.append(hidden)
            return ops.cast((last[0] + last[1]) / 2.0, head.compute_dtype)

    models: dict[int, Any] = {}

    def masked_head(timesteps: int) -> Any:
        if timesteps < 1:
            raise ValueError(f"a sequence needs at least 1 date, got {timesteps}")
        if timesteps not in models:
            channels = int(forward.cell.kernel.shape[-2])
            features = keras.Input((timesteps, None, None, channels), name="date_scores")
            clear = keras.Input((timesteps, None, None), dtype="bool", name="clear_dates")
            models[timesteps] = keras.Model([features, clear], MaskedConvLSTM()(features, clear),
                                            name=f"{head.name}_masked_{timesteps}")
        return models[timesteps]

    return masked_head
