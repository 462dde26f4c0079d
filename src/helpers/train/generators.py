"""Keras batch generators (``PyDataset``) over the cached tile sets: single tiles and sequences.

Batches are assembled with numpy gathers from the tile cache (:mod:`helpers.train.tile_cache`),
normalised (:mod:`helpers.train.normalisation`), augmented and one-hot encoded
(:mod:`helpers.train.augmentation`). This is the only training module that imports Keras.

Randomness: every batch draws from a generator seeded with ``(seed, epoch, index)``, so a
run with a fixed seed sees the same batches, whatever order Keras asks for them in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.train.augmentation import augment, one_hot, scratch
from helpers.train.normalisation import Normaliser, normaliser_for
from helpers.train.tile_cache import TileSet, load_tiles

_MAX_CHECKED_COMBINATIONS = 5000
"""Up to this many date combinations, a random-sequence generator checks them all up front."""


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
            x = self.normaliser(raw, out=scratch("normalised", raw.shape, np.float32))
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
        raw = scratch("raw", (self.batch_size, *first.x.shape[1:]), np.uint16)
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
        raw = scratch("raw", (self.batch_size, len(dates), *sets[0].x.shape[1:]), np.uint16)
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
