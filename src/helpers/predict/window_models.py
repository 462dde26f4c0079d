"""Models as the scene pass calls them, and what one batch of windows gives.

A model is split into what it computes from one date alone (:attr:`WindowModel.encode`: an
FCN's softmax, or the per-date FCN logits of a sequence model) and what it computes from the
dates of one combination (:attr:`WindowModel.combine`: the mean over the dates, or the
ConvLSTM head). Every date of a window is encoded once and shared by all the combinations
that contain it: the original predicted each date again for every combination.

A batch of windows goes through the models in one of two ways, with the same result
(:class:`WindowOutputs`):

* on the host (:class:`HostBatches`): the model parts are called one by one and numpy does
  the rest (the means, the cloud-masked combinations, the ensemble mean, argmax and
  confidence). Any model works this way, a random forest included.
* on the device (:mod:`helpers.predict.device_batches`): Keras models are fused with their
  post-processing into one compiled call, so that an accelerator hands back only the maps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.predict.clear_dates import combine_clear

if TYPE_CHECKING:
    from helpers.train.normalisation import Normaliser

ArrayFn = Callable[[np.ndarray], np.ndarray]


def mean_over_dates(features: np.ndarray) -> np.ndarray:
    """Combine per-date softmax outputs ``(n, dates, w, w, classes)`` into their mean."""
    return features.mean(axis=1)


def renormalised(scores: np.ndarray) -> np.ndarray:
    """Scores ``(..., classes)`` divided by their sum over the classes (0 where the sum is 0)."""
    scores = np.asarray(scores, dtype=np.float32)
    total = scores.sum(axis=-1, keepdims=True)
    return np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)


@dataclass(frozen=True)
class KerasParts:
    """The Keras models behind a :class:`WindowModel`, for fusing them into one device call.

    Attributes:
        encoder: ``(n, w, w, bands) -> (n, w, w, features)``, the per-date part.
        head_for: For ``t`` dates (and a side, default the window's), the model ``(n, t, w, w,
            features) -> (n, w, w, classes)`` of a sequence model (its scores renormalised
            afterwards); None for an FCN, whose combination is the mean over the dates.
        masked_head_for: For ``t`` dates, the head taking cloud masks too, ``[features, clear
            (n, t, w, w)] -> (n, w, w, classes)`` (:mod:`helpers.predict.masked_recurrence`), or
            None: a sequence model with cloud masks then runs on the host, once per pattern.
    """

    encoder: Any
    head_for: Callable[..., Any] | None = None
    masked_head_for: Callable[[int], Any] | None = None


@dataclass(frozen=True)
class WindowModel:
    """A model as the scene pass calls it: per date, then per date combination.

    Attributes:
        encode: ``(n, w, w, bands)`` standardised float32 -> ``(n, w, w, features)``: what
            the model computes from one date alone (an FCN: its softmax; a sequence model:
            the FCN logits it feeds to its ConvLSTM).
        combine: ``(n, dates, w, w, features)`` of one combination (dates in chronological
            order) -> ``(n, w, w, classes)`` probabilities that sum to 1 per pixel.
        normaliser: The band standardisation the model was trained with.
        fixed_dates: ``combine`` takes only sequences of all the combination's dates (a
            multitemporal forest): with cloud masks, a pixel with a cloudy date is not classified.
        keras: The Keras models behind ``encode`` and ``combine`` (None for other models): with
            them the pass can run a batch as one compiled call.
        patch_size: 0, or the side of the square patches ``combine`` also takes besides whole
            windows: with cloud masks, a pattern of clear dates that fills a small part of a window
            runs on such patches around its pixels only (a ConvLSTM head; see
            :func:`helpers.predict.clear_dates.combine_clear`).
        combine_masked: ``(features, clear)`` of one combination, ``clear`` bool ``(n, dates, w, w)``
            -> probabilities: the combination with cloud masks in one call (a ConvLSTM head
            stepping over each pixel's clear dates, :mod:`helpers.predict.masked_recurrence`),
            or None: once per pattern of clear dates.
    """

    encode: ArrayFn
    combine: ArrayFn
    normaliser: Normaliser
    fixed_dates: bool = False
    keras: KerasParts | None = None
    patch_size: int = 0
    combine_masked: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @classmethod
    def fcn(cls, predict: ArrayFn, normaliser: Normaliser, keras: KerasParts | None = None) -> WindowModel:
        """A single-date model whose combination map is the mean softmax over the dates."""
        return cls(predict, mean_over_dates, normaliser, keras=keras)

    @classmethod
    def sequence(cls, predict: ArrayFn, normaliser: Normaliser, fixed_dates: bool = False) -> WindowModel:
        """A model that needs the whole sequence at once (no per-date part to share)."""
        return cls(_identity, lambda features: renormalised(predict(features)), normaliser, fixed_dates)

    @property
    def averages_dates(self) -> bool:
        """The combination is the plain mean over the dates (an FCN, a monotemporal forest)."""
        return self.combine is mean_over_dates


def _identity(batch: np.ndarray) -> np.ndarray:
    return batch


def in_calls(function: Callable[..., np.ndarray], batch: np.ndarray, *more: np.ndarray, pixels: int) -> np.ndarray:
    """``function`` over ``batch`` in calls of about ``pixels`` pixels each (bounds activation memory).

    The items are images ``(n, rows, cols, bands)`` or sequences ``(n, dates, rows, cols, bands)``;
    an item counts its rows x cols, so small patches of a window go many to a call. Arrays in
    ``more`` (a sequence's clear masks) are split alike and passed after the batch.
    """
    per_call = max(1, pixels // (batch.shape[-3] * batch.shape[-2]))
    if len(batch) <= per_call:
        return np.asarray(function(batch, *more), dtype=np.float32)
    return np.concatenate([np.asarray(function(batch[i: i + per_call], *(m[i: i + per_call] for m in more)),
                                      dtype=np.float32) for i in range(0, len(batch), per_call)])


# ---------------------------------------------------------------------- one batch of windows
@dataclass(frozen=True)
class WindowOutputs:
    """The maps of a batch of windows, for every combination.

    Attributes:
        probabilities: float32 ``(combinations, n, classes, w, w)`` (may be a strided view),
            the mean over the models; 0 where not classified.
        classes: uint8 ``(combinations, n, w, w)``, the argmax + 1 (the area is applied later).
        confidence: float32 ``(combinations, n, w, w)``, the largest probability.
        used: uint8 ``(combinations, n, w, w)``, the dates each pixel's map used (0: not
            classified), or None without cloud masks.
        crop: Pixels cut from every side of the windows (the maps are ``w - 2 * crop`` px).
    """

    probabilities: np.ndarray
    classes: np.ndarray
    confidence: np.ndarray
    used: np.ndarray | None
    crop: int = 0


BatchFn = Callable[[np.ndarray, "np.ndarray | None"], WindowOutputs]
"""``(raw, clear) -> WindowOutputs``: raw uint16 ``(n, dates, w, w, bands)``, clear bool
``(n, dates, w, w)`` or None."""


def class_and_confidence_last(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax + 1 (uint8) and maximum over the last axis (the classes), contiguous and fast."""
    return (np.argmax(scores, axis=-1) + 1).astype(np.uint8), scores.max(axis=-1)


class HostBatches:
    """Batches of windows through the model parts one by one, with numpy for everything else.

    Args:
        models: One model, or the members of an ensemble (their maps are averaged).
        combinations: Per combination, indices of its dates among the pass's dates.
        n_dates: Dates per window.
        n_classes: Number of model outputs.
        pixels_per_call: Pixels of the images (or sequences) of one model call, to bound
            activation memory (:func:`in_calls`).
        min_clear_dates: With cloud masks, fewest clear dates a pixel needs to be classified.
        crop: Pixels cut from every side of the maps it returns (the margin, for windows whose
            written part is their core). With cloud masks, a sequence model's head is not run
            for the patterns found only in the cut part (``keep`` of
            :func:`helpers.predict.clear_dates.combine_clear`).
    """

    def __init__(self, models: Sequence[WindowModel], combinations: Sequence[Sequence[int]], n_dates: int,
                 n_classes: int, pixels_per_call: int, min_clear_dates: int = 1, crop: int = 0) -> None:
        self.models = list(models)
        self.combinations = [list(c) for c in combinations]
        self.n_dates, self.n_classes, self.pixels_per_call = n_dates, n_classes, pixels_per_call
        self.min_clear_dates = min_clear_dates
        self.crop = crop
        lengths = sorted({len(c) for c in self.combinations})
        self.same_length = [[k for k, c in enumerate(self.combinations) if len(c) == n] for n in lengths]
        self._inputs: np.ndarray | None = None

    def __call__(self, raw: np.ndarray, clear: np.ndarray | None) -> WindowOutputs:
        """The maps of a batch ``raw`` (uint16 ``(n, dates, w, w, bands)``), with or without clear masks."""
        n, dates, window = raw.shape[:3]
        if not 0 <= 2 * self.crop < window:
            raise ValueError(f"a crop of {self.crop} px leaves nothing of a {window}-px window")
        kept = slice(self.crop, window - self.crop)
        keep = None
        if self.crop and clear is not None:
            keep = np.zeros((max(map(len, self.same_length)) * n, window, window), dtype=bool)
            keep[:, kept, kept] = True
        if self._inputs is None or self._inputs.shape[:1] != (n * dates,) or self._inputs.shape[1:] != raw.shape[2:]:
            self._inputs = np.empty((n * dates, *raw.shape[2:]), dtype=np.float32)
        inputs, combos = self._inputs, self.combinations
        totals = np.zeros((len(combos), n, window, window, self.n_classes), dtype=np.float32)
        counts = None if clear is None else np.zeros((len(combos), n, window, window), dtype=np.uint8)
        for model in self.models:
            model.normaliser(raw.reshape(inputs.shape), out=inputs)
            features = in_calls(model.encode, inputs, pixels=self.pixels_per_call).reshape(n, dates, window, window, -1)
            for ks in self.same_length:  # the combinations of as many dates together
                sequences = np.concatenate([features[:, combos[k]] for k in ks])
                if clear is None:
                    scores = in_calls(model.combine, sequences, pixels=self.pixels_per_call)
                else:
                    scores, dates_used = combine_clear(
                        functools.partial(in_calls, model.combine, pixels=self.pixels_per_call), sequences,
                        np.concatenate([clear[:, combos[k]] for k in ks]), self.n_classes, self.min_clear_dates,
                        mean=model.averages_dates, fixed_dates=model.fixed_dates,
                        patch_size=model.patch_size, keep=None if keep is None else keep[: len(ks) * n],
                        masked=None if model.combine_masked is None else functools.partial(
                            in_calls, model.combine_masked, pixels=self.pixels_per_call))
                    counts[ks] = dates_used.reshape(len(ks), n, window, window)
                totals[ks] += scores.reshape(len(ks), n, *scores.shape[1:])
        if len(self.models) > 1:
            totals /= len(self.models)
        totals = totals[:, :, kept, kept]
        classes, confidence = class_and_confidence_last(totals)
        return WindowOutputs(np.moveaxis(totals, -1, 2), classes, confidence,
                             None if counts is None else counts[:, :, kept, kept], self.crop)


class AllDatesClear:
    """The call without masks, for windows clear on every date wherever they are written.

    A sequence model masked per pattern runs its head once per pattern of clear dates in a window,
    on the host. Where the written part of a window is clear on every date, each of its kept
    pixels has the pattern of all dates, and the head sees the whole window on all dates: the
    maps of the pass without masks. Such windows (most of a scene) go through that call, fused
    on the device, and every pixel counts all of its combination's dates.

    Args:
        predict: The batch function without masks.
        combinations: Per combination, its dates (each at least ``min_clear_dates`` of them).
    """

    def __init__(self, predict: BatchFn, combinations: Sequence[Sequence[int]]) -> None:
        self.predict = predict
        self.lengths = np.array([len(c) for c in combinations], dtype=np.uint8)

    def __call__(self, raw: np.ndarray, clear: np.ndarray | None) -> WindowOutputs:
        """The maps of a batch of windows clear where written (``clear`` is not looked at)."""
        out = self.predict(raw, None)
        used = np.broadcast_to(self.lengths[:, None, None, None], out.classes.shape)
        return dataclasses.replace(out, used=used)
