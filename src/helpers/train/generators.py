"""Training data: tile sets loaded once, normalisation, augmentation and Keras batch generators.

The tiles of one (date, split) are read from their GeoTIFFs once, stored as ``.npy`` files
beside the tile folder and memory-mapped on every later load, so no batch ever re-reads a
tile file. Batches are assembled with numpy gathers: normalisation, flips, the rotation
(bilinear for the bands, nearest for the labels) and the one-hot encoding are vectorised
over the batch, the dates of a sequence and the bands.

Randomness: every batch draws from a generator seeded with ``(seed, epoch, index)``, so a
run with a fixed seed sees the same batches, whatever order Keras asks for them in.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.io import atomic_path, open_raster, write_json_atomic, write_text_atomic
from helpers.train.normalisation import Normaliser

MAX_ANGLE = 45.0
"""Largest rotation of the augmentation, in degrees (the original's ``rotation_range``)."""
_STATS_CHUNK = 256
"""Tiles per chunk when computing the band statistics (bounds the float64 temporaries)."""
_MAX_CHECKED_COMBINATIONS = 5000
"""Up to this many date combinations, a random-sequence generator checks them all up front."""


# ---------------------------------------------------------------------- tile sets
@dataclass
class TileSet:
    """All tiles of one split of one date.

    Attributes:
        x: Band values, uint16 (n, H, W, bands) (often a read-only memory map).
        y: Ground-truth class ids, uint8 (n, H, W) (0 = outside the study area).
        endings: Tile name endings (``tile_RRR_CCC``), sorted, one per tile.
        date: The date (``YYYYMMDD``).
        split: The subset (train, valid or test).
    """

    x: np.ndarray
    y: np.ndarray
    endings: list[str]
    date: str = ""
    split: str = ""

    def __len__(self) -> int:
        return len(self.endings)


def tile_cache_paths(config: Config, date: str, split: str, level: str | None = None) -> tuple[Path, Path, Path]:
    """The cache files of one split of one date: bands, labels and endings.

    They lie beside the tile folder: ``{date}_{level}_{split}_x.npy``, ``..._y.npy`` and
    ``..._endings.txt``.
    """
    level = config.check_level(level)
    base = config.date_dir(date, "TRAIN") / f"{date}_{level}_{split}"
    return Path(f"{base}_x.npy"), Path(f"{base}_y.npy"), Path(f"{base}_endings.txt")


def load_tiles(config: Config, date: str, split: str, level: str | None = None) -> TileSet:
    """Load the tiles of one split of one date, reading the GeoTIFFs only once.

    The first call reads every tile file and writes the cache (see :func:`tile_cache_paths`);
    later calls memory-map the cache. The cache is rebuilt when the tile folder or the
    tiling summary JSON is newer than it (after re-tiling).

    Args:
        config: The study-area configuration.
        date: The date (``YYYYMMDD``).
        split: ``train``, ``valid`` or ``test``.
        level: Processing level; None means the config's.

    Returns:
        The tile set, tiles sorted by name.

    Raises:
        InputError: If the tile folder is missing or holds no tiles, or a tile does not have
            the expected layers or size.
    """
    level = config.check_level(level)
    folder = config.tiles_dir(date, level, split)
    if not folder.is_dir():
        raise InputError(f"{folder}: no {split} tiles for {date} (folder missing); run "
                         f"src/data_processing/05_split_into_tiles.py {date} {level} TRAIN "
                         f"(or 08a_process_train_batch.py) first")
    n_bands = len(config.bands(level))
    cache = tile_cache_paths(config, date, split, level)
    sources = [folder, config.tiles_summary_path(date, level)]
    if _cache_is_fresh(cache, sources):
        cached = _read_cache(cache, n_bands, date, split)
        if cached is not None:
            return cached
    tiles = _read_tile_folder(folder, date, level, split, n_bands, config.tile_size)
    try:
        _write_cache(cache, tiles)
    except OSError as error:  # a read-only data folder: train from memory, just slower to start
        warnings.warn(f"could not write the tile cache {cache[0]} ({error}); tiles are kept in memory",
                      stacklevel=2)
    return tiles


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _cache_is_fresh(cache: Sequence[Path], sources: Sequence[Path]) -> bool:
    """True if every cache file exists and none is older than any existing source."""
    cache_times = [_mtime_ns(p) for p in cache]
    source_times = [t for t in (_mtime_ns(p) for p in sources) if t is not None]
    if any(t is None for t in cache_times):
        return False
    oldest = min(t for t in cache_times if t is not None)
    return all(oldest >= t for t in source_times)


def _read_cache(cache: Sequence[Path], n_bands: int, date: str, split: str) -> TileSet | None:
    """Memory-map a cache; None if it is unreadable or inconsistent (then it is rebuilt)."""
    x_path, y_path, endings_path = cache
    try:
        x = np.load(x_path, mmap_mode="r")
        y = np.load(y_path, mmap_mode="r")
        endings = endings_path.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return None
    consistent = (x.ndim == 4 and x.shape[-1] == n_bands and x.dtype == np.uint16 and y.dtype == np.uint8
                  and y.shape == x.shape[:3] and len(endings) == len(x) > 0)
    return TileSet(x, y, endings, date, split) if consistent else None


def _write_cache(cache: Sequence[Path], tiles: TileSet) -> None:
    """Write the cache atomically; the endings file, written last, completes it."""
    x_path, y_path, endings_path = cache
    for path, array in ((x_path, tiles.x), (y_path, tiles.y)):
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: np.save would add ".npy"
            np.save(handle, array)
    write_text_atomic(endings_path, "\n".join(tiles.endings) + "\n")


def _read_tile_folder(folder: Path, date: str, level: str, split: str, n_bands: int, tile_size: int) -> TileSet:
    """Read every ``{date}_{level}_tile_RRR_CCC.tif`` of a folder into one tile set."""
    pattern = re.compile(rf"^{re.escape(f'{date}_{level}_')}(tile_\d+_\d+)\.tif$")
    matches = sorted((p.name, p, m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))
    files = [path for _, path, _ in matches]
    if not files:
        raise InputError(f"{folder}: the {split} split of {date} holds no tiles; re-run "
                         f"src/data_processing/05_split_into_tiles.py {date} {level} TRAIN --force, or leave "
                         f"the date out of the training dates")
    endings = [ending for _, _, ending in matches]
    x = np.empty((len(files), tile_size, tile_size, n_bands), dtype=np.uint16)
    y = np.empty((len(files), tile_size, tile_size), dtype=np.uint8)
    for i, path in enumerate(files):  # one read per tile file, once per (date, split)
        with open_raster(path) as src:
            data = src.read()
        if data.shape != (n_bands + 1, tile_size, tile_size):
            raise InputError(f"{path}: expected {n_bands} bands + 1 ground-truth layer of {tile_size}x{tile_size} "
                             f"px, found {data.shape[0]} layers of {data.shape[1]}x{data.shape[2]} px")
        labels = data[n_bands]
        if labels.max() > 255:
            raise InputError(f"{path}: ground-truth layer holds class ids above 255")
        x[i] = np.moveaxis(data[:n_bands], 0, -1)
        y[i] = labels
    return TileSet(x, y, endings, date, split)


# ---------------------------------------------------------------------- normalisation
def band_statistics(tile_sets: Sequence[TileSet]) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-band mean and (population) standard deviation over every pixel of the sets.

    Two passes over the tiles in chunks, accumulating in float64.

    Returns:
        (mean, std), float64 (bands,).
    """
    n_bands = tile_sets[0].x.shape[-1]
    total = 0
    sums = np.zeros(n_bands)
    for chunk in _chunks(tile_sets, n_bands):
        sums += chunk.sum(axis=0, dtype=np.float64)
        total += chunk.shape[0]
    if total == 0:
        raise InputError("no training pixels to compute the normalisation from")
    mean = sums / total
    squares = np.zeros(n_bands)
    for chunk in _chunks(tile_sets, n_bands):
        centred = chunk - mean  # float64
        squares += np.einsum("ij,ij->j", centred, centred)
    return mean, np.sqrt(squares / total)


def _chunks(tile_sets: Sequence[TileSet], n_bands: int):
    for tiles in tile_sets:
        for start in range(0, len(tiles.x), _STATS_CHUNK):
            yield np.asarray(tiles.x[start:start + _STATS_CHUNK]).reshape(-1, n_bands)


def normaliser_for(config: Config, level: str | None, train_sets: Sequence[TileSet],
                   save_to: Path | None = None) -> Normaliser:
    """The normalisation of a study area: the config's constants, or computed from training tiles.

    Args:
        config: The configuration; ``normalisation.mean/std = "compute"`` (None in the config
            object) means computing them from ``train_sets``.
        level: Processing level; None means the config's.
        train_sets: The training tile sets (used only when computing).
        save_to: Where to save computed values as JSON ``{"mean": [...], "std": [...]}``
            (atomically); None saves nothing. Ignored for constants from the config.

    Returns:
        The normaliser.

    Raises:
        InputError: If the config's constants do not match the level's band count, or there
            are no training tiles to compute from.
    """
    level = config.check_level(level)
    n_bands = len(config.bands(level))
    if config.norm_mean is not None and config.norm_std is not None:
        if len(config.norm_mean) != n_bands:
            raise InputError(f"{config.source}: normalisation.mean/std give {len(config.norm_mean)} values, but "
                             f"level {level} has {n_bands} bands; give {n_bands} values or \"compute\"")
        return Normaliser.from_values(config.norm_mean, config.norm_std)
    if not train_sets:
        raise InputError(f"{config.source}: normalisation = \"compute\" needs training tiles, none were given")
    mean, std = band_statistics(train_sets)
    if np.any(std == 0):
        constant = [config.bands(level)[i] for i in np.flatnonzero(std == 0)]
        warnings.warn(f"bands {constant} are constant in the training tiles; their std is set to 1", stacklevel=2)
        std = np.where(std == 0, 1.0, std)
    if save_to is not None:
        write_json_atomic(save_to, {"mean": mean.tolist(), "std": std.tolist()})
    return Normaliser.from_values(mean, std)


# ---------------------------------------------------------------------- labels
def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot encode class ids: class c goes to channel c-1, label 0 to all zeros.

    Args:
        labels: Integer class ids (..., H, W), 0..n_classes.
        n_classes: Number of channels (the largest class id).

    Returns:
        float32 (..., H, W, n_classes).

    Raises:
        ValueError: If a label exceeds ``n_classes``.
    """
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) > n_classes:
        raise ValueError(f"label {int(labels.max())} exceeds the number of classes {n_classes}")
    table = np.zeros((n_classes + 1, n_classes), dtype=np.float32)
    table[1:] = np.eye(n_classes, dtype=np.float32)
    rows = table.view(np.dtype((np.void, table.itemsize * n_classes))).reshape(-1)  # one opaque item per class
    return np.take(rows, labels, mode="clip").view(np.float32).reshape(*labels.shape, n_classes)


