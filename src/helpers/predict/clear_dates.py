"""Clouds in classification: per pixel, a combination's map uses only its dates that are clear there.

The cloud and shadow masks of step 03b (:mod:`helpers.data.clouds`) say, per date and pixel,
whether the image shows the ground. With masking on (``[clouds] use_in_classification``, the
default), the scene pass combines, for every pixel, only the dates of the combination that are
clear there:

* an FCN (and a monotemporal forest) averages its softmax over the clear dates;
* a sequence model gets the sequence of the clear dates, in chronological order: its ConvLSTM
  head runs on every window once per pattern of clear dates found in it, over the whole window
  (so that the neighbours of a pixel are seen on the same dates), the windows and patterns with
  as many clear dates together in one call; where the caller allows it, only on patches around
  the pattern's pixels (``patch_multiple``) and only for the pixels it keeps (``keep``);
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
    packed = np.packbits(clear, axis=1, bitorder="little")  # eight dates a byte
    codes = packed[:, 0].astype(np.int64)
    for byte in range(1, packed.shape[1]):
        codes |= packed[:, byte].astype(np.int64) << (8 * byte)
    return codes


def combine_clear(combine: ArrayFn, features: np.ndarray, clear: np.ndarray, n_classes: int, min_clear: int,
                  mean: bool = False, fixed_dates: bool = False, patch_multiple: int = 0,
                  keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One combination's probabilities from the dates that are clear at each pixel.

    A sequence model's head runs once per *item*, a window and one pattern of clear dates that
    occurs in it, on the whole window (so that a pixel's neighbours see the same dates as the
    pixel), and the item's output is kept at the pixels of its pattern. The items with the same
    number of clear dates go through the head together, whatever their pattern: each gets its
    own dates (:func:`_gathered`), so a batch of windows costs a few calls per sequence length
    in use (:func:`_chunks`) instead of one per pattern, none padded. Items whose pixels are
    far apart share one window of a call (:func:`_shared`).

    Args:
        combine: The model's combination ``(n, dates, w, w, features) -> (n, w, w, classes)``.
        features: ``(n, dates, w, w, features)``, the combination's per-date outputs.
        clear: bool ``(n, dates, w, w)``, which of these dates are clear at each pixel.
        n_classes: Number of model outputs.
        min_clear: Fewest clear dates a pixel needs to be classified (at least 1).
        mean: ``combine`` is the mean over the dates (an FCN): computed as a masked mean in
            one step instead of once per pattern.
        fixed_dates: ``combine`` takes only all the dates: pixels with a cloudy date are not classified.
        patch_multiple: 0: ``combine`` takes whole windows only. Otherwise ``combine`` also
            takes patches ``(n, dates, rows, cols, features)`` whose sides are multiples of this
            (or the window's side), and a pattern that fills a small part of a window runs on
            patches around its pixels instead (:func:`_patches`). Only for a head whose output
            at a pixel depends on the inputs within ``dates`` pixels (a 3x3 ConvLSTM, zero
            padded at the window's edges).
        keep: bool ``(n, w, w)``, the pixels whose scores the caller keeps (a window's core), or
            None for all. Scores elsewhere are left 0: a pattern found only there is not computed,
            and the others only on patches around their kept pixels. ``used`` covers every pixel.

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
    computed = used > 0 if keep is None else (used > 0) & keep
    codes = np.where(computed, pattern_codes(clear), -1)
    scores = np.zeros((n, *features.shape[2:4], n_classes), dtype=np.float32)
    windows, patterns, whole = _window_patterns(codes)
    lengths = _bit_counts(patterns, n_dates)
    on_window, patches = np.ones(len(patterns), dtype=bool), []
    if 0 < patch_multiple < max(codes.shape[1:]):
        on_window, patches = _patches(codes, windows, patterns, lengths, whole, n_dates, patch_multiple)
    for length in np.unique(lengths[on_window]).tolist():
        of_length = np.flatnonzero(on_window & (lengths == length))
        _on_windows(combine, features, codes, scores, (windows, patterns, whole), of_length, length)
    for shape in sorted({patch.shape for patch in patches}):
        same = [patch for patch in patches if patch.shape == shape]
        for start, size in _chunks(len(same), n):
            chosen = same[start: start + size]
            batch = np.empty((size, *shape, features.shape[-1]), dtype=features.dtype)
            for patch, inputs in zip(chosen, batch, strict=True):
                patch.copy_inputs(features, inputs)
            part = np.asarray(combine(batch), dtype=np.float32)
            for patch, out in zip(chosen, part, strict=True):
                np.copyto(patch.region(scores), out, where=patch.pixels[..., None])
    return scores, used


def _on_windows(combine: ArrayFn, features: np.ndarray, codes: np.ndarray, scores: np.ndarray,
                found: tuple[np.ndarray, np.ndarray, np.ndarray], items: np.ndarray, length: int) -> None:
    """The head on whole windows for ``items``, all of ``length`` clear dates, their pixels written to ``scores``.

    Args:
        found: Per item, its window, pattern and whether the pattern fills its window
            (:func:`_window_patterns`).
        items: Indices into ``found``.
    """
    windows, patterns, whole = found
    hosts, guests = _shared(codes, windows, patterns, whole, items, length)
    for start, size in _chunks(len(hosts), len(features)):
        chosen = hosts[start: start + size]
        batch = _gathered(features, windows[chosen], patterns[chosen], length)
        here = [(slot - start, item, reach) for slot, item, reach in guests if start <= slot < start + size]
        if here and np.shares_memory(batch, features):
            batch = batch.copy()
        for slot, item, reach in here:
            dates = _dates_of(int(patterns[item]), features.shape[1])
            np.copyto(batch[slot], features[windows[item]][dates], where=reach[None, :, :, None])
        part = np.asarray(combine(batch), dtype=np.float32)
        scores[windows[chosen][whole[chosen]]] = part[whole[chosen]]
        slots = [(slot, item) for slot, item in enumerate(chosen.tolist()) if not whole[item]]
        for slot, item in slots + [(slot, item) for slot, item, _ in here]:
            window = windows[item]
            np.copyto(scores[window], part[slot], where=(codes[window] == patterns[item])[..., None])


def _window_patterns(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items of a batch: every window with every pattern of clear dates found in it.

    Most windows hold one pattern (no cloud near them): they are found by one comparison, and
    only the others are searched for their distinct codes.

    Args:
        codes: int64 ``(n, w, w)`` pattern codes, -1 where a pixel is not classified.

    Returns:
        Per item, sorted by window then code: the window index, the pattern code (never -1)
        and whether the pattern covers the whole window.
    """
    first = codes[:, 0, 0]
    uniform = (codes == first[:, None, None]).all(axis=(1, 2))
    mixed = np.flatnonzero(~uniform)
    stride = int(codes.max(initial=0)) + 2  # keys window * stride + code + 1 are unique and sortable
    keys = np.unique(codes[mixed] + 1 + (mixed * stride)[:, None, None])
    windows = np.concatenate([np.flatnonzero(uniform), keys // stride])
    patterns = np.concatenate([first[uniform], keys % stride - 1])
    whole = np.concatenate([np.ones(int(uniform.sum()), dtype=bool), np.zeros(len(keys), dtype=bool)])
    keep = patterns >= 0
    order = np.lexsort((patterns[keep], windows[keep]))
    return windows[keep][order], patterns[keep][order], whole[keep][order]


def _shared(codes: np.ndarray, windows: np.ndarray, patterns: np.ndarray, whole: np.ndarray, items: np.ndarray,
            length: int) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """Items of one length that can share a head call with another, and with which.

    The head's output at a pixel depends on the inputs within ``length`` pixels (see
    :func:`_patches`). Two items whose pattern pixels, grown by ``length`` (their *reach*), do
    not overlap can go through the head in one window: the first item's window with the second
    one's features written over the second one's reach. Each keeps its own pixels, at the same
    place in the window, so the zero padding at the window's edges is the same. Items with a
    small reach are placed first fit, largest first.

    Returns:
        The items that get a place in a call (``hosts``, in the order of ``items`` for those that
        share nothing) and, per item placed in a host's call, ``(host's place in hosts, item,
        reach)``.
    """
    from scipy import ndimage

    area = codes.shape[1] * codes.shape[2]
    reaches = {}
    for item in items[~whole[items]].tolist():
        reach = ndimage.maximum_filter(codes[windows[item]] == patterns[item], size=2 * length + 1, mode="constant")
        if 2 * np.count_nonzero(reach) <= area:
            reaches[item] = reach
    alone = [item for item in items.tolist() if item not in reaches]
    hosts, guests = list(alone), []
    taken = np.zeros((len(reaches), *codes.shape[1:]), dtype=bool)
    places: list[int] = []  # index in hosts of each row of ``taken``
    for item in sorted(reaches, key=lambda i: -np.count_nonzero(reaches[i])):
        reach = reaches[item]
        free = np.flatnonzero(~(taken[: len(places)] & reach).any(axis=(1, 2)))
        if len(free):
            taken[free[0]] |= reach
            guests.append((places[free[0]], item, reach))
        else:
            taken[len(places)] = reach
            places.append(len(hosts))
            hosts.append(item)
    return np.asarray(hosts, dtype=np.int64), guests


def _dates_of(code: int, n_dates: int) -> list[int]:
    """The clear dates of a pattern code, in chronological order."""
    return [date for date in range(n_dates) if code >> date & 1]


def _bit_counts(patterns: np.ndarray, n_dates: int) -> np.ndarray:
    """Number of clear dates of every pattern code."""
    return ((patterns[:, None] >> np.arange(n_dates, dtype=np.int64)) & 1).sum(axis=1)


def _chunks(count: int, largest: int) -> list[tuple[int, int]]:
    """``(start, size)`` of calls covering ``count`` items: ``largest`` at a time, the rest in powers of two.

    A compiled model traces its call again for every new batch size. The batch's own size (what
    the pass without masks uses) and the powers of two below it are a handful of sizes per
    sequence length, and they cover any count exactly, so no call is padded with windows that
    would be computed for nothing.
    """
    chunks, start = [], 0
    while count - start >= largest:
        chunks.append((start, largest))
        start += largest
    rest = count - start
    for bit in reversed(range(rest.bit_length())):
        if rest >> bit & 1:
            chunks.append((start, 1 << bit))
            start += 1 << bit
    return chunks


def _gathered(features: np.ndarray, windows: np.ndarray, patterns: np.ndarray, length: int) -> np.ndarray:
    """Per item, its window's features on the pattern's clear dates in chronological order.

    Returns:
        ``(items, length, w, w, features)``.
    """
    n_dates = features.shape[1]
    first = int(windows[0])
    if length == n_dates and np.array_equal(windows, np.arange(first, first + len(windows))):
        return features[first: first + len(windows)]  # consecutive windows on all dates: no copy
    bits = (patterns[:, None] >> np.arange(n_dates, dtype=np.int64)) & 1
    dates = np.nonzero(bits)[1].reshape(len(patterns), length)  # row-major: each item's dates ascending
    return features[windows[:, None], dates]


@dataclass(frozen=True)
class _Patch:
    """A rectangle of one window on which one pattern is computed, and the pixels it gives.

    Attributes:
        window: Index of the window in the batch.
        dates: The pattern's clear dates (chronological indices into the combination).
        y: First row of the rectangle in the window.
        x: First column.
        pixels: bool ``(rows, cols)``, the pixels of the pattern taken from this rectangle.
    """

    window: int
    dates: tuple[int, ...]
    y: int
    x: int
    pixels: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(dates, rows, cols)``: patches of one shape go through the head together."""
        return (len(self.dates), *self.pixels.shape)

    def region(self, array: np.ndarray) -> np.ndarray:
        """The rectangle of the patch's window in ``array`` ``(n, [dates,] w, w, ...)``, a view."""
        rows, cols = self.pixels.shape
        if array.ndim == 5:
            return array[self.window, :, self.y: self.y + rows, self.x: self.x + cols]
        return array[self.window, self.y: self.y + rows, self.x: self.x + cols]

    def copy_inputs(self, features: np.ndarray, out: np.ndarray) -> None:
        """Write into ``out`` ``(dates, rows, cols, features)`` the rectangle on the pattern's dates."""
        region = self.region(features)
        for step, date in enumerate(self.dates):  # plain slice copies (np.take is slow on a strided source)
            out[step] = region[date]


def _patches(codes: np.ndarray, windows: np.ndarray, patterns: np.ndarray, lengths: np.ndarray, whole: np.ndarray,
             n_dates: int, multiple: int) -> tuple[np.ndarray, list[_Patch]]:
    """Patches for the items whose pattern fills a small part of their window.

    A ConvLSTM's output after ``t`` dates at a pixel depends on the inputs within ``t`` pixels
    (one 3x3 convolution per date, in each direction). So a rectangle of the window that holds
    a pixel's ``t``-neighbourhood (clipped to the window) gives it the same value as the whole
    window, provided it lies inside the window: its sides are either the window's edges, where
    the zero padding is the same, or at least ``t`` pixels away. Each connected part of the
    pattern's pixels grown by ``t`` gets the smallest such rectangle with sides rounded up to
    ``multiple`` (so that few shapes, each a traced head, are needed).

    Returns:
        Which items still run on the whole window (those whose rectangles would cover as much
        as the window), and the patches of the others.
    """
    from scipy import ndimage

    height, width = codes.shape[1:]
    on_window = np.ones(len(patterns), dtype=bool)
    patches: list[_Patch] = []
    for item in np.flatnonzero(~whole).tolist():
        window, length = int(windows[item]), int(lengths[item])
        pixels = codes[window] == patterns[item]
        reach = ndimage.maximum_filter(pixels, size=2 * length + 1, mode="constant", cval=False)
        labels, _ = ndimage.label(reach)
        dates = tuple(_dates_of(int(patterns[item]), n_dates))
        found = []
        for label, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            y, h = _span(rows, multiple, height)
            x, w = _span(cols, multiple, width)
            own = pixels[y: y + h, x: x + w] & (labels[y: y + h, x: x + w] == label)
            found.append(_Patch(window, dates, y, x, own))
        if sum(patch.pixels.size for patch in found) < height * width:
            on_window[item] = False
            patches.extend(found)
    return on_window, patches


def _span(part: slice, multiple: int, length: int) -> tuple[int, int]:
    """Start and size of ``part`` of an axis of ``length``, the size rounded up to ``multiple``, inside the axis."""
    size = min(length, -(-(part.stop - part.start) // multiple) * multiple)
    return min(part.start, length - size), size


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
