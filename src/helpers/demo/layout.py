"""The demo scene's grid and classes, and the drawing of its land-cover layout.

The layout is a small agricultural landscape on a 10 m grid: fields and meadows as Voronoi
parcels of a rotated, jittered grid, organic forest stands snapped to the parcel borders, a
village with building rectangles and roads, an industrial estate, a reservoir and a few
unclassifiable patches, each at a target share of the scene. All of it is vectorised over
the pixels with numpy and scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

ORIGIN_X = 399960.0
ORIGIN_Y = 5640000.0
"""Upper-left corner of the scene (a multiple of 60 m, so all band grids align)."""

PIXEL_SIZE = 10.0
DEFAULT_SIZE = 648
"""Default scene side in 10 m pixels (a multiple of 6, so the 60 m bands divide it)."""

MIN_SIZE = 96

# Class ids of the paper (and of configs/demo.toml).
BUILDINGS, GRASSLAND, FOREST, SETTLEMENT, FARMLAND, INDUSTRY, WATER, UNCLASSIFIABLE = range(1, 9)
CLASS_IDS: tuple[int, ...] = tuple(range(1, 9))

# Target shares of the scene (the remainder after all others becomes farmland).
_SHARE_WATER = 0.03
_SHARE_VILLAGE = 0.048  # settlement ground + buildings inside the village
_SHARE_INDUSTRY = 0.011
_SHARE_UNCLASSIFIABLE = 0.01
_SHARE_FOREST = 0.36
_SHARE_GRASS = 0.24

_FIELD_SPACING = (22.0, 34.0)  # parcel seed spacing (rows, cols) in pixels, rotated frame
_MIN_FRAGMENT = 60  # pixels; smaller field/forest fragments of a cell are merged


# ---------------------------------------------------------------------- drawing helpers
def smooth_field(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with features of about ``scale`` pixels."""
    n = int(np.ceil(size / scale)) + 5
    coarse = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.8)
    pos = np.arange(size) / scale + 2.0
    rows, cols = np.meshgrid(pos, pos, indexing="ij")
    fine = ndimage.map_coordinates(coarse, [rows, cols], order=3)
    return ((fine - fine.mean()) / (fine.std() + 1e-12)).astype(np.float32)


def _blob_rho(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float],
              radius: float, wobble: float = 0.12, aspect: float = 1.0) -> np.ndarray:
    """Normalised radius of an irregular blob: <= 1 inside, 1 on the outline."""
    angle = rng.uniform(0.0, np.pi)
    dy, dx = yy - centre[0], xx - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / aspect
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    outline = np.ones_like(theta)
    for k in range(2, 6):
        outline += rng.uniform(0.3, 1.0) * wobble / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (np.hypot(u, v) / (radius * np.maximum(outline, 0.3))).astype(np.float32)


def _fit_blob(rho: np.ndarray, allowed: np.ndarray, target: float) -> np.ndarray:
    """Rescale a blob's normalised radius so that its allowed area is about ``target`` pixels."""
    for _ in range(4):
        area = np.count_nonzero((rho <= 1.0) & allowed)
        if area == 0:
            break
        rho = rho / np.sqrt(target / area)
    return rho


def plot_grid_mask(rng: np.random.Generator, size: int, plot: tuple[int, int],
                   dims: tuple[tuple[int, int], ...], presence: float) -> np.ndarray:
    """Rectangles on a jittered plot grid (buildings, halls): a unique id per rectangle, 0 elsewhere.

    Args:
        rng: Random generator.
        size: Scene side in pixels.
        plot: Plot height and width in pixels.
        dims: ((min_h, max_h), (min_w, max_w)) of the rectangles, inclusive.
        presence: Probability that a plot holds a rectangle.
    """
    ph, pw = plot
    rows, cols = np.indices((size, size))
    prow = rows // ph
    shift = (prow * 3) % pw
    pcol = (cols + shift) // pw
    n_r, n_c = size // ph + 2, size // pw + 2
    h = rng.integers(dims[0][0], dims[0][1] + 1, (n_r, n_c))
    w = rng.integers(dims[1][0], dims[1][1] + 1, (n_r, n_c))
    oy = (rng.random((n_r, n_c)) * (ph - h + 1)).astype(int)
    ox = (rng.random((n_r, n_c)) * (pw - w + 1)).astype(int)
    present = rng.random((n_r, n_c)) < presence
    ly, lx = rows % ph, (cols + shift) % pw
    inside = (ly >= oy[prow, pcol]) & (ly < oy[prow, pcol] + h[prow, pcol])
    inside &= (lx >= ox[prow, pcol]) & (lx < ox[prow, pcol] + w[prow, pcol]) & present[prow, pcol]
    return np.where(inside, prow * n_c + pcol + 1, 0).astype(np.int64)