# ---------------------------------------------------------------------- augmentation
def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """Map integer indices into 0..size-1 by reflection about the edge pixels (``d c b | a b c d | c b a``).

    This is skimage's ``mode="reflect"`` (scipy.ndimage's ``"mirror"``): the edge pixel is not repeated.
    """
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.abs(index) % period
    return np.minimum(folded, period - folded)


@functools.lru_cache(maxsize=8)
def _mirror_tables(height: int, width: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Look-up tables of the mirrored row offsets (``row * width``) and columns, and their paddings.

    A rotation about the tile centre keeps every source coordinate within the circle through
    the corner pixels, so the tables cover that circle plus one pixel for the bilinear
    neighbour (for any angle).
    """
    radius = math.hypot((height - 1) / 2, (width - 1) / 2)
    pad_r = math.ceil(radius - (height - 1) / 2) + 2
    pad_c = math.ceil(radius - (width - 1) / 2) + 2
    rows = _mirror(np.arange(-pad_r, height + pad_r), height) * width
    cols = _mirror(np.arange(-pad_c, width + pad_c), width)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return pad_r, pad_c, rows, cols


def source_coordinates(shape: tuple[int, int], flip_ud: np.ndarray, flip_lr: np.ndarray,
                       angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of the augmented tiles is taken from in the input tiles.

    The augmentation is, in this order: up/down flip, left/right flip, rotation by ``angle``
    degrees counter-clockwise about the tile centre ``((W-1)/2, (H-1)/2)`` as in
    ``skimage.transform.rotate``.

    Args:
        shape: Tile (H, W).
        flip_ud: Boolean (B,).
        flip_lr: Boolean (B,).
        angles: Degrees (B,).

    Returns:
        Source rows and columns, float64 (B, H, W).
    """
    height, width = shape
    centre_r, centre_c = height / 2 - 0.5, width / 2 - 0.5
    theta = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    dr = np.arange(height, dtype=np.float64)[:, None] - centre_r
    dc = np.arange(width, dtype=np.float64)[None, :] - centre_c
    rows = sin * dc + cos * dr + centre_r
    cols = cos * dc - sin * dr + centre_c
    # the flips come first, so the rotated image samples the flipped one: map back to the input
    rows = np.where(np.asarray(flip_ud)[:, None, None], height - 1 - rows, rows)
    cols = np.where(np.asarray(flip_lr)[:, None, None], width - 1 - cols, cols)
    return rows, cols


def transform_batch(x: np.ndarray, y: np.ndarray | None, flip_ud: np.ndarray, flip_lr: np.ndarray,
                    angles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip and rotate every sample of a batch with given parameters (reflect padding).

    Bands are interpolated bilinearly, labels by nearest neighbour, so labels keep their
    class ids. Every date of a sequence gets its sample's parameters.

    Args:
        x: float32 (B, H, W, C) or (B, T, H, W, C).
        y: Labels (B, H, W) or None.
        flip_ud: Boolean (B,): flip up/down.
        flip_lr: Boolean (B,): flip left/right.
        angles: Rotation angles in degrees (B,), counter-clockwise.

    Returns:
        The transformed x (float32, same shape) and y (same dtype and shape, or None).
    """
    sequence = x.ndim == 5
    xs = x if sequence else x[:, None]
    batch, steps, height, width, channels = xs.shape
    pixels = height * width
    rows, cols = source_coordinates((height, width), flip_ud, flip_lr, angles)

    # all dates and bands of a pixel side by side, viewed as one opaque item: one cheap gather serves them all
    features = steps * channels
    size = batch * pixels
    item = np.dtype((np.void, 4 * features))
    by_pixel = np.moveaxis(xs, 1, 3)
    if not (by_pixel.flags.c_contiguous and by_pixel.dtype == np.float32):
        buffer = _scratch("by_pixel", by_pixel.shape, np.float32)
        np.copyto(buffer, by_pixel)
        by_pixel = buffer
    items = by_pixel.reshape(size, features).view(item).reshape(-1)

    row0 = np.floor(rows)
    col0 = np.floor(cols)
    fr = (rows - row0).astype(np.float32).reshape(size, 1)
    fc = (cols - col0).astype(np.float32).reshape(size, 1)
    pad_r, pad_c, row_lut, col_lut = _mirror_tables(height, width)
    row0 = row0.astype(np.intp).reshape(size) + pad_r
    col0 = col0.astype(np.intp).reshape(size) + pad_c
    offsets = np.repeat(np.arange(batch) * pixels, pixels)
    r_lo = offsets + row_lut[row0]
    r_hi = offsets + row_lut[row0 + 1]
    c_lo, c_hi = col_lut[col0], col_lut[col0 + 1]

    # the output of a plain tile batch is returned as it is; a sequence batch is re-ordered afterwards
    shape = (size, features)
    result = _scratch("result", shape, np.float32) if sequence else np.empty(shape, np.float32)
    corner = _scratch("corner", shape, np.float32)  # reused buffers: no page faults per batch
    index = _scratch("index", (size,), np.intp)
    # mode="clip": the indices are valid by construction, and "raise" would buffer the output
    np.take(items, np.add(r_lo, c_lo, out=index), out=result.view(item).reshape(-1), mode="clip")
    result *= (1 - fr) * (1 - fc)
    for r, c, weight in ((r_lo, c_hi, (1 - fr) * fc), (r_hi, c_lo, fr * (1 - fc)), (r_hi, c_hi, fr * fc)):
        np.take(items, np.add(r, c, out=index), out=corner.view(item).reshape(-1), mode="clip")
        corner *= weight
        result += corner
    if sequence:
        out = np.moveaxis(result.reshape(batch, height, width, steps, channels), 3, 1).copy()
    else:
        out = result.reshape(batch, height, width, channels)

    labels = None
    if y is not None:
        nearest_r = row_lut[np.floor(rows + 0.5).astype(np.intp).reshape(size) + pad_r]
        nearest_c = col_lut[np.floor(cols + 0.5).astype(np.intp).reshape(size) + pad_c]
        source = offsets + nearest_r + nearest_c
        labels = np.take(np.ascontiguousarray(y).reshape(-1), source, mode="clip").reshape(batch, height, width)
    return out, labels


_WORKSPACE = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A buffer of this thread, reused from batch to batch, for intermediate results only.

    Fresh multi-megabyte arrays are page-faulted in on every batch (the allocator gives them
    back to the system when freed), which cost more than the arithmetic; reusing them does not.
    """
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    count = math.prod(shape)
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < count:
        buffer = np.empty(count, dtype)
        buffers[name] = buffer
    return buffer[:count].reshape(shape)


def augmentation_parameters(batch: int, rng: np.random.Generator,
                            max_angle: float = MAX_ANGLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw per-sample flips (p = 0.5 each) and rotation angles U(-max_angle, max_angle).

    Returns:
        (flip_ud, flip_lr, angles), each (batch,).
    """
    flip_ud = rng.random(batch) < 0.5
    flip_lr = rng.random(batch) < 0.5
    angles = rng.uniform(-max_angle, max_angle, batch)
    return flip_ud, flip_lr, angles


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            max_angle: float = MAX_ANGLE) -> tuple[np.ndarray, np.ndarray]:
    """Random up/down and left/right flips and a rotation, the same for every date of a sample.

    Bands are interpolated bilinearly with reflect padding (as the original's
    ``skimage.transform.rotate(order=1, mode="reflect")``); labels by nearest neighbour
    (the original rotated them bilinearly, which invented class ids at class borders).

    Args:
        x: float32 (B, H, W, C) or (B, T, H, W, C).
        y: Labels (B, H, W).
        rng: The random generator.
        max_angle: Largest rotation in degrees.

    Returns:
        Augmented (x, y).
    """
    flip_ud, flip_lr, angles = augmentation_parameters(x.shape[0], rng, max_angle)
    out, labels = transform_batch(x, y, flip_ud, flip_lr, angles)
    assert labels is not None
    return out, labels


# ---------------------------------------------------------------------- Keras generators
class _TileBatches(keras.utils.PyDataset):
    """Shared machinery: tile sets loaded once, seeded draws, normalisation, augmentation."""

    def __init__(self, config: Config, split: str, batch_size: int, steps: int, augment: bool,
                 seed: int | None, normaliser: Normaliser | None, level: str | None,
                 dates_for_statistics: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("workers", 1)
        kwargs.setdefault("use_multiprocessing", False)
        super().__init__(**kwargs)
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        if steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        if seed is not None and seed < 0:
            raise InputError(f"seed must not be negative, got {seed}")
        self.config = config
        self.level = config.check_level(level)
        self.split = split
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.augment = bool(augment)
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.epoch = 0
        self.n_classes = max(config.class_ids)
        self._loaded: dict[tuple[str, str], TileSet] = {}
        if normaliser is None:
            train_sets = ([self._tiles(d, "train") for d in dict.fromkeys(dates_for_statistics)]
                          if config.norm_mean is None else [])
            normaliser = normaliser_for(config, self.level, train_sets)
        self.normaliser = normaliser

    def _tiles(self, date: str, split: str | None = None) -> TileSet:
        key = (date, split or self.split)
        if key not in self._loaded:
            self._loaded[key] = load_tiles(self.config, key[0], key[1], self.level)
        return self._loaded[key]

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self) -> None:
        """Advance the epoch, so the next epoch draws new batches."""
        self.epoch += 1

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of batch ``index`` of the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _draw(self, rng: np.random.Generator, population: int) -> np.ndarray:
        """Indices of a batch: without replacement, unless there are fewer items than the batch size."""
        return rng.choice(population, self.batch_size, replace=population < self.batch_size)

    def _finish(self, raw: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.augment:  # the normalised values are an intermediate result: reuse a buffer
            x = self.normaliser(raw, out=_scratch("normalised", raw.shape, np.float32))
            x, labels = augment(x, labels, rng)
        else:
            x = self.normaliser(raw)
        return x, one_hot(labels, self.n_classes)


def _check_dates(dates: Sequence[str], what: str) -> list[str]:
    dates = [str(d) for d in dates]
    if not dates:
        raise InputError(f"{what}: no dates given")
    return dates


class SingleTileGenerator(_TileBatches):
    """Batches of single tiles drawn at random over all (date, tile) pairs of the given dates.

    As the original FCN training, which pooled the tiles of the six 2016 dates.

    Args:
        config: The configuration.
        dates: Dates whose tiles are pooled.
        split: ``train``, ``valid`` or ``test``.
        batch_size: Tiles per batch.
        steps: Batches per epoch (``len(self)``).
        augment: Apply random flips and rotations.
        seed: Seed of the draws (None: a random one).
        normaliser: Band normalisation; None means :func:`normaliser_for` the config (computed
            from the train split of ``dates`` if the config says "compute").
        level: Processing level; None means the config's.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.

    Yields (``self[index]``):
        x float32 (B, H, W, bands), y one-hot float32 (B, H, W, n_classes).
    """

    def __init__(self, config: Config, dates: Sequence[str], split: str, batch_size: int = 64, steps: int = 100,
                 augment: bool = False, seed: int | None = None, normaliser: Normaliser | None = None,
                 level: str | None = None, **kwargs: Any) -> None:
        self.dates = _check_dates(dates, "single-tile generator")
        super().__init__(config, split, batch_size, steps, augment, seed, normaliser, level, self.dates, **kwargs)
        self.sets = [self._tiles(d) for d in self.dates]
        self._offsets = np.cumsum([0] + [len(s) for s in self.sets])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng(index)
        picks = self._draw(rng, int(self._offsets[-1]))
        which = np.searchsorted(self._offsets, picks, side="right") - 1
        rows = picks - self._offsets[which]
        first = self.sets[0]
        raw = _scratch("raw", (self.batch_size, *first.x.shape[1:]), np.uint16)
        labels = np.empty((self.batch_size, *first.y.shape[1:]), dtype=np.uint8)
        for k in np.unique(which):  # one gather per date
            mask = which == k
            raw[mask] = self.sets[k].x[rows[mask]]
            labels[mask] = self.sets[k].y[rows[mask]]
        self.last_pairs = [(self.dates[k], self.sets[k].endings[r]) for k, r in zip(which, rows, strict=True)]
        return self._finish(raw, labels, rng)


def _positions(tiles: TileSet, endings: np.ndarray) -> np.ndarray:
    """Row of each of ``endings`` in a tile set, -1 where the set lacks it."""
    own = np.asarray(tiles.endings)
    order = np.argsort(own)
    found = np.searchsorted(own[order], endings)
    found = np.minimum(found, len(own) - 1)
    rows = order[found]
    return np.where(own[rows] == endings, rows, -1)


class _SequenceBatches(_TileBatches):
    """Gathering sequences of one tile over several dates."""

    def _gather(self, dates: Sequence[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Band values (B, T, H, W, C) and labels of the first date for tile rows (T, B)."""
        sets = [self._tiles(d) for d in dates]
        raw = _scratch("raw", (self.batch_size, len(dates), *sets[0].x.shape[1:]), np.uint16)
        for t, tiles in enumerate(sets):
            raw[:, t] = tiles.x[rows[t]]
        return raw, np.asarray(sets[0].y[rows[0]])  # the ground truth is the same on every date


class FixedSequenceGenerator(_SequenceBatches):
    """Batches of tile sequences over fixed dates, only tiles present on all of them.

    Args:
        config: The configuration.
        dates: The sequence's dates, in the order of the time steps (chronological).
        split: ``train``, ``valid`` or ``test``.
        batch_size: Sequences per batch.
        steps: Batches per epoch.
        augment: Apply random flips and rotations (the same for every date of a sequence).
        seed: Seed of the draws (None: a random one).
        normaliser: Band normalisation (None: from the config, see :class:`SingleTileGenerator`).
        level: Processing level; None means the config's.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.

    Yields (``self[index]``):
        x float32 (B, T, H, W, bands), y one-hot float32 (B, H, W, n_classes).

    Raises:
        InputError: If no tile is present on all the dates.
    """

    def __init__(self, config: Config, dates: Sequence[str], split: str, batch_size: int = 16, steps: int = 100,
                 augment: bool = False, seed: int | None = None, normaliser: Normaliser | None = None,
                 level: str | None = None, **kwargs: Any) -> None:
        self.dates = _check_dates(dates, "fixed-sequence generator")
        super().__init__(config, split, batch_size, steps, augment, seed, normaliser, level, self.dates, **kwargs)
        sets = [self._tiles(d) for d in self.dates]
        shared = set(sets[0].endings).intersection(*(s.endings for s in sets[1:]))
        if not shared:
            raise InputError(f"no tile of the {split} split is present on all of the dates {', '.join(self.dates)}")
        self.endings = sorted(shared)
        common = np.asarray(self.endings)
        self._rows = np.stack([_positions(s, common) for s in sets])  # (T, n_shared)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng(index)
        picks = self._draw(rng, self._rows.shape[1])
        self.last_endings = [self.endings[i] for i in picks]
        raw, labels = self._gather(self.dates, self._rows[:, picks])
        return self._finish(raw, labels, rng)


class RandomSequenceGenerator(_SequenceBatches):
    """Batches of tile sequences over ``timesteps`` dates drawn at random from a pool per batch.

    For every batch, ``timesteps`` dates are drawn without replacement and sorted
    chronologically; all sequences of the batch share them and only tiles present on all of
    them are drawn (as the original's variable-sequence training).

    Args:
        config: The configuration.
        pool: The dates to draw from.
        timesteps: Dates per sequence.
        split: ``train``, ``valid`` or ``test``.
        batch_size: Sequences per batch.
        steps: Batches per epoch.
        augment: Apply random flips and rotations (the same for every date of a sequence).
        seed: Seed of the draws (None: a random one).
        normaliser: Band normalisation (None: from the config; computed from the train split
            of the pool if the config says "compute").
        level: Processing level; None means the config's.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset``.

    Attributes:
        last_dates: The dates of the batch drawn last.

    Yields (``self[index]``):
        x float32 (B, T, H, W, bands), y one-hot float32 (B, H, W, n_classes).

    Raises:
        InputError: If the pool is too small, or some combination of dates shares no tile
            (checked up front when there are at most 5000 combinations, else when drawn).
    """

    def __init__(self, config: Config, pool: Sequence[str], timesteps: int = 6, split: str = "train",
                 batch_size: int = 16, steps: int = 100, augment: bool = False, seed: int | None = None,
                 normaliser: Normaliser | None = None, level: str | None = None, **kwargs: Any) -> None:
        pool = _check_dates(pool, "random-sequence generator")
        if len(set(pool)) != len(pool):
            raise InputError(f"random-sequence generator: the date pool {pool} repeats a date")
        if not 1 <= timesteps <= len(pool):
            raise InputError(f"random-sequence generator: cannot draw {timesteps} dates from a pool of {len(pool)}")
        self.pool = sorted(pool)  # YYYYMMDD: sorted = chronological
        self.timesteps = int(timesteps)
        self.last_dates: tuple[str, ...] = ()
        super().__init__(config, split, batch_size, steps, augment, seed, normaliser, level, self.pool, **kwargs)
        sets = [self._tiles(d) for d in self.pool]
        self.universe = np.unique(np.concatenate([np.asarray(s.endings) for s in sets]))
        self._rows = np.stack([_positions(s, self.universe) for s in sets])  # (P, U), -1 = absent
        if math.comb(len(self.pool), self.timesteps) <= _MAX_CHECKED_COMBINATIONS:
            present = self._rows >= 0
            for combo in itertools.combinations(range(len(self.pool)), self.timesteps):
                if not present[list(combo)].all(axis=0).any():
                    raise self._no_shared_tiles(combo)

    def _no_shared_tiles(self, chosen: Sequence[int]) -> InputError:
        dates = ", ".join(self.pool[i] for i in chosen)
        return InputError(f"no tile of the {self.split} split is present on all of the dates {dates} "
                          f"(a possible draw of {self.timesteps} from the pool); leave a date out of the pool")

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng(index)
        chosen = np.sort(rng.choice(len(self.pool), self.timesteps, replace=False))
        rows = self._rows[chosen]
        shared = np.flatnonzero((rows >= 0).all(axis=0))
        if not shared.size:
            raise self._no_shared_tiles(chosen)
        picks = shared[self._draw(rng, shared.size)]
        dates = tuple(self.pool[i] for i in chosen)
        self.last_dates = dates
        self.last_endings = [str(e) for e in self.universe[picks]]
        raw, labels = self._gather(dates, rows[:, picks])
        return self._finish(raw, labels, rng)
