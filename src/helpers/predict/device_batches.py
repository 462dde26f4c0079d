"""A batch of windows as one compiled model call: the models and their post-processing fused.

On an accelerator the scene pass used to be bound by the host: per batch it fetched every
date's softmax (or logits) of every window, then numpy averaged the combinations, ran the
ensemble mean, the argmax and the confidence. Here all of that is one Keras functional model
built with ``keras.ops``, compiled by the backend (TensorFlow or JAX) like any model:

    raw uint16 windows (n, dates, w, w, bands) [+ clear masks (n, dates, w, w)]
      -> standardisation (each member's own)
      -> the per-date part of each member, on every date once
      -> per combination: the mean over its dates (an FCN; with clear masks, over the clear
         dates only) or the ConvLSTM head (a sequence model; with clear masks, stepping over
         each pixel's clear dates, :mod:`helpers.predict.masked_recurrence`), renormalised
      -> mean over the members, cut to the part of the window the pass keeps (its core, for
         the windows away from the scene edges), argmax + 1, largest probability
      -> probabilities (combinations, n, classes, k, k), classes, confidence [, dates used]

so the host copies finished maps into the scene buffers, and in faithful mode a quarter of the
window's maps crosses from the device (the 16x16 centre of 32x32). It gives the maps of the host path
(:class:`helpers.predict.window_models.HostBatches`) to float rounding. A sequence model masked
per pattern (``[clouds] sequence_masking = "per_pattern"``) runs its cloudy windows on the host:
which dates a window's head gets depends on its clouds, which a static graph cannot express
(its per-date part still runs in large calls there); its windows clear wherever they are
written take the call without masks (:mod:`helpers.predict.pass_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.predict.window_models import WindowModel, WindowOutputs


def can_fuse(models: Sequence[WindowModel], masked: bool) -> bool:
    """Whether :func:`fused_batches` can run these models.

    All must be Keras models; with masks, a sequence model must have its masked head
    (``sequence_masking = "recurrent"``): one run per pattern of clear dates is not a static graph.
    """
    return bool(models) and all(
        m.keras is not None and not (masked and m.keras.head_for is not None and m.keras.masked_head_for is None)
        for m in models)


def fused_batches(models: Sequence[WindowModel], combinations: Sequence[Sequence[int]], n_dates: int,
                  window: int, n_bands: int, masked: bool = False, min_clear_dates: int = 1,
                  crop: int = 0) -> FusedBatches:
    """The models and their post-processing as one compiled call per batch.

    Args:
        models: Keras window models (:func:`can_fuse`), one or an ensemble's members.
        combinations: Per combination, indices of its dates among the ``n_dates`` of a window.
        n_dates: Dates per window.
        window: Window side.
        n_bands: Bands per date.
        masked: The call also takes clear masks and averages each pixel's clear dates only.
        min_clear_dates: With masks, fewest clear dates a pixel needs to be classified.
        crop: Pixels cut from every side of the maps before they leave the device (the margin,
            for windows whose written part is their core): ``w - 2 * crop`` px maps come back.

    Raises:
        ValueError: If the models cannot be fused or the crop leaves nothing.
    """
    if not can_fuse(models, masked):
        raise ValueError("only Keras models (and with cloud masks, no sequence model masked per pattern) "
                         "can be fused")
    if not 0 <= 2 * crop < window:
        raise ValueError(f"a crop of {crop} px leaves nothing of a {window}-px window")
    import keras
    from keras import ops

    raw = keras.Input(shape=(n_dates, window, window, n_bands), dtype="uint16", name="raw_windows")
    clear = keras.Input(shape=(n_dates, window, window), dtype="bool", name="clear_dates") if masked else None
    combination_clear, used = [], []  # per combination: its clear masks and each pixel's dates used (once)
    if clear is not None:
        combination_clear = [ops.take(clear, list(combo), axis=1) for combo in combinations]
        used = [_dates_used(ops, mask, min_clear_dates) for mask in combination_clear]
    totals = None
    for member, model in enumerate(models):
        parts = model.keras
        inputs = ops.cast(raw, "float32")
        inputs = (inputs - ops.convert_to_tensor(model.normaliser.mean)) / ops.convert_to_tensor(model.normaliser.std)
        features = _member_part(parts.encoder, f"member_{member}_encoder")(
            ops.reshape(inputs, (-1, window, window, n_bands)))
        features = ops.reshape(features, (-1, n_dates, window, window, features.shape[-1]))
        maps = []
        for k, combo in enumerate(combinations):
            dates = ops.take(features, list(combo), axis=1)
            name = f"member_{member}_combination_{k}_head"
            if parts.head_for is not None and clear is not None:
                head = _member_part(parts.masked_head_for(len(combo)), name)
                scores = _renormalised(ops, head([dates, combination_clear[k]]))
                maps.append(ops.where(ops.expand_dims(used[k] > 0, -1), scores, 0.0))
            elif parts.head_for is not None:
                maps.append(_renormalised(ops, _member_part(parts.head_for(len(combo)), name)(dates)))
            elif clear is None:
                maps.append(ops.mean(dates, axis=1))
            else:
                maps.append(_clear_mean(ops, dates, combination_clear[k], used[k]))
        stacked = ops.stack(maps, axis=0)  # (combinations, n, w, w, classes)
        totals = stacked if totals is None else totals + stacked
    if len(models) > 1:
        totals = totals / float(len(models))
    kept = slice(crop, window - crop)
    totals = totals[:, :, kept, kept]
    outputs = [ops.transpose(totals, (0, 1, 4, 2, 3)), ops.cast(ops.argmax(totals, axis=-1) + 1, "uint8"),
               ops.max(totals, axis=-1)]
    if clear is not None:
        outputs.append(ops.stack(used, axis=0)[:, :, kept, kept])
    fused = keras.Model([raw] if clear is None else [raw, clear], outputs, name="scene_batch")
    return FusedBatches(fused, masked, crop)


def _member_part(model: Any, name: str) -> Any:
    """A layer that calls ``model``, under a name of its own (an ensemble's members share model names)."""
    import keras

    class MemberPart(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name=name, autocast=False)  # the part casts its inputs to its own policy
            self.part = model

        def call(self, inputs: Any) -> Any:
            return self.part(inputs)

    return MemberPart()


def _renormalised(ops: Any, scores: Any) -> Any:
    """Scores divided by their sum over the classes, 0 where the sum is 0 (as the host's ``renormalised``)."""
    total = ops.sum(scores, axis=-1, keepdims=True)
    return ops.where(total > 0, scores / ops.where(total > 0, total, 1.0), 0.0)


def _dates_used(ops: Any, clear: Any, min_clear: int) -> Any:
    """Per pixel the number of clear dates, 0 where fewer than ``min_clear`` (uint8)."""
    counts = ops.sum(ops.cast(clear, "int32"), axis=1)
    return ops.cast(ops.where(counts >= max(1, min_clear), counts, 0), "uint8")


def _clear_mean(ops: Any, scores: Any, clear: Any, used: Any) -> Any:
    """The mean of per-date scores over each pixel's clear dates (0 where not classified, ``used`` 0)."""
    used = ops.cast(used, "float32")
    total = ops.sum(scores * ops.expand_dims(ops.cast(clear, "float32"), -1), axis=1)
    mean = total / ops.expand_dims(ops.maximum(used, 1.0), -1)
    return ops.where(ops.expand_dims(used > 0, -1), mean, 0.0)


class FusedBatches:
    """A fused model as the pass's batch function: numpy windows in, :class:`WindowOutputs` out.

    Attributes:
        model: The fused Keras model.
        masked: It takes clear masks.
        crop: Pixels cut from every side of the maps it returns.
    """

    def __init__(self, model: Any, masked: bool, crop: int = 0) -> None:
        self.model = model
        self.masked = masked
        self.crop = crop

    def __call__(self, raw: np.ndarray, clear: np.ndarray | None) -> WindowOutputs:
        """The maps of a batch (``clear`` must be given exactly when the model was built masked)."""
        if (clear is not None) != self.masked:
            raise ValueError("clear masks must be given exactly when the fused model was built with them")
        outputs = self.model.predict_on_batch([raw] if clear is None else [raw, clear])
        probabilities, classes, confidence = (np.asarray(o) for o in outputs[:3])
        used = np.asarray(outputs[3]) if self.masked else None
        return WindowOutputs(probabilities, classes, confidence, used, self.crop)
