"""Phenology: what covers each parcel on a date, as fractions of surface materials.

Every parcel draws its own calendar (sowing, spring regrowth, ripening, harvest, catch crops,
mowing, leaf-on and leaf-off) once per crop year; on a date, farmland, grassland, forest,
buildings and unclassifiable patches become fractions of the endmember materials (green
vegetation, straw, soil, roofs ...), vectorised over the parcels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from helpers.demo.layout import BUILDINGS, FARMLAND, FOREST, GRASSLAND, UNCLASSIFIABLE

# Surface endmembers (reflectance, L1C band order B01..B12, B8A).
MATERIAL_NAMES = (
    "green", "straw", "conifer", "leafless", "dry_soil", "wet_soil", "water", "turbid_water",
    "red_roof", "grey_roof", "bright_roof", "asphalt", "gravel",
)
(GREEN, STRAW, CONIFER, LEAFLESS, DRY_SOIL, WET_SOIL, CLEAR_WATER, TURBID_WATER,
 RED_ROOF, GREY_ROOF, BRIGHT_ROOF, ASPHALT, GRAVEL) = range(len(MATERIAL_NAMES))
ENDMEMBERS = np.array([
    # B01    B02    B03    B04    B05    B06    B07    B08    B09    B10    B11    B12    B8A
    [0.030, 0.035, 0.075, 0.035, 0.110, 0.290, 0.370, 0.410, 0.420, 0.150, 0.210, 0.100, 0.425],
    [0.070, 0.080, 0.120, 0.150, 0.190, 0.230, 0.260, 0.280, 0.290, 0.250, 0.360, 0.260, 0.290],
    [0.020, 0.025, 0.045, 0.022, 0.065, 0.170, 0.215, 0.240, 0.245, 0.080, 0.120, 0.055, 0.250],
    [0.045, 0.050, 0.065, 0.075, 0.095, 0.125, 0.140, 0.160, 0.165, 0.120, 0.210, 0.150, 0.165],
    [0.080, 0.095, 0.125, 0.155, 0.175, 0.195, 0.210, 0.225, 0.235, 0.260, 0.310, 0.250, 0.230],
    [0.045, 0.055, 0.075, 0.095, 0.105, 0.115, 0.125, 0.135, 0.130, 0.110, 0.150, 0.110, 0.140],
    [0.040, 0.045, 0.055, 0.030, 0.020, 0.010, 0.008, 0.006, 0.004, 0.002, 0.002, 0.001, 0.005],
    [0.050, 0.060, 0.085, 0.070, 0.055, 0.025, 0.020, 0.018, 0.010, 0.004, 0.004, 0.002, 0.015],
    [0.090, 0.100, 0.120, 0.220, 0.260, 0.280, 0.290, 0.300, 0.300, 0.300, 0.330, 0.280, 0.300],
    [0.170, 0.190, 0.210, 0.225, 0.235, 0.245, 0.250, 0.255, 0.255, 0.260, 0.280, 0.250, 0.255],
    [0.270, 0.300, 0.320, 0.330, 0.340, 0.345, 0.350, 0.355, 0.355, 0.350, 0.360, 0.330, 0.355],
    [0.080, 0.085, 0.095, 0.105, 0.110, 0.115, 0.120, 0.125, 0.125, 0.150, 0.160, 0.150, 0.125],
    [0.160, 0.180, 0.220, 0.260, 0.280, 0.290, 0.300, 0.310, 0.310, 0.330, 0.370, 0.320, 0.310],
], dtype=np.float32)
"""Surface reflectance of the materials; fractions summing to less than 1 leave shade (dark)."""

_LEY_SHARE = 0.1
"""Share of farmland parcels under a grass ley: farmland in the ground truth (as in ATKIS), grass
in their phenology; only their even, sown stand and straight margins tell them from meadows."""

_EPOCH = dt.date(2015, 1, 1)
_CROP_YEARS = np.arange(2014, 2021)


@dataclass
class ParcelParams:
    """Per-parcel random parameters, arrays indexed by parcel id (index 0 unused)."""

    brightness: np.ndarray
    soil_brightness: np.ndarray
    moisture_offset: np.ndarray
    winter: np.ndarray  # (years, ids) bool: winter crop harvested in that year
    sow: np.ndarray  # (years, ids) absolute day of sowing
    spring: np.ndarray  # (years, ids) absolute day of spring regrowth (winter crops)
    ripen: np.ndarray  # (years, ids) absolute day of senescence
    harvest: np.ndarray  # (years, ids) absolute day of harvest
    green_max: np.ndarray  # (years, ids)
    green_autumn: np.ndarray  # (years, ids) autumn cover of winter crops
    catch_crop: np.ndarray  # (years, ids) bool: catch crop after that year's harvest
    catch_green: np.ndarray  # (years, ids)
    grass_winter: np.ndarray
    grass_summer: np.ndarray
    cuts: np.ndarray  # (years, 3, ids) absolute days of mowing (nan: no cut)
    cut_depth: np.ndarray
    regrowth: np.ndarray
    deciduous: np.ndarray
    leaf_on: np.ndarray
    leaf_off: np.ndarray
    roof: np.ndarray  # material index of the roof
    roof_cover: np.ndarray  # share of a building's pixels under its roof (10 m pixels mix roof and yard)
    ley: np.ndarray  # bool: a farmland parcel under a sown grass ley (clover-grass), mown like a meadow
    waste_mix: np.ndarray  # (ids, 3): gravel, dry soil, vegetation of unclassifiable patches


@dataclass(frozen=True)
class DatePlan:
    """Per-date acquisition parameters.

    Attributes:
        label: YYYYMMDD.
        is_new: True for the new (post-change) dates.
        spacecraft: ``S2A`` or ``S2B``.
        haze: Multiplier of the path reflectance.
        illumination: Multiplier of the surface signal (lower in winter).
        water_extent: Lake extent relative to its maximum (<= 1).
        turbidity: Share of turbid water in the lake spectrum.
        moisture: Soil moisture level (0 dry .. 1 wet).
        cloudy: Whether the date has clouds.
        partial: Whether the date covers the scene only partly.
    """

    label: str
    is_new: bool
    spacecraft: str
    haze: float
    illumination: float
    water_extent: float
    turbidity: float
    moisture: float
    cloudy: bool
    partial: bool
    sun_elevation: float = field(default=45.0)

    @property
    def date(self) -> dt.date:
        """The calendar date."""
        return dt.datetime.strptime(self.label, "%Y%m%d").date()

    @property
    def doy(self) -> int:
        """Day of year."""
        return self.date.timetuple().tm_yday

    @property
    def day(self) -> float:
        """Days since 2015-01-01."""
        return float((self.date - _EPOCH).days)


def _logistic(x: np.ndarray | float, centre: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    """Smooth step from 0 to 1 around ``centre``."""
    z = np.clip((np.asarray(x, dtype=np.float64) - centre) / width, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def _abs_day(year: np.ndarray | int, doy: np.ndarray | float) -> np.ndarray:
    """Days since 2015-01-01 of a (year, day-of-year) pair; vectorised over years."""
    offsets = np.array([(dt.date(int(y), 1, 1) - _EPOCH).days for y in np.ravel(year)], dtype=np.float64)
    return offsets.reshape(np.shape(year)) + doy


def draw_params(rng: np.random.Generator, n_ids: int) -> ParcelParams:
    """Draw every per-parcel parameter for all ids (whatever their class)."""
    n_years = _CROP_YEARS.size
    years = np.repeat(_CROP_YEARS[:, None], n_ids, axis=1)
    winter = rng.random((n_years, n_ids)) < 0.55
    sow = np.where(winter, _abs_day(years - 1, rng.uniform(255, 285, (n_years, n_ids))),
                   _abs_day(years, rng.uniform(100, 135, (n_years, n_ids))))
    harvest = np.where(winter, _abs_day(years, rng.uniform(192, 222, (n_years, n_ids))),
                       _abs_day(years, rng.uniform(248, 295, (n_years, n_ids))))
    # A winter crop cannot be sown before the previous summer crop is harvested.
    late = winter[1:] & (sow[1:] < harvest[:-1] + 10)
    sow[1:] = np.where(late, harvest[:-1] + rng.uniform(8, 20, (n_years - 1, n_ids)), sow[1:])
    shape = (n_years, n_ids)
    ripen = harvest - np.where(winter, rng.uniform(20, 35, shape), rng.uniform(15, 30, shape))
    catch = np.zeros((n_years, n_ids), dtype=bool)
    catch[:-1] = winter[:-1] & ~winter[1:] & (rng.random((n_years - 1, n_ids)) < 0.45)

    cuts = np.full((n_years, 3, n_ids), np.nan)
    first = rng.uniform(130, 165, (n_years, n_ids))
    second = first + rng.uniform(38, 60, (n_years, n_ids))
    third = second + rng.uniform(38, 60, (n_years, n_ids))
    meadow = rng.random(n_ids) < 0.72
    cuts[:, 0] = np.where(meadow, _abs_day(years, first), np.nan)
    cuts[:, 1] = np.where(meadow, _abs_day(years, second), np.nan)
    cuts[:, 2] = np.where(meadow & (rng.random((n_years, n_ids)) < 0.5), _abs_day(years, third), np.nan)

    kind = rng.choice(3, n_ids, p=[0.4, 0.35, 0.25])
    mixtures = [rng.beta(1.5, 5.0, n_ids), rng.beta(3.0, 3.0, n_ids), rng.beta(5.0, 1.5, n_ids)]
    deciduous = np.choose(kind, mixtures)
    waste = rng.dirichlet([2.0, 1.5, 1.0], n_ids)
    return ParcelParams(
        brightness=rng.normal(1.0, 0.035, n_ids), soil_brightness=rng.uniform(0.8, 1.2, n_ids),
        moisture_offset=rng.normal(0.0, 0.12, n_ids), winter=winter, sow=sow,
        spring=_abs_day(years, rng.uniform(85, 110, (n_years, n_ids))), ripen=ripen, harvest=harvest,
        green_max=rng.uniform(0.82, 1.0, shape), green_autumn=rng.uniform(0.25, 0.55, shape),
        catch_crop=catch, catch_green=rng.uniform(0.35, 0.7, shape),
        grass_winter=rng.uniform(0.4, 0.6, n_ids),
        grass_summer=np.where(meadow, rng.uniform(0.82, 0.97, n_ids), rng.uniform(0.68, 0.85, n_ids)),
        cuts=cuts, cut_depth=rng.uniform(0.45, 0.7, n_ids), regrowth=rng.uniform(10, 20, n_ids),
        deciduous=deciduous, leaf_on=rng.uniform(108, 126, n_ids), leaf_off=rng.uniform(286, 305, n_ids),
        roof=rng.choice([RED_ROOF, GREY_ROOF, BRIGHT_ROOF], n_ids, p=[0.55, 0.3, 0.15]), waste_mix=waste,
        roof_cover=rng.uniform(0.6, 0.92, n_ids), ley=rng.random(n_ids) < _LEY_SHARE,
    )


# ---------------------------------------------------------------------- cover
def _farmland_cover(p: ParcelParams, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Green and straw/stubble fractions of every parcel under the farmland model at day ``t``."""
    active = t >= p.sow
    before_harvest = t < p.harvest
    autumn = p.green_autumn * _logistic(t, p.sow + 28, 7)
    spring = (p.green_max - p.green_autumn) * _logistic(t, p.spring + 22, 9)
    summer = p.green_max * _logistic(t, p.sow + 45, 8)
    canopy = np.where(p.winter, autumn + spring, summer)
    ripe = _logistic(t, p.ripen, 6)
    growing = active & before_harvest
    green = np.where(growing, canopy * (1.0 - ripe), 0.0)
    straw = np.where(growing, canopy * ripe, 0.0)
    straw += np.where(t >= p.harvest, 0.55 * np.exp(-np.clip(t - p.harvest, 0, None) / 20.0), 0.0)
    next_sow = np.vstack([p.sow[1:], p.sow[-1:] + 365.0])
    catch = p.catch_crop & (t >= p.harvest)
    cover_crop = p.catch_green * _logistic(t, p.harvest + 35, 7) * (1 - _logistic(t, next_sow - 25, 5))
    green += np.where(catch, cover_crop, 0.0)
    g = np.clip(green.sum(axis=0), 0.0, 1.0)
    return g, np.clip(straw.sum(axis=0), 0.0, 1.0 - g)


