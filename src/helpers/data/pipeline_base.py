"""What every pre-processing step shares: results, input checks and the up-to-date test.

Kept apart from the steps so that the scene steps (:mod:`helpers.data.pipeline`) and the tile steps
(:mod:`helpers.data.pipeline_tiles`) use one definition of "skip" without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from helpers.data import freshness
from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.grid import SceneGrid, grid_from_bounds
from helpers.data.sentinel import SPECTRAL_BANDS
from helpers.core.vector import read_area_of_interest

Say = Callable[[str], None]


def print_line(message: str) -> None:
    """Default ``say``: print at once (batch runs interleave with progress bars)."""
    print(message, flush=True)


@dataclass
class StepResult:
    """What a step did: its main output, whether it was skipped, and a one-line summary."""

    output: Path
    skipped: bool
    summary: str = ""


def require(path: Path, hint: str) -> Path:
    """Return ``path`` if it exists, else fail naming it and the step that makes it."""
    if not path.exists():
        raise InputError(f"{path}: missing input ({hint})")
    return path


def check_use(use: str) -> str:
    """TRAIN or NEW in canonical form."""
    canonical = str(use).upper()
    if canonical not in ("TRAIN", "NEW"):
        raise InputError(f"unknown use '{use}' (use TRAIN or NEW)")
    return canonical


def study_area(config: Config) -> tuple[BaseGeometry, SceneGrid]:
    """The AOI in the target CRS and the study area's 10 m grid (its bounds snapped outwards)."""
    aoi = read_area_of_interest(config.aoi_file, config.crs)
    return aoi, grid_from_bounds(aoi.bounds, config.crs, config.resolution)


def reference_scene(config: Config, level: str) -> Path:
    """The reference date's scene (step 01 output), which must exist."""
    return require(config.scene_path(config.reference, level),
                   f"run 01_clip_sentinel.py {config.reference} {level} first")


def spectral_band_indexes(bands: Sequence[str]) -> list[int]:
    """1-based positions of the spectral bands in a stack.

    L2A's CLD and SNW layers are 0 wherever there is no cloud or snow, so "on the image" is
    judged on the spectral bands only (0 is their no-data value).
    """
    return [index for index, band in enumerate(bands, start=1) if band in SPECTRAL_BANDS]


# ---------------------------------------------------------------------- freshness
def fingerprint(config: Config, values: Mapping[str, Any], inputs: Iterable[Path]) -> freshness.Fingerprint:
    """The current fingerprint of an output of this study area (see :mod:`helpers.data.freshness`)."""
    return freshness.fingerprint(config.data_root, values, inputs)


def is_current(config: Config, out: Path, current: freshness.Fingerprint) -> bool:
    """True if ``out`` exists and was made from exactly ``current`` (no message)."""
    return freshness.stale_reason(config.processed_dir, out, current) is None


def up_to_date(config: Config, out: Path, current: freshness.Fingerprint, force: bool, say: Say) -> bool:
    """The skip test of every step: True (and say so) when ``out`` needs no work.

    An existing output that is out of date is rebuilt, with one line saying why.

    Args:
        config: The study area.
        out: The step's output (the file written last, if it writes several).
        current: Fingerprint of what the output would be made from now.
        force: Rebuild unconditionally.
        say: Where messages go.
    """
    if force:
        return False
    reason = freshness.stale_reason(config.processed_dir, out, current)
    if reason is None:
        say(f"  up to date, skipped: {out}  (use --force to redo)")
        return True
    if reason != "missing":
        say(f"  out of date, rebuilding {out.name} ({reason})")
    return False


def record(config: Config, out: Path, current: freshness.Fingerprint) -> None:
    """Store what ``out`` was made from; call it after ``out`` is complete."""
    freshness.write_record(config.processed_dir, out, current)
