"""Sliding-window prediction of a whole scene, for several date combinations in one pass.

A scene is cut into square windows; each window is predicted in batches and only its core
(the window without a margin on every side) is kept, so that every pixel is predicted with
context around it. Windows at the scene edges are clamped to the scene and also keep their
outer part, so every pixel gets exactly one prediction (the original left an 8-px frame
unpredicted).

* faithful mode: the original's 32x32 windows on a 16-px stride, the centre 16x16 kept;
* fast mode: large windows (``FAST_CORE`` + 2 x ``FAST_MARGIN``), the margin discarded.

A model is split into what it computes from one date alone (:attr:`WindowModel.encode`: an
FCN's softmax, or the per-date FCN logits of a sequence model) and what it computes from the
dates of one combination (:attr:`WindowModel.combine`: the mean over the dates, or the
ConvLSTM head). Every date of a window is encoded once and shared by all the combinations
that contain it: the original predicted each date again for every combination.

The stacks are read in row chunks and the maps are handed out in blocks of whole scene rows
as soon as they are complete, so memory is bounded by the window size and the scene width,
not by the scene's area.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.windows import Window

from helpers.core.errors import InputError
from helpers.core.io import open_raster
from helpers.predict.clear_dates import clear_of, combine_clear

if TYPE_CHECKING:
    from helpers.train.normalisation import Normaliser

MODES: tuple[str, ...] = ("faithful", "fast")
FAST_CORE = 256
"""Side of the kept core of a fast-mode window (pixels)."""
FAST_MARGIN = 32
"""Margin discarded on each side of a fast-mode window (window 320 = 10 x 32)."""
MODEL_MULTIPLE = 32
"""Window sides must be multiples of this (the U-Net downsamples five times)."""
PIXEL_BUDGET = 1 << 18
"""Default number of input pixels (windows x dates x window area) per model call."""
CHUNK_ROWS = 288
"""Rows read at once (at least): a 256-row GeoTIFF block row plus one faithful window."""
PASS_CACHE_MB = 128
"""GDAL block cache during a pass (GDAL's default, 5 % of the RAM, would hold decoded blocks that
the chunk reader already keeps)."""
OUTPUT_BLOCK_ROWS = 256
"""Scene rows per output block (the block height of the pipeline's GeoTIFFs)."""
AREA_LAYERS: frozenset[str] = frozenset({"area", "extra_area"})
"""Descriptions of the area layers of a NEW stack."""

ArrayFn = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------- window plan
@dataclass(frozen=True)
class AxisPlan:
    """Windows along one axis and the part of the scene each of them writes.

    Attributes:
        starts: First pixel of every window (increasing; the last one clamped to the scene).
        lo: First pixel written by every window.
        hi: End (exclusive) of the pixels written by every window; ``lo[i + 1] == hi[i]``,
            ``lo[0] == 0`` and ``hi[-1]`` is the axis length.
    """

    starts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def plan_axis(length: int, window: int, margin: int) -> AxisPlan:
    """Plan the windows along one axis of ``length`` pixels.

    Window ``i`` starts at ``i * core`` (``core = window - 2 * margin``) while it fits; one
    more window clamped to the end covers the rest. Each window writes its core, the first
    one also the pixels before its core and the last one everything up to the end.

    Args:
        length: Pixels along the axis (at least ``window``).
        window: Window side.
        margin: Pixels discarded on each side of a window's core (``0 <= 2 * margin < window``).

    Returns:
        The plan.

    Raises:
        ValueError: On sizes that cannot be planned.
    """
    core = window - 2 * margin
    if margin < 0 or core <= 0:
        raise ValueError(f"margin {margin} does not leave a core in a {window}-px window")
    if length < window:
        raise ValueError(f"axis of {length} px is shorter than the {window}-px window")
    starts = list(range(0, length - window + 1, core))
    if starts[-1] + window < length:
        starts.append(length - window)
    starts_array = np.asarray(starts, dtype=np.int64)
    hi = starts_array + window - margin
    hi[-1] = length
    lo = np.concatenate([[0], hi[:-1]])
    return AxisPlan(starts_array, lo, hi)


def window_geometry(mode: str, tile_size: int = 32, prediction_stride: int = 16,
                    shape: tuple[int, int] | None = None) -> tuple[int, int]:
    """Window side and margin of a mode, shrunk to fit a small scene in fast mode.

    Args:
        mode: ``"faithful"`` or ``"fast"``.
        tile_size: The config's tile size (faithful window).
        prediction_stride: The config's prediction stride (faithful core).
        shape: Scene (rows, cols), to shrink a fast window that does not fit.

    Returns:
        ``(window, margin)``.

    Raises:
        ValueError: On an unknown mode or a faithful geometry with no centre.
        InputError: If the scene is smaller than the smallest window.
    """
    if mode == "faithful":
        window, margin = tile_size, (tile_size - prediction_stride) // 2
        if margin < 0 or window - 2 * margin <= 0:
            raise ValueError(f"tile size {tile_size} and stride {prediction_stride} leave no centre")
    elif mode == "fast":
        window, margin = FAST_CORE + 2 * FAST_MARGIN, FAST_MARGIN
    else:
        raise ValueError(f"unknown mode '{mode}' (use one of {MODES})")
    if shape is not None:
        smallest = min(shape)
        if smallest < window:
            if mode == "faithful" or smallest < MODEL_MULTIPLE:
                raise InputError(f"the scene ({shape[0]}x{shape[1]} px) is smaller than one {window}-px window")
            window = smallest // MODEL_MULTIPLE * MODEL_MULTIPLE
            margin = min(margin, window // 4)
    return window, margin


def default_batch_size(window: int, dates_per_window: int) -> int:
    """Windows per model call so that one call sees about :data:`PIXEL_BUDGET` input pixels."""
    return max(1, PIXEL_BUDGET // (window * window * max(1, dates_per_window)))


def buffer_rows(window: int, n_windows_per_row: int, batch: int, block_rows: int = OUTPUT_BLOCK_ROWS) -> int:
    """Scene rows held in memory by :func:`predict_scene`: one output block plus the rows in flight."""
    rows_in_flight = -(-(batch - 1) // max(1, n_windows_per_row)) + 1
    return block_rows + rows_in_flight * window


# ---------------------------------------------------------------------- reading
class _ChunkReader:
    """Row chunks of several same-grid stacks as one ``(dates, layers, rows, cols)`` uint16 array.

    A chunk holds at least :data:`CHUNK_ROWS` rows (about one GeoTIFF block row, so that a block
    is decoded about once in faithful mode) or one window; it is read in place, date by date.
    """

    def __init__(self, datasets: Sequence[rasterio.DatasetReader], window: int, dtype: type = np.uint16) -> None:
        self.datasets = datasets
        self.height, self.width = datasets[0].height, datasets[0].width
        self.rows = max(window, CHUNK_ROWS)
        self.top = 0
        self.data = np.empty((len(datasets), datasets[0].count, min(self.rows, self.height), self.width),
                             dtype=dtype)
        self.filled = 0  # rows of ``data`` holding the chunk

    def rows_at(self, row: int, height: int) -> np.ndarray:
        """The chunk rows ``[row, row + height)`` of every date, reading a new chunk if needed."""
        if row < self.top or row + height > self.top + self.filled:
            self.top = row
            self.filled = min(self.height, row + self.data.shape[2]) - row
            block = Window(0, row, self.width, self.filled)
            for date, ds in enumerate(self.datasets):
                ds.read(window=block, out=self.data[date, :, : self.filled])
        return self.data[:, :, row - self.top: row - self.top + height]


def area_layers(data: np.ndarray, n_bands: int) -> np.ndarray:
    """Union of the area layers (the layers after the bands, first axis) as a bool array.

    A stack without area layers counts as inside everywhere.
    """
    if data.shape[0] <= n_bands:
        return np.ones(data.shape[1:], dtype=bool)
    return np.any(data[n_bands:] != 0, axis=0)


# ---------------------------------------------------------------------- models
def mean_over_dates(features: np.ndarray) -> np.ndarray:
    """Combine per-date softmax outputs ``(n, dates, w, w, classes)`` into their mean."""
    return features.mean(axis=1)


def renormalised(scores: np.ndarray) -> np.ndarray:
    """Scores ``(..., classes)`` divided by their sum over the classes (0 where the sum is 0)."""
    scores = np.asarray(scores, dtype=np.float32)
    total = scores.sum(axis=-1, keepdims=True)
    return np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)


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
    """

    encode: ArrayFn
    combine: ArrayFn
    normaliser: Normaliser
    fixed_dates: bool = False

    @classmethod
    def fcn(cls, predict: ArrayFn, normaliser: Normaliser) -> WindowModel:
        """A single-date model whose combination map is the mean softmax over the dates."""
        return cls(predict, mean_over_dates, normaliser)

    @classmethod
    def sequence(cls, predict: ArrayFn, normaliser: Normaliser, fixed_dates: bool = False) -> WindowModel:
        """A model that needs the whole sequence at once (no per-date part to share)."""
        return cls(_identity, lambda features: renormalised(predict(features)), normaliser, fixed_dates)


def _identity(batch: np.ndarray) -> np.ndarray:
    return batch


def _in_calls(function: ArrayFn, batch: np.ndarray, per_call: int) -> np.ndarray:
    """``function`` over ``batch`` in calls of at most ``per_call`` items (bounds activation memory)."""
    if len(batch) <= per_call:
        return np.asarray(function(batch), dtype=np.float32)
    return np.concatenate([np.asarray(function(batch[i: i + per_call]), dtype=np.float32)
                           for i in range(0, len(batch), per_call)])


# ---------------------------------------------------------------------- the scene pass
@dataclass(frozen=True)
class SceneBlock:
    """Complete scene rows of every combination's probability map.

    Attributes:
        row: First scene row of the block.
        probabilities: float32 ``(combinations, classes, rows, cols)``, the mean over the
            models; 0 outside the area.
        area: bool ``(rows, cols)``, the union of the area layers of the first stack.
        dates_used: uint8 ``(combinations, rows, cols)``, per pixel the number of the
            combination's dates its map used (0: not classified), or None without cloud masks
            (every pixel used every date).
    """

    row: int
    probabilities: np.ndarray
    area: np.ndarray
    dates_used: np.ndarray | None = None


def _open_stacks(stacks: Sequence[Path], n_bands: int, stack: contextlib.ExitStack) -> list[rasterio.DatasetReader]:
    datasets = [stack.enter_context(open_raster(path)) for path in stacks]
    reference = datasets[0]
    for path, ds in zip(stacks, datasets, strict=True):
        if ds.count < n_bands:
            raise InputError(f"{path}: {ds.count} layers, the model needs {n_bands} bands")
        if (ds.height, ds.width) != (reference.height, reference.width) or ds.transform != reference.transform:
            raise InputError(f"{path}: grid differs from {stacks[0]}")
    return datasets


def predict_scene(
    models: Sequence[WindowModel],
    stacks: Sequence[Path],
    combinations: Sequence[Sequence[int]],
    n_bands: int,
    n_classes: int,
    window: int,
    margin: int,
    batch_size: int | None = None,
    progress: bool | None = False,
    skip_outside: bool = True,
    block_rows: int = OUTPUT_BLOCK_ROWS,
    cloud_masks: Sequence[Path] | None = None,
    min_clear_dates: int = 1,
) -> Iterator[SceneBlock]:
    """Class probabilities of whole scenes for several date combinations, block by block.

    Args:
        models: One model, or the members of an ensemble (their maps are averaged).
        stacks: One NEW merged stack per date (bands, then the area layer(s)), same grid,
            in chronological order.
        combinations: Per combination, indices into ``stacks`` (in chronological order).
        n_bands: Number of bands at the start of each stack.
        n_classes: Number of model outputs.
        window: Window side (a multiple of 32 for the U-Net).
        margin: Pixels discarded on each side of a window (except at the scene edges).
        batch_size: Windows per model call (each with every date; default:
            :func:`default_batch_size`).
        progress: Show a progress bar (None: only on a terminal).
        skip_outside: Do not predict windows whose written part holds no area pixel.
        block_rows: Scene rows per yielded block (the last block may be shorter).
        cloud_masks: One cloud mask per stack (same grid; :mod:`helpers.data.clouds`), or None.
            With masks, each pixel's map uses only the combination's dates that are clear there
            (:func:`helpers.predict.clear_dates.combine_clear`).
        min_clear_dates: With masks, fewest clear dates a pixel needs to be classified.

    Yields:
        Consecutive :class:`SceneBlock` from the top of the scene to the bottom.

    Raises:
        InputError: If the stacks differ in grid or have too few layers, or the scene is
            smaller than one window.
        ValueError: On no models, no stacks, or a combination that is empty or out of range.
    """
    from tqdm import tqdm

    if not models or not stacks:
        raise ValueError("predict_scene needs at least one model and one stack")
    dates = len(stacks)
    combos = [list(c) for c in combinations]
    if not combos or any(not c or min(c) < 0 or max(c) >= dates for c in combos):
        raise ValueError(f"combinations {combinations} must be non-empty lists of indices below {dates}")
    if cloud_masks is not None and len(cloud_masks) != dates:
        raise ValueError(f"{len(cloud_masks)} cloud masks for {dates} stacks")
    with contextlib.ExitStack() as opened:
        opened.enter_context(rasterio.Env(GDAL_CACHEMAX=PASS_CACHE_MB))
        datasets = _open_stacks(stacks, n_bands, opened)
        masks = None if cloud_masks is None else _ChunkReader(
            [opened.enter_context(open_raster(path)) for path in cloud_masks], window, np.uint8)
        height, width = datasets[0].height, datasets[0].width
        try:
            rows, cols = plan_axis(height, window, margin), plan_axis(width, window, margin)
        except ValueError:
            raise InputError(f"the scene ({height}x{width} px) is smaller than one {window}-px window") from None
        batch = batch_size or default_batch_size(window, dates)
        capacity = buffer_rows(window, len(cols.starts), batch, block_rows)
        maps = np.zeros((len(combos), n_classes, capacity, width), dtype=np.float32)
        area = np.zeros((capacity, width), dtype=bool)
        used = None if masks is None else np.zeros((len(combos), capacity, width), dtype=np.uint8)
        top = 0  # scene row of buffer row 0
        raw = np.zeros((batch, dates, window, window, n_bands), dtype=np.uint16)
        clear = None if masks is None else np.zeros((batch, dates, window, window), dtype=bool)
        inputs = np.empty((batch * dates, window, window, n_bands), dtype=np.float32)
        pending: list[tuple[int, int]] = []  # (row index, col index) of the windows in ``raw``
        reader = _ChunkReader(datasets, window)
        per_call = max(1, PIXEL_BUDGET // (window * window))  # images (or sequences) per model call
        same_length = [[k for k, c in enumerate(combos) if len(c) == n] for n in sorted({len(c) for c in combos})]

        def flush() -> None:
            count = len(pending)
            if not count:
                return
            raw[count:] = 0  # a full batch every call: one traced shape
            totals = np.zeros((len(combos), batch, n_classes, window, window), dtype=np.float32)
            counts = None if clear is None else np.zeros((len(combos), batch, window, window), dtype=np.uint8)
            if clear is not None:
                clear[count:] = False
            for model in models:
                model.normaliser(raw.reshape(inputs.shape), out=inputs)
                features = _in_calls(model.encode, inputs, per_call).reshape(batch, dates, window, window, -1)
                for ks in same_length:  # the combinations of as many dates together
                    sequences = np.concatenate([features[:, combos[k]] for k in ks])
                    if clear is None:
                        scores = _in_calls(model.combine, sequences, per_call)
                    else:
                        scores, dates_used = combine_clear(
                            functools.partial(_in_calls, model.combine, per_call=per_call), sequences,
                            np.concatenate([clear[:, combos[k]] for k in ks]), n_classes, min_clear_dates,
                            mean=model.combine is mean_over_dates, fixed_dates=model.fixed_dates)
                        counts[ks] = dates_used.reshape(len(ks), batch, window, window)
                    totals[ks] += np.moveaxis(scores.reshape(len(ks), batch, *scores.shape[1:]), -1, 2)
            if len(models) > 1:
                totals /= len(models)
            for index, (r, c) in enumerate(pending):
                r0, r1, c0, c1 = rows.lo[r], rows.hi[r], cols.lo[c], cols.hi[c]
                y, x = rows.starts[r], cols.starts[c]
                maps[:, :, r0 - top: r1 - top, c0:c1] = totals[:, index, :, r0 - y: r1 - y, c0 - x: c1 - x]
                if counts is not None:
                    used[:, r0 - top: r1 - top, c0:c1] = counts[:, index, r0 - y: r1 - y, c0 - x: c1 - x]
            pending.clear()

        def take(rows_out: int) -> SceneBlock:
            nonlocal top
            block = SceneBlock(top, maps[:, :, :rows_out] * area[:rows_out], area[:rows_out].copy(),
                               None if used is None else used[:, :rows_out] * area[:rows_out])
            for start in range(0, capacity - rows_out, rows_out):  # pieces that do not overlap: no temporary
                end = min(start + rows_out, capacity - rows_out)
                maps[:, :, start:end] = maps[:, :, start + rows_out: end + rows_out]
                area[start:end] = area[start + rows_out: end + rows_out]
                if used is not None:
                    used[:, start:end] = used[:, start + rows_out: end + rows_out]
            maps[:, :, capacity - rows_out:] = 0.0
            area[capacity - rows_out:] = False
            if used is not None:
                used[:, capacity - rows_out:] = 0
            top += rows_out
            return block

        with tqdm(total=len(rows.starts) * len(cols.starts), unit="win", disable=None if progress is None
                  else not progress, desc="classify") as bar:
            for r, y in enumerate(rows.starts):
                r0, r1 = int(rows.lo[r]), int(rows.hi[r])
                if r1 - top > capacity:  # windows of far-apart rows pending (most windows skipped)
                    flush()
                    while r0 - top >= block_rows:
                        yield take(block_rows)
                strip = reader.rows_at(int(y), window)
                mask_strip = None if masks is None else masks.rows_at(int(y), window)
                area[r0 - top: r1 - top] = area_layers(strip[0, :, r0 - y: r1 - y], n_bands)
                for c, x in enumerate(cols.starts):
                    if skip_outside and not area[r0 - top: r1 - top, cols.lo[c]: cols.hi[c]].any():
                        continue
                    raw[len(pending)] = np.moveaxis(strip[:, :n_bands, :, x: x + window], 1, -1)
                    if masks is not None:
                        clear[len(pending)] = clear_of(mask_strip[:, 0, :, x: x + window])
                    pending.append((r, c))
                    if len(pending) == batch:
                        flush()
                complete = int(rows.lo[pending[0][0]]) if pending else r1
                while complete - top >= block_rows:
                    yield take(block_rows)
                bar.update(len(cols.starts))
            flush()
            while top < height:
                yield take(min(block_rows, height - top))