def grass_season(doy: float) -> float:
    """Seasonal greening of grass (0 in winter, 1 in summer)."""
    return float(_logistic(doy, 105, 12) * (1.0 - _logistic(doy, 300, 15)))


def _grass_cover(p: ParcelParams, t: float, doy: int, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Green and hay fractions of every parcel under the grassland model (mowing, 2018 drought)."""
    base = p.grass_winter + (p.grass_summer - p.grass_winter) * grass_season(doy)
    since = t - p.cuts  # (years, 3, ids); negative or nan before / without a cut
    cut = np.nan_to_num(since, nan=-1.0) >= 0
    since = np.where(cut, since, 0.0)
    drop = np.where(cut, p.cut_depth * np.exp(-since / p.regrowth), 0.0)
    hay = np.where(cut, 0.3 * np.exp(-since / 5.0), 0.0).sum(axis=(0, 1))
    green = base * np.prod(1.0 - drop, axis=(0, 1))
    if year == 2018:  # the dry summer of 2018 browned many meadows
        dryness = 0.22 * float(np.exp(-(((doy - 215) / 30.0) ** 2)))
        hay = hay + dryness * green
        green = green * (1.0 - dryness)
    return np.clip(green, 0, 1), np.clip(hay, 0, 1 - np.clip(green, 0, 1))


def parcel_abundances(p: ParcelParams, classes: np.ndarray, plan: DatePlan) -> np.ndarray:
    """Endmember fractions (ids x materials) of every parcel for one date."""
    t, doy, year = plan.day, plan.doy, plan.date.year
    n = classes.size
    a = np.zeros((n, len(MATERIAL_NAMES)), dtype=np.float64)
    wet = np.clip(plan.moisture + p.moisture_offset, 0.0, 1.0)

    farm_green, farm_straw = _farmland_cover(p, t)
    grass_green, grass_hay = _grass_cover(p, t, doy, year)
    is_farm, is_grass = classes == FARMLAND, classes == GRASSLAND
    crop, sward = is_farm & ~p.ley, is_grass | (is_farm & p.ley)  # a ley grows and is mown like grass
    green = np.where(crop, farm_green, np.where(sward, grass_green, 0.0))
    straw = np.where(crop, farm_straw, np.where(sward, grass_hay, 0.0))
    soil = np.where(is_farm | is_grass, np.clip(1.0 - green - straw, 0.0, 1.0), 0.0) * p.soil_brightness
    a[:, GREEN], a[:, STRAW] = green, straw
    a[:, DRY_SOIL], a[:, WET_SOIL] = soil * (1 - wet), soil * wet

    forest = classes == FOREST
    leaves = _logistic(doy, p.leaf_on, 6) * (1.0 - _logistic(doy, p.leaf_off, 8))
    a[forest, CONIFER] = 0.92 * (1 - p.deciduous[forest])
    a[forest, GREEN] = 0.92 * p.deciduous[forest] * leaves[forest]
    a[forest, LEAFLESS] = 0.92 * p.deciduous[forest] * (1 - leaves[forest])

    building = classes == BUILDINGS
    winter_shadow = 0.08 + 0.25 * (1.0 - plan.illumination) / 0.28
    cover = p.roof_cover[building]
    a[building, p.roof[building]] = cover * (1.0 - winter_shadow)
    yard = 1.0 - cover  # the rest of a building's pixels: yard and garden
    a[building, GREEN] = yard * 0.5 * (0.45 + 0.45 * grass_season(doy))
    a[building, ASPHALT] = yard * 0.5

    waste = classes == UNCLASSIFIABLE
    season = 0.3 + 0.6 * grass_season(doy)
    a[waste, GRAVEL] = p.waste_mix[waste, 0]
    a[waste, DRY_SOIL] = p.waste_mix[waste, 1]
    a[waste, GREEN] = p.waste_mix[waste, 2] * season
    a[waste, STRAW] = p.waste_mix[waste, 2] * (1 - season)
    return (a * p.brightness[:, None]).astype(np.float32)
