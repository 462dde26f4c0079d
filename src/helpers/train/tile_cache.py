"""The tile cache: the tiles of one (date, split) read from their GeoTIFFs once, then memory-mapped.

The tiles are stored as ``.npy`` files beside the tile folder and memory-mapped on every later
load, so no training batch ever re-reads a tile file. The band statistics of the
"compute" normalisation are computed from these tile sets, in chunks.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.io import atomic_path, open_raster, write_text_atomic

_STATS_CHUNK = 256
"""Tiles per chunk when computing the band statistics (bounds the float64 temporaries)."""


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
    cache = config.tile_cache_paths(date, split, level)
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


# ---------------------------------------------------------------------- band statistics
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


def _chunks(tile_sets: Sequence[TileSet], n_bands: int) -> Iterator[np.ndarray]:
    for tiles in tile_sets:
        for start in range(0, len(tiles.x), _STATS_CHUNK):
            yield np.asarray(tiles.x[start:start + _STATS_CHUNK]).reshape(-1, n_bands)
