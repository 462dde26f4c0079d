"""Embedded demo study area: a synthetic, deterministic Sentinel-2 Level-1C time series.

The generator draws a small agricultural landscape (:mod:`helpers.demo.landscape`), renders
one L1C product per configured date with seasonal behaviour per class
(:mod:`helpers.demo.phenology`, :mod:`helpers.demo.radiometry`), writes the products with
:mod:`helpers.demo.safe_writer` and the ground truth of the paper's eight classes as vector
files (:mod:`helpers.demo.vectors`). Between the training-pool dates and the new dates some
parcels change their land cover; the new products show the new cover, the ground truth keeps
the old one, and the changed areas are written as a separate true-change file.

Everything is derived from ``numpy.random.default_rng(seed)``: the same seed and size give
byte-identical files. The output layout under ``<data_root>/raw`` is::

    sentinel/level_L1C/<product>.SAFE/MTD_MSIL1C.xml
    sentinel/level_L1C/<product>.SAFE/GRANULE/<granule>/IMG_DATA/T33UVS_<date>T101022_<band>.jp2
    ground_truth/gt_shapefile/gt.shp            (attribute ATKIS_mod, classes 1..8)
    ground_truth/overallshape/overallshape.shp  (AOI)
    ground_truth/true_changes/true_changes.shp  (old_class, new_class)
    .demo_complete.json                         (written last; marks a complete demo, lists its files)

This module keeps the raw folder's books: the whole tree is first written into a staging
folder next to ``raw/`` and renamed into place at the end, so an interrupted run never leaves
a ``raw/`` folder that looks complete. Regenerating replaces only the files the generator
wrote; a user's own files in ``raw/`` are carried over (see :mod:`helpers.demo.demo_manifest`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.io import write_text_atomic
from helpers.demo import demo_manifest
from helpers.demo.landscape import build_scene, random_streams
from helpers.demo.layout import (
    CLASS_IDS,
    DEFAULT_SIZE,
    ORIGIN_X,
    ORIGIN_Y,
    PIXEL_SIZE,
    UNCLASSIFIABLE,
    WATER,
    check_size,
)
from helpers.demo.radiometry import plan_dates, render_date
from helpers.demo.safe_writer import BAND_RESOLUTION, CRS, ProductId, write_product
from helpers.demo.vectors import aoi_polygon, change_frame, gt_frame, write_shapefile

PROCESSING_BASELINE = "02.04"
"""Processing baseline of every demo product (before the +1000 offset of 04.00)."""


MARKER_NAME = ".demo_complete.json"
"""Completion marker inside ``raw/``; its presence means 'a complete demo written by us'."""

STAGING_NAME = ".raw_demo_staging"
_STAGING_TAG = ".demo_staging"


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote.

    Attributes:
        data_root: The config's data root (``raw/`` lies under it).
        seed: Random seed.
        size: Scene side in 10 m pixels.
        n_products: Number of L1C products (one per date).
        dates: Product dates (YYYYMMDD), sorted.
        class_pixels: Pixel count per GT class id on the 10 m grid.
        n_gt_polygons: Features in the GT shapefile.
        n_true_change_polygons: Features in the true-change shapefile.
        changed_pixels: Pixels whose land cover differs in the new dates.
        cloudy_dates: Dates with clouds.
        partial_date: The pool date that covers the scene only partly (or None).
        aoi_share: Share of the scene inside the AOI polygon.
        seconds: Wall time of the generation.
        kept: Files in ``raw/`` that the generator did not write, kept on regeneration.
    """

    data_root: Path
    seed: int
    size: int
    n_products: int
    dates: tuple[str, ...]
    class_pixels: dict[int, int]
    n_gt_polygons: int
    n_true_change_polygons: int
    changed_pixels: int
    cloudy_dates: tuple[str, ...]
    partial_date: str | None
    aoi_share: float
    seconds: float
    kept: tuple[str, ...] = ()

    @property
    def class_shares(self) -> dict[int, float]:
        """Share of the scene per class id."""
        total = sum(self.class_pixels.values())
        return {k: v / total for k, v in self.class_pixels.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (used for the completion marker)."""
        return {
            "data_root": str(self.data_root), "seed": self.seed, "size": self.size,
            "n_products": self.n_products, "dates": list(self.dates),
            "class_pixels": {str(k): v for k, v in self.class_pixels.items()},
            "n_gt_polygons": self.n_gt_polygons, "n_true_change_polygons": self.n_true_change_polygons,
            "changed_pixels": self.changed_pixels, "cloudy_dates": list(self.cloudy_dates),
            "partial_date": self.partial_date, "aoi_share": round(self.aoi_share, 4),
            "seconds": round(self.seconds, 2),
        }


# ---------------------------------------------------------------------- the raw folder
def raw_state(config: Config) -> str:
    """Classify the config's ``raw/`` folder.

    Returns:
        ``"missing"``, ``"empty"``, ``"demo"`` (a complete demo written by this generator)
        or ``"foreign"`` (anything else: never touched).
    """
    raw = config.raw_dir
    if not raw.exists() and not raw.is_symlink():
        return "missing"
    if not raw.is_dir() or raw.is_symlink():
        return "foreign"
    if (raw / MARKER_NAME).is_file():
        return "demo"
    return "foreign" if any(raw.iterdir()) else "empty"


def read_marker(config: Config) -> dict[str, Any] | None:
    """The completion marker of a demo ``raw/`` folder (None if absent or unreadable)."""
    try:
        return json.loads((config.raw_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _check_config(config: Config) -> None:
    ids = set(config.class_ids)
    if ids != set(CLASS_IDS) or config.water_id != WATER or config.unclassifiable_id != UNCLASSIFIABLE:
        raise InputError(
            f"{config.source}: the demo generator writes the paper's classes 1..8 (water 7, "
            f"unclassifiable 8), but the config's class table has ids {sorted(ids)}")
    for path in (config.gt_file, config.aoi_file, *(p for p in [config.true_change_file] if p)):
        if config.raw_dir not in path.parents:
            raise InputError(f"{config.source}: {path} is not under {config.raw_dir}; "
                             "the demo writes only there")


def _staging_folder(config: Config) -> Path:
    """A fresh staging folder next to ``raw/`` (a stale one of an interrupted run is removed)."""
    staging = config.data_root / STAGING_NAME
    if staging.exists():
        if not (staging / _STAGING_TAG).is_file():
            raise InputError(f"{staging} exists but was not created by the demo generator; "
                             "remove it yourself")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / _STAGING_TAG).write_text("demo generator staging folder\n", encoding="utf-8")
    return staging


def generate_demo(config: Config, seed: int = 0, size: int = DEFAULT_SIZE, *,
                  overwrite: bool = False) -> DemoSummary:
    """Generate the demo study area under ``config.data_root/raw``.

    Args:
        config: Configuration whose data root receives the demo (its class table must be the
            paper's eight classes).
        seed: Random seed; the same seed and size give byte-identical files.
        size: Scene side in 10 m pixels; a multiple of 6 (default 648, i.e. 6.48 km).
        overwrite: Replace an existing demo ``raw/`` folder (one with the completion marker):
            the files that the generator wrote are replaced, any other file is kept.

    Returns:
        A summary of what was written (``kept`` lists the files that were kept).

    Raises:
        ValueError: For an invalid size.
        InputError: If ``raw/`` holds data not written by this generator, or already holds a
            demo and ``overwrite`` is False, or the config does not suit the demo.
    """
    check_size(size)
    _check_config(config)
    demo_manifest.recover(config.raw_dir, MARKER_NAME)
    state = raw_state(config)
    if state == "foreign":
        raise InputError(f"{config.raw_dir} holds data that the demo generator did not write "
                         f"(no {MARKER_NAME}); refusing to touch it; point paths.data_root elsewhere")
    if state == "demo" and not overwrite:
        raise InputError(f"{config.raw_dir} already holds a demo; pass overwrite to regenerate it")
    if config.data_root.exists() and not config.data_root.is_dir():
        raise InputError(f"data root {config.data_root} is not a folder")
    started = time.perf_counter()

    streams = random_streams(seed)
    scene = build_scene(seed, size)
    plans = plan_dates(config, streams[4])
    staging = _staging_folder(config)

    def staged(path: Path) -> Path:
        return staging / path.relative_to(config.raw_dir)

    sentinel = staged(config.raw_sentinel_dir("L1C"))
    sentinel.mkdir(parents=True)
    for plan, date_rng in zip(plans, streams[5].spawn(len(plans)), strict=True):
        bands, cloud_pct = render_date(scene, plan, date_rng)
        product = ProductId(plan.label, "L1C", plan.spacecraft, PROCESSING_BASELINE)
        images = [(band, BAND_RESOLUTION[band], array) for band, array in bands.items()]
        write_product(sentinel, product, images, (ORIGIN_X, ORIGIN_Y), CRS, cloud_pct=cloud_pct)

    gt = gt_frame(scene)
    write_shapefile(gt, staged(config.gt_file))
    aoi = aoi_polygon(streams[6], size)
    write_shapefile(gpd.GeoDataFrame({"id": np.array([1], dtype=np.int32)}, geometry=[aoi], crs=CRS),
                    staged(config.aoi_file))
    changes = change_frame(scene)
    if len(changes):
        change_file = config.true_change_file or config.raw_dir / "ground_truth/true_changes/true_changes.shp"
        write_shapefile(changes, staged(change_file))

    counts = np.bincount(scene.label.ravel(), minlength=9)
    summary = DemoSummary(
        data_root=config.data_root, seed=seed, size=size, n_products=len(plans),
        dates=tuple(p.label for p in plans), class_pixels={c: int(counts[c]) for c in CLASS_IDS},
        n_gt_polygons=len(gt), n_true_change_polygons=len(changes),
        changed_pixels=int(np.count_nonzero(scene.label != scene.label_new)),
        cloudy_dates=tuple(p.label for p in plans if p.cloudy),
        partial_date=next((p.label for p in plans if p.partial), None),
        aoi_share=float(aoi.area / (size * PIXEL_SIZE) ** 2), seconds=time.perf_counter() - started,
    )
    (staging / _STAGING_TAG).unlink()
    recorded = {k: v for k, v in summary.to_dict().items() if k not in ("data_root", "seconds")}
    marker = {"generator": "src/data_processing/00_make_demo_data.py", "seed": seed, "size": size,
              "changes": [asdict(c) for c in scene.changes], "summary": recorded,
              demo_manifest.MANIFEST_KEY: demo_manifest.list_files(staging, MARKER_NAME)}
    write_text_atomic(staging / MARKER_NAME, json.dumps(marker, indent=2))

    kept = demo_manifest.swap_in(config.raw_dir, staging, MARKER_NAME)  # a user's extra files stay
    return dataclasses.replace(summary, kept=tuple(kept))
