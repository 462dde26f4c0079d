"""Clouds in classification: per pixel, a combination's map uses only its dates that are clear there.

The cloud and shadow masks of step 03b (:mod:`helpers.data.clouds`) say, per date and pixel,
whether the image shows the ground. With masking on (``[clouds] use_in_classification``, the
default), the scene pass combines, for every pixel, only the dates of the combination that are
clear there:

* an FCN (and a monotemporal forest) averages its softmax over the clear dates;
* a sequence model gets the clear dates of each pixel, in chronological order. By default its
  ConvLSTM head runs once, stepping over each pixel's clear dates
  (:mod:`helpers.predict.masked_recurrence`, ``[clouds] sequence_masking = "recurrent"``). With
  ``"per_pattern"`` the head runs on every window once per pattern of clear dates found in it,
  over the whole window (so that the neighbours of a pixel are seen on the same dates), the
  windows and patterns with as many clear dates together in one call; where the caller allows
  it, a pattern that fills a small part of a window runs only on fixed square patches around
  its pixels (``patch_size``: one patch shape per sequence length, so one traced head each),
  and only for the pixels the caller keeps (``keep``);
* a model that takes a fixed number of dates (a multitemporal forest) classifies only pixels
  clear on every date;
* a pixel with fewer clear dates than ``[clouds] min_clear_dates`` is *not classified*: class 0,
  probabilities 0, like a pixel outside the area.

For every map the pass counts the pixels classified from all dates, from fewer, and not
classified (:class:`helpers.predict.clear_counts.ClearCounts`); the change maps leave the
not-classified pixels out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
                  mean: bool = False, fixed_dates: bool = False, patch_size: int = 0,
                  keep: np.ndarray | None = None,
                  masked: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One combination's probabilities from the dates that are clear at each pixel.

    A sequence model's head runs once per *item*, a window and one pattern of clear dates that
    occurs in it, on the whole window (so that a pixel's neighbours see the same dates as the
    pixel), and the item's output is kept at the pixels of its pattern. The items with the same
    number of clear dates go through the head together, whatever their pattern: each gets its
    own dates (:func:`_gathered`), so a batch of windows costs a few calls per sequence length
    in use (:func:`_chunks`) instead of one per pattern, none padded. Items whose pixels are
    far apart share one window of a call (:func:`_shared`). With ``patch_size``, the items
    whose pattern fills a small part of their window run on square patches of that side around
    their pixels instead (:func:`_patched`): the patches of one sequence length all have one
    shape, so a head that needs a static spatial size (Keras' ConvLSTM2D) is built and traced
    once per length for them, not once per rectangle.

    Args:
        combine: The model's combination ``(n, dates, w, w, features) -> (n, w, w, classes)``.
        features: ``(n, dates, w, w, features)``, the combination's per-date outputs.
        clear: bool ``(n, dates, w, w)``, which of these dates are clear at each pixel.
        n_classes: Number of model outputs.
        min_clear: Fewest clear dates a pixel needs to be classified (at least 1).
        mean: ``combine`` is the mean over the dates (an FCN): computed as a masked mean in
            one step instead of once per pattern.
        fixed_dates: ``combine`` takes only all the dates: pixels with a cloudy date are not classified.
        patch_size: 0: ``combine`` takes whole windows only. Otherwise ``combine`` also takes
            patches ``(n, dates, patch_size, patch_size, features)``, used for an item of ``t``
            dates that does not fill its window when ``patch_size - 2 t >= 1`` and the patch is
            smaller than the window, unless its patches, with those of the items sharing its
            window call, would cover as much as the window. Only for a head whose output at a
            pixel depends on the inputs within ``t`` pixels (a 3x3 ConvLSTM, zero padded at its
            input's edges).
        keep: bool ``(n, w, w)``, the pixels whose scores the caller keeps (a window's core), or
            None for all. Scores elsewhere are left 0: a pattern found only there is not computed,
            and the head runs only on the box of the kept pixels grown by its reach
            (:func:`_grown`), or on patches around them. ``used`` covers every pixel.
        masked: The combination taking the clear masks too, ``(features, clear) -> (n, w, w,
            classes)`` (:mod:`helpers.predict.masked_recurrence`): one call instead of one per
            pattern (``combine``, ``patch_size`` and ``keep`` are then not used).

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
    if masked is not None and not fixed_dates:
        scores = np.asarray(masked(features, clear), dtype=np.float32)
        scores[used == 0] = 0.0
        return scores, used
    computed = used > 0 if keep is None else (used > 0) & keep
    codes = np.where(computed, pattern_codes(clear), -1)
    scores = np.zeros((n, *features.shape[2:4], n_classes), dtype=np.float32)
    if not computed.any():
        return scores, used
    box = (0, codes.shape[1], 0, codes.shape[2])
    if keep is not None:  # the box of the kept pixels: the same for every batch (one head shape per length)
        rows, cols = (np.flatnonzero(keep.any(axis=axes)) for axes in ((0, 2), (0, 1)))
        box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    found = _window_patterns(codes[:, box[0]: box[1], box[2]: box[3]])  # ``whole``: fills the box
    lengths = _bit_counts(found[1], n_dates)
    for length in np.unique(lengths).tolist():
        y, x = _grown(box, length, codes.shape[1:])  # all the head needs for the box
        region_codes, region_scores, region_features = codes[:, y, x], scores[:, y, x], features[:, :, y, x]
        calls = _shared(region_codes, *found, np.flatnonzero(lengths == length), length)
        calls, patches = _patched(region_codes, found, calls, length, patch_size)
        _on_windows(combine, region_features, region_codes, region_scores, found, calls, length)
        if patches:
            _on_patches(combine, region_features, region_scores, patches, patch_size)
    if keep is not None:
        scores[~computed] = 0.0  # a whole item's call also wrote the box's surroundings
    return scores, used


def _grown(box: tuple[int, int, int, int], reach: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of ``box`` grown by ``reach`` pixels on every side, inside ``shape``.

    The head's output at a pixel depends on the inputs within ``reach`` pixels (one 3x3 step per
    date): on this region, zero padded at its edges, it gives the whole window's values on the box
    (an edge of the region is either the window's edge, padded the same, or ``reach`` away). In
    faithful mode a window's core is 16 of 32 px: a head of 4 dates then runs on 24 x 24 px.
    """
    y0, y1, x0, x1 = box
    return (slice(max(0, y0 - reach), min(shape[0], y1 + reach)),
            slice(max(0, x0 - reach), min(shape[1], x1 + reach)))


