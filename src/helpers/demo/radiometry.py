"""Radiometry: the acquisition of each date and its rendering as Level-1C top-of-atmosphere DNs.

Each date gets a haze level, illumination, lake extent, turbidity, soil moisture, and maybe
clouds (with shadows and cirrus) or a partial swath. The surface is the parcels' and pixels'
material fractions times the endmember spectra, seen through a simple atmosphere
(``toa = path * haze + transmittance * illumination * surface``), averaged to every band's
native resolution, with sensor noise, as uint16 DN (reflectance x 10000).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from scipy import ndimage

from helpers.core.config import L1C_BANDS, Config
from helpers.demo.landscape import DemoScene
from helpers.demo.layout import FARMLAND, INDUSTRY, PIXEL_SIZE, SETTLEMENT, WATER, smooth_field
from helpers.demo.phenology import (
    ASPHALT,
    BRIGHT_ROOF,
    CLEAR_WATER,
    ENDMEMBERS,
    GRAVEL,
    GREEN,
    GREY_ROOF,
    MATERIAL_NAMES,
    RED_ROOF,
    STRAW,
    TURBID_WATER,
    WET_SOIL,
    DatePlan,
    grass_season,
    parcel_abundances,
)
from helpers.demo.safe_writer import BAND_RESOLUTION

# Top-of-atmosphere model: toa = path * haze + transmittance * illumination * surface.
_PATH = np.array([0.095, 0.060, 0.035, 0.018, 0.015, 0.010, 0.008, 0.007, 0.003, 0.0012, 0.002, 0.001, 0.006],
                 dtype=np.float32)
_TRANSMITTANCE = np.array([0.70, 0.78, 0.84, 0.88, 0.90, 0.91, 0.92, 0.93, 0.30, 0.005, 0.92, 0.90, 0.93],
                          dtype=np.float32)
_CLOUD = np.array([0.50, 0.49, 0.47, 0.46, 0.46, 0.455, 0.45, 0.445, 0.20, 0.08, 0.33, 0.22, 0.44],
                  dtype=np.float32)
_NOISE = np.array([0.0015, 0.0030, 0.0030, 0.0030, 0.0020, 0.0020, 0.0020, 0.0035, 0.0010, 0.0002,
                   0.0020, 0.0015, 0.0020], dtype=np.float32)

_LATITUDE = 50.9


# ---------------------------------------------------------------------- dates
def _sun_elevation(doy: int) -> float:
    """Approximate solar elevation (degrees) at the 10:10 UTC overpass."""
    declination = 23.44 * np.sin(2 * np.pi * (doy - 81) / 365.0)
    return float(90.0 - _LATITUDE + declination - 4.0)


def plan_dates(config: Config, rng: np.random.Generator) -> list[DatePlan]:
    """Acquisition parameters of every configured date.

    About a third of the dates get clouds (never the reference date); the first pool date
    that is not the reference covers the scene only partly.

    Args:
        config: The study-area configuration (training pool, reference and new dates).
        rng: Random generator.
    """
    pool, new = list(config.training_pool), [d for d in config.new if d not in config.training_pool]
    labels = sorted(set(pool) | set(new))
    candidates = [d for d in labels if d != config.reference]
    n_cloudy = round(len(labels) / 3)
    cloudy = set(rng.choice(candidates, size=min(n_cloudy, len(candidates)), replace=False).tolist())
    partial = next((d for d in pool if d != config.reference), None)
    plans: list[DatePlan] = []
    s2b_turn = False
    for label in labels:
        date = dt.datetime.strptime(label, "%Y%m%d").date()
        doy = date.timetuple().tm_yday
        elevation = _sun_elevation(doy)
        sun = np.sin(np.radians(elevation)) / np.sin(np.radians(_sun_elevation(172)))
        drawdown = float(np.clip(np.sin(np.pi * (doy - 120) / 200.0), 0.0, 1.0)) if 120 <= doy <= 320 else 0.0
        wet_season = 0.5 + 0.35 * np.cos(2 * np.pi * (doy - 30) / 365.0)
        if date >= dt.date(2017, 7, 1):
            s2b_turn = not s2b_turn
        plans.append(DatePlan(
            label=label, is_new=label in new, spacecraft="S2B" if s2b_turn else "S2A",
            haze=float(rng.uniform(0.85, 1.2) * (1.0 + 0.3 * (1.0 - sun))),
            illumination=float(0.72 + 0.28 * sun),
            water_extent=float(1.0 - 0.13 * drawdown * rng.uniform(0.6, 1.0)),
            turbidity=float(rng.uniform(0.1, 0.6)),
            moisture=float(np.clip(wet_season + rng.normal(0, 0.1), 0, 1)),
            cloudy=label in cloudy, partial=label == partial, sun_elevation=elevation,
        ))
    return plans


# ---------------------------------------------------------------------- rendering
def _pixel_abundances(scene: DemoScene, label: np.ndarray,
                      plan: DatePlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Endmember fractions of the classes modelled per pixel: settlement, industry and water."""
    season = grass_season(plan.doy)
    garden_green = 0.45 + 0.45 * season
    out = []
    k = len(MATERIAL_NAMES)

    where = np.flatnonzero(label.ravel() == SETTLEMENT)
    f = scene.garden.ravel()[where]
    s = scene.sheds.ravel()[where]  # sheds and garages: roofs between the buildings
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, GREEN] = f * garden_green
    a[:, STRAW], a[:, WET_SOIL] = f * (1 - garden_green) * 0.6, f * (1 - garden_green) * 0.4
    a[:, RED_ROOF], a[:, GREY_ROOF] = (1 - f) * s * 0.6, (1 - f) * (s * 0.4 + (1 - s) * 0.1)
    a[:, ASPHALT], a[:, GRAVEL] = (1 - f) * (1 - s) * 0.65, (1 - f) * (1 - s) * 0.25
    out.append((where, a))

    where = np.flatnonzero(label.ravel() == INDUSTRY)
    h = scene.halls.ravel()[where]
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, BRIGHT_ROOF], a[:, GREY_ROOF] = h * 0.8, h * 0.2 + (1 - h) * 0.25
    a[:, ASPHALT], a[:, GRAVEL], a[:, GREEN] = (1 - h) * 0.5, (1 - h) * 0.15, (1 - h) * 0.1 * garden_green
    out.append((where, a))

    where = np.flatnonzero(label.ravel() == WATER)
    rho = scene.lake_rho.ravel()[where]
    w = np.clip((plan.water_extent - rho) * scene.lake_radius + 0.5, 0.0, 1.0)
    shore_green = 0.25 + 0.45 * season
    a = np.zeros((where.size, k), dtype=np.float32)
    a[:, CLEAR_WATER], a[:, TURBID_WATER] = w * (1 - plan.turbidity), w * plan.turbidity
    a[:, WET_SOIL], a[:, GREEN], a[:, STRAW] = (1 - w) * 0.6, (1 - w) * 0.35 * shore_green, (1 - w) * 0.1
    out.append((where, a))
    return out


