"""The demo landscape: the layout, its land-cover changes, per-parcel parameters and textures.

Everything is drawn from independent random streams spawned from one seed, so the same seed
and size give the same scene. Between the training-pool dates and the new dates some parcels
change their land cover (farmland and grassland swap, a clear-cut, a new commercial site, new
housing); the new dates show the new cover, the ground truth keeps the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from scipy import ndimage

from helpers.demo.layout import (
    BUILDINGS,
    CLASS_IDS,
    DEFAULT_SIZE,
    FARMLAND,
    FOREST,
    GRASSLAND,
    INDUSTRY,
    ORIGIN_X,
    ORIGIN_Y,
    PIXEL_SIZE,
    SETTLEMENT,
    build_layout,
    check_size,
    plot_grid_mask,
    scaled_count,
    smooth_field,
)
from helpers.demo.phenology import ParcelParams, draw_params


@dataclass(frozen=True)
class Change:
    """One land-cover change between the pool dates and the new dates."""

    parcel_id: int
    old_class: int
    new_class: int
    kind: str


@dataclass
class DemoScene:
    """The synthetic landscape before rendering (all rasters on the 10 m grid).

    Attributes:
        size: Scene side in pixels.
        label: GT class per pixel in the pool years (uint8).
        parcel: Parcel id per pixel in the pool years (int32, 1..n).
        parcel_class: Class of every parcel id in the pool years (index 0 unused).
        label_new: Class per pixel in the new dates (after the changes).
        parcel_new: Parcel id per pixel in the new dates.
        parcel_class_new: Class of every parcel id in the new dates.
        lake_rho: Distance to the lake centre relative to the shoreline at maximum extent.
        lake_radius: Mean lake radius in pixels.
        vigour: Static multiplier of the green-vegetation fraction.
        texture: Static multiplicative surface texture.
        garden: Vegetated share of settlement pixels.
        halls: Hall-roof share of industry pixels.
        sheds: Roof share of the built part of settlement pixels (sheds, garages).
        changes: The land-cover changes.
        params: Per-parcel parameters.
    """

    size: int
    label: np.ndarray
    parcel: np.ndarray
    parcel_class: np.ndarray
    label_new: np.ndarray
    parcel_new: np.ndarray
    parcel_class_new: np.ndarray
    lake_rho: np.ndarray
    lake_radius: float
    vigour: np.ndarray
    texture: np.ndarray
    garden: np.ndarray
    halls: np.ndarray
    sheds: np.ndarray
    changes: list[Change]
    params: ParcelParams

    @property
    def transform(self) -> Affine:
        """Geotransform of the 10 m grid."""
        return Affine(PIXEL_SIZE, 0.0, ORIGIN_X, 0.0, -PIXEL_SIZE, ORIGIN_Y)


def _plan_changes(rng: np.random.Generator,
                  layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Change]]:
    """Pick the parcels that change land cover in the new dates and build the new rasters."""
    label, parcel, classes = layout["label"], layout["parcel"], layout["parcel_class"]
    size = label.shape[0]
    n_ids = classes.size
    count = np.bincount(parcel.ravel(), minlength=n_ids)
    rows, cols = np.indices(label.shape)
    centre_r = np.bincount(parcel.ravel(), weights=rows.ravel(), minlength=n_ids) / np.maximum(count, 1)
    centre_c = np.bincount(parcel.ravel(), weights=cols.ravel(), minlength=n_ids) / np.maximum(count, 1)
    inner = (np.minimum(centre_r, centre_c) > 0.12 * size) & (np.maximum(centre_r, centre_c) < 0.88 * size)
    usable = inner & (count >= 120) & (count <= 2500)
    taken = np.zeros(n_ids, dtype=bool)
    changes: list[Change] = []

    def pick(old: int, k: int, near: tuple[float, float] | None = None) -> list[int]:
        pool = np.flatnonzero(usable & ~taken & (classes == old))
        if pool.size == 0:
            return []
        if near is None:
            chosen = rng.choice(pool, size=min(k, pool.size), replace=False)
        else:
            distance = np.hypot(centre_r[pool] - near[0], centre_c[pool] - near[1])
            chosen = pool[np.argsort(distance, kind="stable")[:k]]
        taken[chosen] = True
        return [int(c) for c in chosen]

    plan = [
        (FARMLAND, GRASSLAND, scaled_count(5, size), None, "farmland to grassland"),
        (GRASSLAND, FARMLAND, scaled_count(4, size), None, "grassland to farmland"),
        (FOREST, GRASSLAND, scaled_count(2, size), None, "clear-cut"),
    ]
    for old, new, k, near, kind in plan:
        changes += [Change(p, old, new, kind) for p in pick(old, k, near)]
    industry_rc = np.argwhere(layout["industry"])
    industry_centre = tuple(industry_rc.mean(axis=0)) if industry_rc.size else layout["village_centre"]
    changes += [Change(p, GRASSLAND, INDUSTRY, "new commercial site")
                for p in pick(GRASSLAND, 1, industry_centre)]
    housing = pick(FARMLAND, scaled_count(2, size), layout["village_centre"])
    changes += [Change(p, FARMLAND, SETTLEMENT, "new housing") for p in housing]

    classes_new = classes.copy()
    for change in changes:
        classes_new[change.parcel_id] = change.new_class
    label_new = classes_new[parcel]
    parcel_new = parcel.copy()
    if housing:
        area = np.isin(parcel, housing) & ~layout["roads"]
        area &= ndimage.binary_erosion(area)
        houses = plot_grid_mask(rng, size, (6, 6), ((2, 3), (2, 3)), 0.85)
        new_building = area & (houses > 0)
        ids, inverse = np.unique(houses[new_building], return_inverse=True)
        parcel_new[new_building] = n_ids + inverse
        classes_new = np.concatenate([classes_new, np.full(ids.size, BUILDINGS, dtype=np.uint8)])
        label_new = classes_new[parcel_new]
    return label_new.astype(np.uint8), parcel_new.astype(np.int32), classes_new, changes


def _static_textures(rng: np.random.Generator, label: np.ndarray, roads: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel static fields: vegetation vigour, surface texture, gardens, sheds and hall roofs.

    The textures make the classes differ in their spatial pattern as well as in their spectra,
    as on real Sentinel-2 scenes: a grassland sward is patchy at the scale of a few pixels
    (tussocks, trampled and bare spots, rushes, single shrubs), a crop stand varies within the
    field too, but in smoother yield zones (soil, water supply) several pixels across. A single
    grassland pixel can thus look like a field pixel on a date when their covers are alike; its
    neighbourhood still tells the two apart. Settlement ground holds sheds, garages and paved yards (``sheds``:
    their share of the pixel's built part), so that roof spectra are found between the
    buildings too, and buildings are told apart from the ground around them by their
    arrangement (compact roofs on a plot grid) more than by their spectra.
    """
    size = label.shape[0]
    white = rng.standard_normal((size, size)).astype(np.float32)
    tussocks = smooth_field(rng, size, 1.5)
    yield_zones = smooth_field(rng, size, 6.0)
    crowns = np.where(label == FOREST, 1.0 + 0.08 * white, 1.0)
    sward = 1.0 + 0.13 * tussocks + 0.04 * white
    stand = 1.0 + 0.07 * yield_zones + 0.02 * white
    vigour = np.where(label == GRASSLAND, sward, np.where(label == FARMLAND, stand, crowns))
    amplitude = np.zeros(9, dtype=np.float32)
    amplitude[list(CLASS_IDS)] = [0.05, 0.04, 0.06, 0.08, 0.02, 0.05, 0.015, 0.08]
    terrain = 0.025 * smooth_field(rng, size, 0.1 * size)
    texture = 1.0 + terrain + amplitude[label] * rng.standard_normal((size, size)).astype(np.float32)
    garden = np.clip(0.4 + 0.2 * smooth_field(rng, size, 2.5), 0.05, 0.85)
    garden = np.where(roads, 0.12, garden)
    halls = (plot_grid_mask(rng, size, (12, 16), ((6, 10), (8, 14)), 0.75) > 0).astype(np.float32)
    sheds = np.clip(0.3 + 0.3 * smooth_field(rng, size, 1.2), 0.0, 0.85)
    sheds = np.where(roads, 0.0, sheds)
    return {
        "vigour": np.clip(vigour, 0.55, 1.45).astype(np.float32),
        "texture": np.clip(texture, 0.7, 1.3).astype(np.float32),
        "garden": garden.astype(np.float32), "halls": halls, "sheds": sheds.astype(np.float32),
    }