Calls = tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]
"""Whole-window calls of one length: the hosts and their guests (:func:`_shared`)."""


def _on_windows(combine: ArrayFn, features: np.ndarray, codes: np.ndarray, scores: np.ndarray,
                found: tuple[np.ndarray, np.ndarray, np.ndarray], calls: Calls, length: int) -> None:
    """The head on whole windows for items of ``length`` clear dates, their pixels written to ``scores``.

    Args:
        found: Per item, its window, pattern and whether the pattern fills its window
            (:func:`_window_patterns`).
        calls: The items as hosts and guests of windows (:func:`_shared`).
    """
    windows, patterns, whole = found
    hosts, guests = calls
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
            length: int) -> Calls:
    """Items of one length that can share a head call with another, and with which.

    The head's output at a pixel depends on the inputs within ``length`` pixels (see
    :func:`_patched`). Two items whose pattern pixels, grown by ``length`` (their *reach*), do
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
    """A square patch of one window on which one pattern is computed, and the pixels it gives.

    Attributes:
        window: Index of the window in the batch.
        dates: The pattern's clear dates (chronological indices into the combination).
        y: First row of the patch in the window.
        x: First column.
        pixels: bool ``(side, side)``, the pattern's pixels taken from this patch (those of its cell).
    """

    window: int
    dates: tuple[int, ...]
    y: int
    x: int
    pixels: np.ndarray

    def region(self, array: np.ndarray) -> np.ndarray:
        """The patch's square of its window in ``array`` ``(n, [dates,] w, w, ...)``, a view."""
        rows, cols = self.pixels.shape
        if array.ndim == 5:
            return array[self.window, :, self.y: self.y + rows, self.x: self.x + cols]
        return array[self.window, self.y: self.y + rows, self.x: self.x + cols]

    def copy_inputs(self, features: np.ndarray, out: np.ndarray) -> None:
        """Write into ``out`` ``(dates, side, side, features)`` the patch on the pattern's dates."""
        region = self.region(features)
        for step, date in enumerate(self.dates):  # plain slice copies (np.take is slow on a strided source)
            out[step] = region[date]


