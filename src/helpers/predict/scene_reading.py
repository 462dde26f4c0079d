"""Reading a scene's NEW stacks for the scene pass: row chunks read ahead, and the area layers.

The pass (:func:`helpers.predict.sliding_windows.predict_scene`) walks down the scene one row
of windows at a time. Reading the rows of every date in chunks of whole scene rows decodes each
GeoTIFF block about once, and reading the next chunk in a thread while the model works on this
one keeps the model from waiting for the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.windows import Window

CHUNK_ROWS = 288
"""Rows read at once (at least): a 256-row GeoTIFF block row plus one faithful window."""
AREA_LAYERS: frozenset[str] = frozenset({"area", "extra_area"})
"""Descriptions of the area layers of a NEW stack."""


class ChunkReader:
    """Row chunks of several same-grid stacks as one ``(dates, layers, rows, cols)`` array, read ahead.

    A chunk holds at least :data:`CHUNK_ROWS` rows (about one GeoTIFF block row, so that a block
    is decoded about once in faithful mode) or one window. The pass asks for the window rows in
    order, so the chunks it will need are known from the plan: while the pass works on one
    chunk, a thread reads the next into a second buffer (GDAL reads without the GIL), so the
    model rarely waits for the disk. Memory: two chunks.

    Args:
        datasets: The open stacks, one per date.
        window: Window side (rows asked for at once).
        starts: The window rows the pass will ask for, in order (to plan the chunks).
        dtype: Array type of the chunks.
    """

    def __init__(self, datasets: Sequence[rasterio.DatasetReader], window: int, starts: Sequence[int],
                 dtype: type = np.uint16) -> None:
        self.datasets = datasets
        self.height, self.width = datasets[0].height, datasets[0].width
        rows = min(max(window, CHUNK_ROWS), self.height)
        self.plan: list[tuple[int, int]] = []  # (top, rows) of every chunk, in the order they are needed
        for y in starts:
            if not self.plan or y + window > sum(self.plan[-1]):
                self.plan.append((int(y), min(self.height, int(y) + rows) - int(y)))
        shape = (len(datasets), datasets[0].count, rows, self.width)
        self.buffers = [np.empty(shape, dtype=dtype) for _ in range(2 if len(self.plan) > 1 else 1)]
        self.current = -1  # index into ``plan`` of the chunk in ``buffers[current % 2]``
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-reader") if len(self.plan) > 1 else None
        self.ahead: Future | None = None  # the read of chunk ``current + 1``

    def _read(self, index: int) -> None:
        top, rows = self.plan[index]
        out = self.buffers[index % len(self.buffers)]
        for date, ds in enumerate(self.datasets):
            ds.read(window=Window(0, top, self.width, rows), out=out[date, :, :rows])

    def rows_at(self, row: int, height: int) -> np.ndarray:
        """The rows ``[row, row + height)`` of every date (the next planned chunk when they leave this one)."""
        if self.current < 0 or not self.plan[self.current][0] <= row <= sum(self.plan[self.current]) - height:
            index = self.current + 1
            if index >= len(self.plan) or not self.plan[index][0] <= row <= sum(self.plan[index]) - height:
                raise ValueError(f"rows {row}..{row + height} were not planned")
            if self.ahead is not None:
                self.ahead.result()  # read by the thread meanwhile (its error, if any, is raised here)
                self.ahead = None
            else:
                self._read(index)
            self.current = index
            if self.pool is not None and index + 1 < len(self.plan):
                self.ahead = self.pool.submit(self._read, index + 1)
        top = self.plan[self.current][0]
        return self.buffers[self.current % len(self.buffers)][:, :, row - top: row - top + height]

    def close(self) -> None:
        """Wait for a read in flight (the datasets close after this) and stop the thread."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def area_layers(data: np.ndarray, n_bands: int) -> np.ndarray:
    """Union of the area layers (the layers after the bands, first axis) as a bool array.

    A stack without area layers counts as inside everywhere.
    """
    if data.shape[0] <= n_bands:
        return np.ones(data.shape[1:], dtype=bool)
    return np.any(data[n_bands:] != 0, axis=0)