def random_streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for the parts of the demo (scene: 0-3, dates: 4, rendering: 5, AOI: 6)."""
    return np.random.default_rng(seed).spawn(8)


def build_scene(seed: int, size: int = DEFAULT_SIZE) -> DemoScene:
    """Draw the demo landscape, its changes and all per-parcel parameters.

    Args:
        seed: Random seed; the same seed and size give the same scene.
        size: Scene side in 10 m pixels (a multiple of 6).

    Returns:
        The scene, ready to be rendered for any date.

    Raises:
        ValueError: For an invalid size.
    """
    check_size(size)
    streams = random_streams(seed)
    layout = build_layout(streams[0], size)
    label_new, parcel_new, classes_new, changes = _plan_changes(streams[1], layout)
    params = draw_params(streams[2], classes_new.size)
    textures = _static_textures(streams[3], layout["label"], layout["roads"])
    classes_old = np.zeros_like(classes_new)
    classes_old[: layout["parcel_class"].size] = layout["parcel_class"]
    return DemoScene(
        size=size, label=layout["label"], parcel=layout["parcel"], parcel_class=classes_old,
        label_new=label_new, parcel_new=parcel_new, parcel_class_new=classes_new,
        lake_rho=layout["lake_rho"], lake_radius=layout["lake_radius"], vigour=textures["vigour"],
        texture=textures["texture"], garden=textures["garden"], halls=textures["halls"],
        sheds=textures["sheds"],
        changes=changes, params=params,
    )
