"""Which compiled or host call a scene pass gives each batch of windows.

A pass (:func:`helpers.predict.sliding_windows.predict_scene`) queues its windows by kind: at
the scene edges or not (only the core of the others comes back), and with cloud masks, clear
wherever they are written or not. Each kind gets a batch function here: a fused call of the
models and their post-processing (:mod:`helpers.predict.device_batches`) where the models allow
it, else the model parts on the host (:class:`helpers.predict.window_models.HostBatches`). A
sequence model masked per pattern (``[clouds] sequence_masking = "per_pattern"``) is the one
Keras model whose masked batches run on the host: its windows clear wherever they are written
are routed to the fused call without masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from helpers.predict.device_batches import FusedBatches, can_fuse, fused_batches
from helpers.predict.window_models import AllDatesClear, BatchFn, HostBatches, WindowModel

PIXEL_BUDGET = 1 << 18
"""Default number of input pixels (windows x dates x window area) per model call."""

FUSED_KEPT = 8
"""Fused batch functions kept for reuse (a classification's passes, a benchmark's warm-up and timing)."""
_FUSED: dict[tuple, tuple[Sequence[WindowModel], BatchFn]] = {}  # the models are kept too: their ids stay valid


def batch_function(models: Sequence[WindowModel], combinations: Sequence[Sequence[int]], n_dates: int,
                   n_bands: int, n_classes: int, window: int, masked: bool, min_clear_dates: int = 1,
                   fused: bool | None = None, crop: int = 0) -> BatchFn:
    """How the pass runs a batch: fused into one compiled call where it can, else on the host.

    Args:
        fused: True: fuse (:mod:`helpers.predict.device_batches`; a ValueError if the models
            cannot be); False: the host path; None: fuse when the models allow it.
        crop: The call returns the maps without this many pixels on every side.
        (the others as :func:`helpers.predict.sliding_windows.predict_scene`)
    """
    if fused or (fused is None and can_fuse(models, masked)):
        key = (tuple(id(m) for m in models), tuple(tuple(c) for c in combinations), n_dates, window, n_bands, masked,
               min_clear_dates, crop)
        if key not in _FUSED:  # a fused model is traced on its first call: reuse it for the same work
            while len(_FUSED) >= FUSED_KEPT:
                _FUSED.pop(next(iter(_FUSED)))
            _FUSED[key] = (models, fused_batches(models, combinations, n_dates, window, n_bands, masked,
                                                 min_clear_dates, crop))
        return _FUSED[key][1]
    return HostBatches(models, combinations, n_dates, n_classes, PIXEL_BUDGET, min_clear_dates, crop)


@dataclass(frozen=True)
class PassBatches:
    """The batch functions of one pass, by the kind of window.

    Attributes:
        edge: Windows at the scene edges (their written part is not their core): whole maps.
        core: The others: only their core comes back (the same as ``edge`` without a margin).
        edge_clear: Edge windows clear on every date where written, with cloud masks.
        core_clear: Core windows clear on every date in their core, with cloud masks.
        routed: Whether clear windows take their own calls (:class:`AllDatesClear`): with masks,
            for models whose masked call runs on the host but whose unmasked call is fused.
    """

    edge: BatchFn
    core: BatchFn
    edge_clear: BatchFn
    core_clear: BatchFn
    routed: bool

    def functions(self) -> list[BatchFn]:
        """The distinct batch functions (each gets its queue)."""
        found: list[BatchFn] = []
        for function in (self.edge, self.core, self.edge_clear, self.core_clear):
            if all(function is not f for f in found):
                found.append(function)
        return found


def pass_batches(models: Sequence[WindowModel], combinations: Sequence[Sequence[int]], n_dates: int,
                 n_bands: int, n_classes: int, window: int, margin: int, masked: bool, min_clear_dates: int = 1,
                 fused: bool | None = None) -> PassBatches:
    """The batch functions of a pass (the arguments as :func:`helpers.predict.sliding_windows.predict_scene`).

    Windows away from the scene edges need only their core: it is cut off on the device (fused)
    or before the argmax (host), and with masks the host runs a sequence model's head only for
    the patterns found in the core. With masks, the windows of a sequence model masked per pattern
    that are clear wherever they are written take the fused call without masks (:class:`AllDatesClear`).
    """
    def function(crop: int, with_masks: bool, fuse: bool | None) -> BatchFn:
        return batch_function(models, combinations, n_dates, n_bands, n_classes, window, with_masks,
                              min_clear_dates, fuse, crop)

    edge = function(0, masked, fused)
    core = function(margin, masked, fused) if margin > 0 else edge
    routed = (masked and not isinstance(edge, FusedBatches) and fused is not False and can_fuse(models, False)
              and all(len(c) >= max(1, min_clear_dates) for c in combinations))
    if not routed:
        return PassBatches(edge, core, edge, core, False)
    edge_clear = AllDatesClear(function(0, False, True), combinations)
    core_clear = AllDatesClear(function(margin, False, True), combinations) if margin > 0 else edge_clear
    return PassBatches(edge, core, edge_clear, core_clear, True)
