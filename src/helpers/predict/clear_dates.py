"""Clouds in classification: per pixel, a combination's map uses only its dates that are clear there.

The cloud and shadow masks of step 03b (:mod:`helpers.data.clouds`) say, per date and pixel,
whether the image shows the ground. With masking on (``[clouds] use_in_classification``, the
default), the scene pass combines, for every pixel, only the dates of the combination that are
clear there:

* an FCN (and a monotemporal forest) averages its softmax over the clear dates;
* a sequence model gets the sequence of the clear dates, in chronological order (its ConvLSTM
  head runs once per distinct pattern of clear dates in a batch of windows, on the windows that
  hold that pattern);
* a model that takes a fixed number of dates (a multitemporal forest) classifies only pixels
  clear on every date;
* a pixel with fewer clear dates than ``[clouds] min_clear_dates`` is *not classified*: class 0,
  probabilities 0, like a pixel outside the area.

For every map the pass counts the pixels classified from all dates, from fewer, and not
classified (:class:`ClearCounts`); the change maps leave the not-classified pixels out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.data.cloud_detectors import CLEAR

ArrayFn = Callable[[np.ndarray], np.ndarray]


def cloud_mask_paths(config: Config, dates: Sequence[str], level: str, reference: Path) -> list[Path]:
    """The cloud mask of every date, checked to exist and to lie on the grid of the stacks.

    Args:
        config: The study area.
        dates: The dates to classify.
        level: The processing level of the stacks.
        reference: A NEW stack of these dates (the grid the masks must have).

    Raises:
        InputError: Naming the first date without a mask (and how to make it, or to classify
            without masking), or a mask on another grid.
    """
    grid = grid_of_raster(reference)
    paths = []
    for date in dates:
        path = config.cloud_mask_path(date, level)
        if not path.is_file():
            raise InputError(f"{path}: no cloud mask for date {date}; run src/data_processing/03b_cloud_masks.py "
                             f"{date} {level} (or classify without masking: --no-cloud-mask, or "
                             "clouds.use_in_classification = false)")
        check_same_grid(path, grid, reference)
        paths.append(path)
    return paths


def pattern_codes(clear: np.ndarray) -> np.ndarray:
    """Per pixel, the set of clear dates as a bit pattern (bit ``t`` set: date ``t`` is clear).

    Args:
        clear: bool ``(n, dates, rows, cols)``.

    Returns:
        int64 ``(n, rows, cols)``.
    """
    bits = (np.int64(1) << np.arange(clear.shape[1], dtype=np.int64)).reshape(1, -1, 1, 1)
    return (clear.astype(np.int64) * bits).sum(axis=1)


def _dates_of(code: int, n_dates: int) -> list[int]:
    return [t for t in range(n_dates) if code >> t & 1]


def combine_clear(combine: ArrayFn, features: np.ndarray, clear: np.ndarray, n_classes: int, min_clear: int,
                  mean: bool = False, fixed_dates: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One combination's probabilities from the dates that are clear at each pixel.

    Args:
        combine: The model's combination ``(n, dates, w, w, features) -> (n, w, w, classes)``.
        features: ``(n, dates, w, w, features)``, the combination's per-date outputs.
        clear: bool ``(n, dates, w, w)``, which of these dates are clear at each pixel.
        n_classes: Number of model outputs.
        min_clear: Fewest clear dates a pixel needs to be classified (at least 1).
        mean: ``combine`` is the mean over the dates (an FCN): computed as a masked mean in
            one step instead of once per pattern.
        fixed_dates: ``combine`` takes only all the dates: pixels with a cloudy date are not classified.

    Returns:
        The probabilities ``(n, w, w, classes)`` (0 where not classified) and, per pixel, the
        number of dates used (uint8, 0 = not classified).
    """
    n, n_dates = features.shape[:2]
    counts = clear.sum(axis=1, dtype=np.int64)
    needed = n_dates if fixed_dates else max(1, min_clear)
    used = np.where(counts >= needed, counts, 0).astype(np.uint8)
    if mean:
        total = (features * clear.astype(np.float32)[..., None]).sum(axis=1)
        total /= np.maximum(used, 1).astype(np.float32)[..., None]
        total[used == 0] = 0.0
        return total.astype(np.float32, copy=False), used
    codes = np.where(used > 0, pattern_codes(clear), -1)
    scores = np.zeros((n, *features.shape[2:4], n_classes), dtype=np.float32)
    full = (1 << n_dates) - 1
    for code in np.unique(codes).tolist():
        if code < 0:
            continue
        windows = np.flatnonzero((codes == code).any(axis=(1, 2)))
        dates = slice(None) if code == full else _dates_of(code, n_dates)
        part = _padded_call(combine, features[windows][:, dates], n)
        scores[windows] += np.where((codes[windows] == code)[..., None], part, 0.0)
    return scores, used


