"""Per-band standardisation of Sentinel-2 values, and where a study area's values come from.

Kept apart from the Keras generators so that classification, evaluation and run records can
use a model's normalisation without importing a deep-learning backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.io import write_json_atomic
from helpers.train.tile_cache import TileSet, band_statistics


@dataclass(frozen=True)
class Normaliser:
    """Per-band standardisation ``(x - mean) / std``.

    Attributes:
        mean: Per-band means (any sequence of numbers; stored as float32 (bands,)).
        std: Per-band standard deviations, all positive (stored as float32 (bands,)).

    Raises:
        ValueError: If mean and std differ in length or a std is not positive.
    """

    mean: np.ndarray = field(repr=False)
    std: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be equally long lists, got shapes {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("every mean and std must be a finite number")
        if not np.all(std > 0):
            raise ValueError("every std must be positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_values(cls, mean: Sequence[float], std: Sequence[float]) -> Normaliser:
        """Build from two equally long sequences of numbers (same as the constructor)."""
        return cls(np.asarray(mean), np.asarray(std))

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Standardise band values (bands on the last axis).

        Args:
            x: Band values, any numeric dtype.
            out: Optional float32 array of the same shape to write into.

        Returns:
            float32 array of the same shape (``out`` if given).
        """
        x = np.asarray(x)
        bands = self.mean.shape[0]
        if x.shape[-1] != bands:
            raise ValueError(f"expected {bands} bands on the last axis, got shape {x.shape}")
        if out is None:
            out = x.astype(np.float32)
        else:
            if out.shape != x.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
                raise ValueError(f"out must be a C-contiguous float32 array of shape {x.shape}")
            np.copyto(out, x)
        # constants repeated over a whole tile row: long inner loops instead of one per pixel
        repeat = x.shape[-2] if x.ndim >= 2 else 1
        flat = out.reshape(-1, repeat * bands)
        flat -= np.tile(self.mean, repeat)
        flat /= np.tile(self.std, repeat)
        return out


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