def _patched(codes: np.ndarray, found: tuple[np.ndarray, np.ndarray, np.ndarray], calls: Calls, length: int,
             size: int) -> tuple[Calls, list[_Patch]]:
    """The window calls of one length whose items go on square patches of side ``size`` instead.

    A ConvLSTM's output after ``t`` dates at a pixel depends on the inputs within ``t`` pixels
    (one 3x3 convolution per date, in each direction). A patch therefore gives the whole
    window's value in its *valid part*: all but ``t`` pixels on each side, except on a side
    lying on the window's edge, where the zero padding is the same as the window's. Each axis
    of length ``L`` is tiled into cells of side ``s = size - 2 t``, cell ``i`` being
    ``[i s, min((i + 1) s, L))``, whose patch starts at ``a = clamp(i s - t, 0, L - size)``.
    Every cell lies in its patch's valid part:

    * ``a = i s - t``: the valid part is ``[i s, (i + 1) s)`` (or reaches 0 or ``L`` where
      the patch touches the window's edge), which holds the cell;
    * ``a = 0`` (``i s < t``): the valid part is ``[0, size - t)`` and the cell ends at most
      at ``(i + 1) s <= s + t = size - t``;
    * ``a = L - size`` (``i s - t > L - size > 0``): the valid part is ``[L - size + t, L)``
      and the cell starts at ``i s > L - size + t``.

    The cells holding pixels of an item (its pattern's pixels that are computed) each give one
    patch, which keeps the item's pixels of its cell only. A window call (a host and its
    guests) goes on patches when none of its items fills its window and their patches cover
    less than the window: so patches never cost more than the call they replace.

    Args:
        codes: int64 ``(n, rows, cols)`` pattern codes, -1 where a pixel is not computed.
        found: Per item, its window, pattern and whether it fills its window (:func:`_window_patterns`).
        calls: The items of ``length`` dates as hosts and guests of windows (:func:`_shared`).
        length: Their number of clear dates ``t``.
        size: The patch side, 0 for none.

    Returns:
        The window calls left (all if ``size`` is 0, not smaller than the window or leaves no
        valid part, ``size - 2 t < 1``) and the patches of the others.
    """
    windows, patterns, whole = found
    hosts, guests = calls
    rows, cols = codes.shape[1:]
    if not (0 < size < min(rows, cols) and size - 2 * length >= 1):
        return calls, []
    step = size - 2 * length
    members: list[list[int]] = [[host] for host in hosts.tolist()]
    for place, item, _ in guests:
        members[place].append(item)
    moved = np.zeros(len(hosts), dtype=bool)
    patches: list[_Patch] = []
    for place, items in enumerate(members):
        if whole[items].any():
            continue
        masks, cells = [], []
        for item in items:
            masks.append(codes[windows[item]] == patterns[item])
            cells.append(_cells_with(masks[-1], step))
            if sum(len(rows_of) for rows_of, _ in cells) * size * size >= rows * cols:
                break  # the window call costs less: kept
        else:
            moved[place] = True
            for item, pixels, of_item in zip(items, masks, cells, strict=True):
                starts = _patch_starts(of_item, pixels.shape, size, length)
                own = _cell_pixels(pixels, of_item, starts, size, step)
                code = int(patterns[item])
                dates = tuple(_dates_of(code, code.bit_length()))  # no clear date above its highest bit
                patches.extend(_Patch(int(windows[item]), dates, y, x, mask)
                               for y, x, mask in zip(*(a.tolist() for a in starts), own, strict=True))
    places = np.cumsum(~moved) - 1  # a kept host's new place
    kept = [(int(places[place]), item, reach) for place, item, reach in guests if not moved[place]]
    return (hosts[~moved], kept), patches


def _cells_with(pixels: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the ``step`` x ``step`` cells of a window holding any of ``pixels``."""
    rows, cols = pixels.shape
    cell_rows, cell_cols = -(-rows // step), -(-cols // step)
    padded = np.zeros((cell_rows * step, cell_cols * step), dtype=bool)
    padded[:rows, :cols] = pixels
    return np.nonzero(padded.reshape(cell_rows, step, cell_cols, step).any(axis=(1, 3)))


def _patch_starts(cells: tuple[np.ndarray, np.ndarray], shape: tuple[int, int], size: int,
                  reach: int) -> tuple[np.ndarray, np.ndarray]:
    """First row and column of each cell's patch: ``reach`` before the cell, inside the window."""
    step = size - 2 * reach
    (rows, cols), (cell_rows, cell_cols) = shape, cells
    return np.clip(cell_rows * step - reach, 0, rows - size), np.clip(cell_cols * step - reach, 0, cols - size)


def _cell_pixels(pixels: np.ndarray, cells: tuple[np.ndarray, np.ndarray], starts: tuple[np.ndarray, np.ndarray],
                 size: int, step: int) -> np.ndarray:
    """bool ``(patches, size, size)``: per patch, ``pixels`` inside its cell, in the patch's coordinates."""
    ys, xs = (start[:, None] + np.arange(size) for start in starts)  # (patches, size) window rows and columns
    in_rows = ys // step == cells[0][:, None]
    in_cols = xs // step == cells[1][:, None]
    return pixels[ys[:, :, None], xs[:, None, :]] & in_rows[:, :, None] & in_cols[:, None, :]


def _on_patches(combine: ArrayFn, features: np.ndarray, scores: np.ndarray, patches: list[_Patch],
                size: int) -> None:
    """The head on ``patches``, all of one sequence length, their pixels written to ``scores``.

    The patches go in calls of as many pixels as the batch's windows (rounded down to a power of
    two patches) and the powers of two below (:func:`_chunks`), so a compiled head traces a
    handful of batch sizes for the one patch shape, and a batch of few large windows (fast mode)
    does not send its patches one by one.
    """
    length = len(patches[0].dates)
    as_many_pixels = len(features) * features.shape[2] * features.shape[3] // (size * size)
    for start, count in _chunks(len(patches), max(1, 1 << (as_many_pixels.bit_length() - 1))):
        chosen = patches[start: start + count]
        batch = np.empty((count, length, size, size, features.shape[-1]), dtype=features.dtype)
        for patch, inputs in zip(chosen, batch, strict=True):
            patch.copy_inputs(features, inputs)
        part = np.asarray(combine(batch), dtype=np.float32)
        for patch, out in zip(chosen, part, strict=True):
            np.copyto(patch.region(scores), out, where=patch.pixels[..., None])


def clear_of(mask: np.ndarray) -> np.ndarray:
    """Where a cloud mask shows the ground (its clear class; cloud, shadow and no data are not)."""
    return mask == CLEAR