_MARGIN_SHARE = 0.45
"""Share of a field's edge pixel covered by its margin (grass strip, hedge, track)."""


def _field_margins(parcel: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Farmland pixels on a parcel border (a 4-neighbour belongs to another parcel).

    Fields are lined by grassy strips, hedges and tracks a few metres wide, which the ground
    truth counts as part of the field: a 10 m pixel at the edge mixes both, so per pixel it
    looks like neither the field nor grassland; its position on the field's outline explains it.
    """
    border = np.zeros(parcel.shape, dtype=bool)
    vertical = parcel[1:, :] != parcel[:-1, :]
    horizontal = parcel[:, 1:] != parcel[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    return border & (label == FARMLAND)


def _margin_spectrum(plan: DatePlan) -> np.ndarray:
    """Surface reflectance of field margins on a date: rough grass and herbs, some bare track."""
    green = 0.3 + 0.5 * grass_season(plan.doy)
    fractions = np.zeros(len(MATERIAL_NAMES), dtype=np.float32)
    fractions[GREEN], fractions[STRAW] = green, 0.75 * (1.0 - green)
    fractions[WET_SOIL] = 0.25 * (1.0 - green)
    return fractions @ ENDMEMBERS


def cloud_fields(rng: np.random.Generator, size: int,
                 plan: DatePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity, cloud-shadow strength and cirrus reflectance of one cloudy date.

    Public because the generator's clouds are also the demo's reference for the cloud masks
    (:mod:`helpers.demo.cloud_reference` replays them from the date's stream); whoever calls
    it must hand it the date's stream in the state :func:`render_date` hands it over, i.e.
    fresh, before any other draw.

    Args:
        rng: The date's random generator, before any other draw of that date.
        size: Scene side in 10 m pixels.
        plan: The date's acquisition parameters (the sun elevation sets the shadow length).

    Returns:
        Opacity (0..1), shadow strength (0..1) and cirrus reflectance, float32 (size, size) each.
    """
    yy, xx = np.indices((size, size)).astype(np.float32) + 0.5
    envelope = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0, size, 2)
        sigma = size * rng.uniform(0.02, 0.045)
        envelope += rng.uniform(0.6, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    value = envelope * (1.0 + 0.45 * smooth_field(rng, size, 5.0) + 0.25 * smooth_field(rng, size, 15.0))
    cover = rng.uniform(0.03, 0.09)
    threshold = np.quantile(value, 1.0 - cover)
    top = max(float(value.max()), threshold + 1e-6)
    opacity = np.clip((value - threshold) / (0.45 * (top - threshold)), 0.0, 1.0).astype(np.float32)
    # Shadows fall away from the sun (south-south-east in the morning overpass), capped in length.
    height = rng.uniform(800.0, 2000.0)
    length = min(height / np.tan(np.radians(max(plan.sun_elevation, 5.0))) / PIXEL_SIZE, 0.25 * size)
    azimuth = np.radians(rng.uniform(155.0, 170.0))
    shift = (length * np.cos(azimuth), -length * np.sin(azimuth))  # rows (south +), cols (east +)
    shadow = ndimage.shift(opacity, shift, order=1, mode="constant", cval=0.0)
    cirrus = np.zeros((size, size), dtype=np.float32)
    if rng.random() < 0.5:
        cirrus = (rng.uniform(0.004, 0.015) * np.clip(smooth_field(rng, size, 0.3 * size) + 0.3, 0.0, 2.0))
    return opacity, shadow.astype(np.float32), cirrus.astype(np.float32)


def _swath_mask(size: int, factor: int) -> np.ndarray:
    """True where a partial acquisition has no data (a slanted strip at the east edge)."""
    centres = (np.arange(size // factor) + 0.5) * factor
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    return cols > size * (0.74 + 0.1 * rows / size)


def render_date(scene: DemoScene, plan: DatePlan,
                rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """Render the 13 L1C bands of one date as uint16 DN at their native resolutions.

    Args:
        scene: The landscape.
        plan: The date's acquisition parameters.
        rng: Random generator of this date, fresh: a cloudy date draws its clouds from it first
            (:func:`cloud_fields`), then the cloud brightness and the sensor noise.

    Returns:
        Band name -> DN array, and the cloud cover in percent.
    """
    size = scene.size
    label = scene.label_new if plan.is_new else scene.label
    parcel = scene.parcel_new if plan.is_new else scene.parcel
    classes = scene.parcel_class_new if plan.is_new else scene.parcel_class
    abundance = parcel_abundances(scene.params, classes, plan)
    surface = (abundance @ ENDMEMBERS)[parcel]  # (rows, cols, bands)
    surface += ((scene.vigour - 1.0) * abundance[parcel, GREEN])[..., None] * ENDMEMBERS[GREEN]
    flat = surface.reshape(-1, len(L1C_BANDS))
    for where, fractions in _pixel_abundances(scene, label, plan):
        flat[where] = fractions @ ENDMEMBERS
    margin = _field_margins(parcel, label)
    surface[margin] = (1.0 - _MARGIN_SHARE) * surface[margin] + _MARGIN_SHARE * _margin_spectrum(plan)
    surface *= scene.texture[..., None]
    surface = ndimage.gaussian_filter(np.moveaxis(surface, -1, 0), sigma=(0, 0.5, 0.5))

    opacity = shadow = cirrus = None
    if plan.cloudy:
        # The date's stream draws its clouds FIRST, before the cloud brightness and the sensor
        # noise: helpers.demo.cloud_reference rebuilds the demo's reference clouds from a fresh
        # stream on that order. Draw anything new after the clouds, never before them.
        opacity, shadow, cirrus = cloud_fields(rng, size, plan)
        surface *= 1.0 - 0.7 * shadow
    toa = _PATH[:, None, None] * plan.haze + _TRANSMITTANCE[:, None, None] * plan.illumination * surface
    cloud_pct = 0.0
    if opacity is not None:
        brightness = rng.uniform(0.85, 1.1)
        toa = (1 - opacity) * toa + opacity * _CLOUD[:, None, None] * brightness * (0.8 + 0.2 * opacity)
        toa += cirrus * np.where(np.array(L1C_BANDS) == "B10", 1.0, 0.35).astype(np.float32)[:, None, None]
        cloud_pct = float(100.0 * np.mean(opacity > 0.3))

    bands: dict[str, np.ndarray] = {}
    for index, band in enumerate(L1C_BANDS):
        factor = BAND_RESOLUTION[band] // 10
        field_10m = toa[index]
        if factor > 1:
            field_10m = field_10m.reshape(size // factor, factor, size // factor, factor).mean(axis=(1, 3))
        noisy = field_10m + rng.normal(0.0, _NOISE[index], field_10m.shape)
        dn = np.clip(np.rint(noisy * 10000.0), 1, 65535).astype(np.uint16)
        if plan.partial:
            dn[_swath_mask(size, factor)] = 0
        bands[band] = dn
    return bands, cloud_pct
