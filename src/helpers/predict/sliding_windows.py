"""Sliding-window prediction of a whole scene, for several date combinations in one pass.

A scene is cut into square windows; each window is predicted in batches and only its core
(the window without a margin on every side) is kept, so that every pixel is predicted with
context around it. Windows at the scene edges are clamped to the scene and also keep their
outer part, so every pixel gets exactly one prediction (the original left an 8-px frame
unpredicted).

* faithful mode: the original's 32x32 windows on a 16-px stride, the centre 16x16 kept;
* fast mode: large windows (``FAST_CORE`` + 2 x ``FAST_MARGIN``), the margin discarded.

Every date of a window is encoded once and shared by all the combinations that contain it
(:mod:`helpers.predict.window_models`): the original predicted each date again for every
combination. Keras models run each batch as one compiled call that also combines the dates,
averages an ensemble and takes the argmax and confidence (:mod:`helpers.predict.device_batches`),
so that on an accelerator the host only copies finished maps.

The stacks are read in row chunks, the next chunk while the model works on this one, and the
maps are handed out in blocks of whole scene rows as soon as they are complete, so memory is
bounded by the window size and the scene width, not by the scene's area.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from helpers.core.errors import InputError
from helpers.core.io import open_raster
from helpers.predict.clear_dates import clear_of
from helpers.predict.pass_batches import PIXEL_BUDGET, pass_batches
from helpers.predict.scene_reading import ChunkReader, area_layers
from helpers.predict.window_models import BatchFn, WindowModel, WindowOutputs

MODES: tuple[str, ...] = ("faithful", "fast")
FAST_CORE = 256
"""Side of the kept core of a fast-mode window (pixels)."""
FAST_MARGIN = 32
"""Margin discarded on each side of a fast-mode window (window 320 = 10 x 32)."""
MODEL_MULTIPLE = 32
"""Window sides must be multiples of this (the U-Net downsamples five times)."""
PASS_CACHE_MB = 128
"""GDAL block cache during a pass (GDAL's default, 5 % of the RAM, would hold decoded blocks that
the chunk reader already keeps)."""
OUTPUT_BLOCK_ROWS = 256
"""Scene rows per output block (the block height of the pipeline's GeoTIFFs)."""


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


# ---------------------------------------------------------------------- stitching
def stitch(targets: Sequence[tuple[np.ndarray, np.ndarray]], pending: Sequence[tuple[int, int]], rows: AxisPlan,
           cols: AxisPlan, top: int, crop: int = 0) -> None:
    """Copy the written part of every window of a batch into the scene buffers.

    Windows of one window row whose written parts have the same columns relative to the window
    (every window but the first and last of a row) lie side by side in the scene, so each run
    of them is one copy instead of one per window.

    Args:
        targets: ``(buffer, source)`` pairs: buffer ``(combinations, layers, buffer rows,
            scene cols)``, source ``(combinations, windows, layers, w - 2 crop, w - 2 crop)``
            (window ``i`` of ``pending``).
        pending: ``(row index, col index)`` in the plans of every window of the batch, in order.
        rows: The plan of the window rows.
        cols: The plan of the window columns.
        top: Scene row of buffer row 0.
        crop: Pixels the sources lack on every side of their windows (their written parts
            must lie inside what is left).
    """
    index = np.asarray(pending, dtype=np.int64).reshape(-1, 2)
    r, c = index[:, 0], index[:, 1]
    first_col, end_col = cols.lo[c] - cols.starts[c], cols.hi[c] - cols.starts[c]
    new_run = np.ones(len(index), dtype=bool)
    new_run[1:] = ((r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1) | (first_col[1:] != first_col[:-1])
                   | (end_col[1:] != end_col[:-1]))
    starts = np.flatnonzero(new_run).tolist()
    for a, b in zip(starts, [*starts[1:], len(index)], strict=True):
        row, x0, x1 = r[a], int(first_col[a]), int(end_col[a])
        y, r0, r1 = int(rows.starts[row]), int(rows.lo[row]), int(rows.hi[row])
        c0 = int(cols.lo[c[a]])
        for buffer, source in targets:
            dest = buffer[:, :, r0 - top: r1 - top, c0: c0 + (b - a) * (x1 - x0)]
            dest = dest.reshape(*dest.shape[:3], b - a, x1 - x0, copy=False)  # a view: split the columns
            dest[...] = np.moveaxis(source[:, a:b, :, r0 - y - crop: r1 - y - crop, x0 - crop: x1 - crop], 1, 3)


# ---------------------------------------------------------------------- the scene pass
@dataclass(frozen=True)
class SceneBlock:
    """Complete scene rows of every combination's maps.

    Attributes:
        row: First scene row of the block.
        probabilities: float32 ``(combinations, classes, rows, cols)``, the mean over the
            models; 0 outside the area and where not classified.
        area: bool ``(rows, cols)``, the union of the area layers of the first stack.
        classes: uint8 ``(combinations, rows, cols)``, the class map (argmax + 1; 0 outside
            the area and where not classified).
        confidence: float32 ``(combinations, rows, cols)``, the largest probability (0 where
            ``classes`` is 0).
        dates_used: uint8 ``(combinations, rows, cols)``, per pixel the number of the
            combination's dates its map used (0: not classified), or None without cloud masks
            (every pixel used every date).
    """

    row: int
    probabilities: np.ndarray
    area: np.ndarray
    classes: np.ndarray
    confidence: np.ndarray
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
    fused: bool | None = None,
) -> Iterator[SceneBlock]:
    """Class maps of whole scenes for several date combinations, block by block.

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
        fused: Run each batch as one compiled call of the models and their post-processing
            (:func:`batch_function`; None: where the models allow it).

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
        height, width = datasets[0].height, datasets[0].width
        try:
            rows, cols = plan_axis(height, window, margin), plan_axis(width, window, margin)
        except ValueError:
            raise InputError(f"the scene ({height}x{width} px) is smaller than one {window}-px window") from None
        reader = ChunkReader(datasets, window, rows.starts.tolist())
        opened.callback(reader.close)  # before the datasets close
        masks = None
        if cloud_masks is not None:
            masks = ChunkReader([opened.enter_context(open_raster(path)) for path in cloud_masks], window,
                                 rows.starts.tolist(), np.uint8)
            opened.callback(masks.close)
        functions = pass_batches(models, combos, dates, n_bands, n_classes, window, margin, masks is not None,
                                 min_clear_dates, fused)
        in_use = sorted({d for c in combos for d in c})
        writes_core = (rows.lo - rows.starts == margin) & (rows.hi - rows.starts == window - margin)
        cols_core = (cols.lo - cols.starts == margin) & (cols.hi - cols.starts == window - margin)
        batch = batch_size or default_batch_size(window, dates)
        capacity = buffer_rows(window, len(cols.starts), batch, block_rows)
        maps = np.zeros((len(combos), n_classes, capacity, width), dtype=np.float32)
        classes = np.zeros((len(combos), capacity, width), dtype=np.uint8)
        confidence = np.zeros((len(combos), capacity, width), dtype=np.float32)
        area = np.zeros((capacity, width), dtype=bool)
        used = None if masks is None else np.zeros((len(combos), capacity, width), dtype=np.uint8)
        top = 0  # scene row of buffer row 0
        queues = {id(predict): _Queue(predict, batch, dates, window, n_bands, masks is not None)
                  for predict in functions.functions()}

        def flush(*which: _Queue) -> None:
            for queue in which or queues.values():
                if queue.pending:
                    out = queue.run()
                    targets = [(maps, out.probabilities), (classes[:, None], out.classes[:, :, None]),
                               (confidence[:, None], out.confidence[:, :, None])]
                    if used is not None:
                        targets.append((used[:, None], out.used[:, :, None]))
                    stitch(targets, queue.pending, rows, cols, top, out.crop)
                    queue.pending.clear()

        def take(rows_out: int) -> SceneBlock:
            nonlocal top
            inside = area[:rows_out]
            classified = inside if used is None else inside & (used[:, :rows_out] > 0)
            block = SceneBlock(top, maps[:, :, :rows_out] * inside, inside.copy(), classes[:, :rows_out] * classified,
                               confidence[:, :rows_out] * classified,
                               None if used is None else used[:, :rows_out] * inside)
            for buffer in (maps, classes, confidence, area, used):
                if buffer is not None:
                    _shift_rows(buffer, buffer.ndim - 2, rows_out)
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
                cloudy = None  # per pixel of the strip: some date of a combination not clear
                if functions.routed:
                    cloudy = ~clear_of(mask_strip[in_use, 0, r0 - y: r1 - y]).all(axis=0)
                area[r0 - top: r1 - top] = area_layers(strip[0, :, r0 - y: r1 - y], n_bands)
                for c, x in enumerate(cols.starts):
                    if skip_outside and not area[r0 - top: r1 - top, cols.lo[c]: cols.hi[c]].any():
                        continue
                    core = writes_core[r] and cols_core[c]
                    if cloudy is None or cloudy[:, cols.lo[c]: cols.hi[c]].any():
                        predict = functions.core if core else functions.edge
                    else:
                        predict = functions.core_clear if core else functions.edge_clear
                    queue = queues[id(predict)]
                    if queue.add(r, c, strip[:, :n_bands, :, x: x + window],
                                 None if mask_strip is None else mask_strip[:, 0, :, x: x + window]):
                        flush(queue)
                complete = min([int(rows.lo[q.pending[0][0]]) for q in queues.values() if q.pending], default=r1)
                while complete - top >= block_rows:
                    yield take(block_rows)
                bar.update(len(cols.starts))
            flush()
            while top < height:
                yield take(min(block_rows, height - top))


class _Queue:
    """Windows waiting for one batch function, read into its batch buffers.

    Args:
        predict: The batch function.
        batch: Windows per call.
        (the others: the batch's shape)
    """

    def __init__(self, predict: BatchFn, batch: int, dates: int, window: int, n_bands: int, masked: bool) -> None:
        self.predict = predict
        self.raw = np.zeros((batch, dates, window, window, n_bands), dtype=np.uint16)
        self.clear = np.zeros((batch, dates, window, window), dtype=bool) if masked else None
        self.pending: list[tuple[int, int]] = []  # (row index, col index) of the windows in ``raw``

    def add(self, r: int, c: int, bands: np.ndarray, mask: np.ndarray | None) -> bool:
        """Queue window ``(r, c)``: bands ``(dates, bands, w, w)``, cloud mask ``(dates, w, w)``; True when full."""
        self.raw[len(self.pending)] = np.moveaxis(bands, 1, -1)
        if self.clear is not None:
            self.clear[len(self.pending)] = clear_of(mask)
        self.pending.append((r, c))
        return len(self.pending) == len(self.raw)

    def run(self) -> WindowOutputs:
        """The maps of the queued windows (a full batch every call: one traced shape)."""
        count = len(self.pending)
        self.raw[count:] = 0
        if self.clear is not None:
            self.clear[count:] = False
        return self.predict(self.raw, self.clear)


def _shift_rows(buffer: np.ndarray, axis: int, rows_out: int) -> None:
    """Move a buffer's rows up by ``rows_out`` along ``axis`` and clear the freed rows at the end.

    Copied in pieces that do not overlap, so no temporary of the buffer's size is made.
    """
    capacity = buffer.shape[axis]
    lead = (slice(None),) * axis
    for start in range(0, capacity - rows_out, rows_out):
        end = min(start + rows_out, capacity - rows_out)
        buffer[(*lead, slice(start, end))] = buffer[(*lead, slice(start + rows_out, end + rows_out))]
    buffer[(*lead, slice(capacity - rows_out, None))] = 0