def scaled_count(base: int, size: int) -> int:
    """A count of objects scaled with the scene area (at least 1)."""
    return max(1, round(base * (size / DEFAULT_SIZE) ** 2))


def check_size(size: int) -> None:
    """Validate a scene size.

    Raises:
        ValueError: If the size is not a multiple of 6 (the 60 m bands must divide it) or too small.
    """
    if size % 6 != 0:
        raise ValueError(f"size {size} must be a multiple of 6 (the 60 m bands must divide it), e.g. 648")
    if size < MIN_SIZE:
        raise ValueError(f"size {size} is too small (at least {MIN_SIZE} pixels)")


# ---------------------------------------------------------------------- layout
def build_layout(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Draw the land-cover layout: class raster, parcel raster and lake geometry."""
    yy, xx = (np.indices((size, size)).astype(np.float32) + 0.5)
    total = float(size * size)
    parcel = np.zeros((size, size), dtype=np.int64)
    label = np.zeros((size, size), dtype=np.uint8)
    next_id = 1

    # Reservoir: an elongated irregular blob; its GT is the maximum water extent.
    lake_centre = tuple(rng.uniform(0.25, 0.75, 2) * size)
    lake_radius = float(np.sqrt(_SHARE_WATER * total / np.pi))
    rho = _blob_rho(rng, yy, xx, lake_centre, lake_radius, wobble=0.14, aspect=1.5)
    lake_rho = _fit_blob(rho, np.ones_like(rho, dtype=bool), _SHARE_WATER * total)
    lake = lake_rho <= 1.0

    # Village: away from the lake, a blob of settlement ground with building rectangles.
    village_radius = float(np.sqrt(_SHARE_VILLAGE * total / np.pi))
    candidates = rng.uniform(0.22, 0.78, (64, 2)) * size
    distance = np.hypot(candidates[:, 0] - lake_centre[0], candidates[:, 1] - lake_centre[1])
    ok = np.flatnonzero(distance > 1.6 * lake_radius + 1.3 * village_radius)
    village_centre = tuple(candidates[ok[0] if ok.size else int(np.argmax(distance))])
    village_rho = _fit_blob(_blob_rho(rng, yy, xx, village_centre, village_radius, wobble=0.18),
                            ~lake, _SHARE_VILLAGE * total)
    village = (village_rho <= 1.0) & ~lake

    # Roads (settlement area without buildings): two gently curving roads from the village.
    away = np.arctan2(village_centre[0] - lake_centre[0], village_centre[1] - lake_centre[1])
    roads = np.zeros((size, size), dtype=bool)
    pixels = np.column_stack([yy.ravel(), xx.ravel()])
    first = away + rng.uniform(-0.6, 0.6)
    second = first + rng.uniform(2.2, 4.0)
    fallback = second + np.array([0.4, -0.4, 0.8, -0.8, 1.2, -1.2])
    for angles in ([first], [second, *fallback]):
        for angle in angles:
            samples = _road_samples(rng, village_centre, angle, size)
            rows = np.clip(samples[:, 0].astype(int), 0, size - 1)
            cols = np.clip(samples[:, 1].astype(int), 0, size - 1)
            if not (lake_rho[rows, cols] <= 1.1).any():
                dist, _ = cKDTree(samples).query(pixels, distance_upper_bound=1.01)
                roads |= (dist <= 1.0).reshape(size, size)
                break

    # Industrial estate: a rectangle next to the village, away from the lake.
    area = _SHARE_INDUSTRY * total
    height = round(float(np.sqrt(area / 1.4)))
    width = round(area / max(height, 1))
    industry = np.zeros((size, size), dtype=bool)
    for angle in away + np.array([0.0, 0.8, -0.8, 1.6, -1.6, 2.4, -2.4, np.pi]):
        reach = village_radius * 1.05 + 0.5 * max(height, width)
        cy = village_centre[0] + reach * np.sin(angle)
        cx = village_centre[1] + reach * np.cos(angle)
        r0, c0 = round(float(cy) - height / 2), round(float(cx) - width / 2)
        if r0 >= 2 and r0 + height <= size - 2 and c0 >= 2 and c0 + width <= size - 2:
            box = np.zeros_like(industry)
            box[r0:r0 + height, c0:c0 + width] = True
            if not (box & (lake_rho <= 1.15)).any():
                industry = box & ~village
                break

    # Unclassifiable patches (construction sites, dumps, quarries).
    n_waste = max(2, scaled_count(5, size))
    waste = np.zeros((size, size), dtype=np.int64)
    blocked = lake | village | industry | roads
    patch_area = _SHARE_UNCLASSIFIABLE * total / n_waste
    spots = rng.uniform(0.08, 0.92, (8 * n_waste, 2)) * size
    placed = 0
    for cy, cx in spots:
        if placed == n_waste:
            break
        if blocked[int(cy), int(cx)]:
            continue
        blob_rho = _blob_rho(rng, yy, xx, (cy, cx), np.sqrt(patch_area / np.pi), wobble=0.25)
        blob = (blob_rho <= 1.0) & ~blocked
        blob &= ~ndimage.binary_dilation(waste > 0, iterations=3)
        if np.count_nonzero(blob) < 0.5 * patch_area:
            continue
        placed += 1
        waste[blob] = placed
        blocked |= blob

    # Parcels: Voronoi cells of a jittered, rotated grid (fields, meadows, forest stands).
    cells = _voronoi_cells(rng, size, yy, xx)
    free = ~blocked
    forest = _forest_mask(rng, size, cells, free, _SHARE_FOREST * total)
    fields = free & ~forest
    grass = _grassland_cells(rng, size, cells, fields, forest | lake, _SHARE_GRASS * total)

    n_cells = int(cells.max()) + 1
    parcel[fields] = cells[fields] + next_id
    label[fields] = np.where(grass[fields], GRASSLAND, FARMLAND)
    next_id += n_cells
    parcel[forest] = cells[forest] + next_id
    label[forest] = FOREST
    next_id += n_cells

    parcel[lake], label[lake] = next_id, WATER
    next_id += 1
    village_ground = village & ~roads
    buildings = plot_grid_mask(rng, size, (5, 6), ((2, 3), (2, 4)), 0.92)
    buildings = np.where(village_ground & ndimage.binary_erosion(village_ground), buildings, 0)
    parcel[village], label[village] = next_id, SETTLEMENT
    next_id += 1
    road_parts, n_roads = ndimage.label(roads & ~village)
    parcel[road_parts > 0] = road_parts[road_parts > 0] + next_id - 1
    label[road_parts > 0] = SETTLEMENT
    next_id += n_roads
    parcel[industry], label[industry] = next_id, INDUSTRY
    next_id += 1
    parcel[waste > 0] = waste[waste > 0] + next_id - 1
    label[waste > 0] = UNCLASSIFIABLE
    next_id += placed
    has_building = buildings > 0
    parcel[has_building] = buildings[has_building] + next_id
    label[has_building] = BUILDINGS

    parcel, parcel_class = _compact_ids(parcel, label)
    return {
        "label": label, "parcel": parcel, "parcel_class": parcel_class, "lake_rho": lake_rho,
        "lake_radius": lake_radius, "village_centre": village_centre, "industry": industry, "roads": roads,
    }


def _road_samples(rng: np.random.Generator, start: tuple[float, float], angle: float,
                  size: int) -> np.ndarray:
    """Dense points (row, col) along a gently curving road from ``start`` to beyond the scene edge."""
    s = np.arange(0.0, 1.5 * size, 0.5)
    wave = rng.uniform(0.01, 0.03) * size * np.sin(2 * np.pi * s / (rng.uniform(0.4, 0.8) * size)
                                                    + rng.uniform(0, 2 * np.pi))
    wave -= wave[0]
    py = start[0] + s * np.sin(angle) + wave * np.cos(angle)
    px = start[1] + s * np.cos(angle) - wave * np.sin(angle)
    keep = (py > -3) & (py < size + 3) & (px > -3) & (px < size + 3)
    return np.column_stack([py[keep], px[keep]])


def _voronoi_cells(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Cell index (0..n-1) of every pixel in a jittered, rotated Voronoi tessellation."""
    angle = rng.uniform(-0.5, 0.5)
    cos, sin = np.cos(angle), np.sin(angle)
    u = xx * cos + yy * sin
    v = -xx * sin + yy * cos
    sy, sx = _FIELD_SPACING
    gv = np.arange(v.min() - sy, v.max() + sy, sy)
    gu = np.arange(u.min() - sx, u.max() + sx, sx)
    seed_v, seed_u = np.meshgrid(gv, gu, indexing="ij")
    seed_v = seed_v + rng.uniform(-0.35, 0.35, seed_v.shape) * sy
    seed_u = seed_u + rng.uniform(-0.35, 0.35, seed_u.shape) * sx
    tree = cKDTree(np.column_stack([seed_v.ravel() / sy, seed_u.ravel() / sx]))
    _, index = tree.query(np.column_stack([v.ravel() / sy, u.ravel() / sx]))
    _, cells = np.unique(index, return_inverse=True)
    return cells.reshape(size, size)


def _forest_mask(rng: np.random.Generator, size: int, cells: np.ndarray, free: np.ndarray,
                 target: float) -> np.ndarray:
    """Large organic forest patches, snapped to field boundaries where a cell is mostly forest or field."""
    noise = smooth_field(rng, size, 0.16 * size) + 0.35 * smooth_field(rng, size, 12.0)
    threshold = np.quantile(noise[free], 1.0 - min(target / max(np.count_nonzero(free), 1), 1.0))
    forest = free & (noise > threshold)
    n_cells = int(cells.max()) + 1
    free_count = np.bincount(cells[free], minlength=n_cells)
    forest_count = np.bincount(cells[forest], minlength=n_cells)
    share = forest_count / np.maximum(free_count, 1)
    forest = free & np.where(share[cells] > 0.7, True, np.where(share[cells] < 0.25, False, forest))
    # Merge small fragments: a cell's field part or forest part below _MIN_FRAGMENT pixels.
    forest_count = np.bincount(cells[forest], minlength=n_cells)
    field_count = np.bincount(cells[free & ~forest], minlength=n_cells)
    to_forest = (field_count < _MIN_FRAGMENT) & (forest_count > field_count)
    to_field = (forest_count < _MIN_FRAGMENT) & ~to_forest
    return free & np.where(to_forest[cells], True, np.where(to_field[cells], False, forest))


def _grassland_cells(rng: np.random.Generator, size: int, cells: np.ndarray, fields: np.ndarray,
                     attractors: np.ndarray, target: float) -> np.ndarray:
    """Choose the grassland cells among the field cells (preferably near forest and water)."""
    n_cells = int(cells.max()) + 1
    near = ndimage.distance_transform_edt(~attractors) < 12
    score_px = smooth_field(rng, size, 0.12 * size) + 0.8 * near
    count = np.bincount(cells[fields], minlength=n_cells)
    score = np.bincount(cells[fields], weights=score_px[fields], minlength=n_cells) / np.maximum(count, 1)
    score += rng.normal(0.0, 0.5, n_cells)
    score[count < 25] = np.inf  # slivers become meadow
    order = np.argsort(-score, kind="stable")
    chosen = np.zeros(n_cells, dtype=bool)
    chosen[order[np.cumsum(count[order]) <= target]] = True
    return chosen[cells]


def _compact_ids(parcel: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber parcel ids to 1..n and return the class of every id (index 0 unused)."""
    ids, inverse = np.unique(parcel, return_inverse=True)
    compact = (inverse.reshape(parcel.shape) + 1).astype(np.int32)
    classes = np.zeros(ids.size + 1, dtype=np.uint8)
    classes[compact.ravel()] = label.ravel()
    return compact, classes