def _padded_call(combine: ArrayFn, batch: np.ndarray, largest: int) -> np.ndarray:
    """``combine`` on ``batch`` padded with zeros to the next power of two (at most ``largest`` items).

    A compiled model traces its call again for every new batch size; the windows holding one
    pattern of clear dates vary in number from batch to batch, and padded to powers of two they
    need only a handful of traces per sequence length instead of one per count.
    """
    count = len(batch)
    size = min(max(largest, count), 1 << max(0, count - 1).bit_length())
    if size > count:
        batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), dtype=batch.dtype)])
    return np.asarray(combine(batch), dtype=np.float32)[:count]


@dataclass
class ClearCounts:
    """How the pixels of one map were classified.

    Attributes:
        all_dates: Area pixels classified from every date of the combination.
        fewer_dates: Area pixels classified from some of its dates (the others cloudy, shadowed or
            without data).
        not_classified: Area pixels with fewer clear dates than needed (class 0 in the map).
    """

    all_dates: int = 0
    fewer_dates: int = 0
    not_classified: int = 0
    by_count: dict[int, int] = field(default_factory=dict)

    def add(self, used: np.ndarray, area: np.ndarray, n_dates: int) -> None:
        """Count one block: ``used`` dates per pixel (0 = not classified), inside ``area``."""
        inside = used[area]
        histogram = np.bincount(inside, minlength=n_dates + 1)
        self.not_classified += int(histogram[0])
        self.all_dates += int(histogram[n_dates])
        self.fewer_dates += int(histogram[1:n_dates].sum())
        for count, pixels in enumerate(histogram.tolist()):
            if pixels:
                self.by_count[count] = self.by_count.get(count, 0) + int(pixels)

    @property
    def total(self) -> int:
        """Area pixels counted."""
        return self.all_dates + self.fewer_dates + self.not_classified

    def shares(self) -> dict[str, float]:
        """The three counts as shares of the area (0 when the area is empty)."""
        total = max(1, self.total)
        return {"all_dates": self.all_dates / total, "fewer_dates": self.fewer_dates / total,
                "not_classified": self.not_classified / total}

    def as_dict(self) -> dict[str, object]:
        """Counts, shares and the pixels per number of dates used, for the classification summary."""
        return {"pixels_all_dates": self.all_dates, "pixels_fewer_dates": self.fewer_dates,
                "pixels_not_classified": self.not_classified,
                **{f"share_{key}": round(value, 6) for key, value in self.shares().items()},
                "pixels_by_dates_used": {str(k): v for k, v in sorted(self.by_count.items())}}

    def line(self) -> str:
        """``clear: 93.1 % from all dates, 6.2 % from fewer, 0.7 % not classified``."""
        shares = self.shares()
        return (f"{100 * shares['all_dates']:.1f} % from all dates, {100 * shares['fewer_dates']:.1f} % from fewer, "
                f"{100 * shares['not_classified']:.1f} % not classified (clouds, shadows, no data)")


def clear_of(mask: np.ndarray) -> np.ndarray:
    """Where a cloud mask shows the ground (its clear class; cloud, shadow and no data are not)."""
    return mask == CLEAR
