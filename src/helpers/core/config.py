"""Load and validate a study-area configuration (one TOML file per study area).

Every value a script needs comes from here, so that a researcher adapts the pipeline to
their own Sentinel-2 data and ground truth by editing one file, not the code. The file is read
strictly: an unknown key (a typo would otherwise fall back to a default unnoticed) is an error
that suggests the closest valid one; the valid keys are listed in :mod:`helpers.core.config_schema`.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.core.config_schema import (
    CloudSettings,
    ConfigReader,
    check_unknown_keys,
    normalise_date,
    read_clouds,
    read_crs,
    read_norm,
    read_training,
)
from helpers.core.errors import InputError
from helpers.core.layout import StudyAreaLayout, format_threshold
from helpers.core.paths import DEFAULT_CONFIG, REPO_ROOT, resolve_from_root

__all__ = ["L1C_BANDS", "L2A_BANDS", "LEVEL_BANDS", "SPLITS", "Config", "LandCoverClass",
           "format_threshold", "load_config", "normalise_date", "normalise_gt_value", "read_config"]

L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)
"""Level-1C band order of every stack: EuroSAT order, B8A last (as the original)."""

L2A_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A",
    "AOT", "WVP", "CLD", "SCL", "SNW",
)
"""Level-2A layer order (17 layers, no B10), as the original's L2A branch."""

LEVEL_BANDS = {"L1C": L1C_BANDS, "L2A": L2A_BANDS}
SPLITS: tuple[str, ...] = ("valid", "train", "test")
"""Subset names in the order the shuffled tile list is cut (first 20 % valid ...)."""

_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class LandCoverClass:
    """One ground-truth class.

    Attributes:
        id: Raster value (1..255); 0 means outside the study area.
        name: Human-readable name.
        colour: ``#rrggbb`` colour for maps.
        pixel_count: Pixel count used for the loss weights (None for the unclassifiable class).
        gt_values: Attribute values in the GT vector file that map to this id.
    """

    id: int
    name: str
    colour: str
    pixel_count: int | None
    gt_values: tuple[Any, ...]


@dataclass(frozen=True)
class Config(StudyAreaLayout):
    """A validated study-area configuration. Paths are absolute."""

    source: Path
    name: str
    data_root: Path
    models_root: Path
    reports_root: Path
    level: str
    crs: str
    resolution: float
    gt_file: Path | None
    gt_attribute: str | None
    aoi_file: Path
    extra_aoi_files: tuple[Path, ...]
    true_change_file: Path | None
    unclassifiable_id: int
    water_id: int
    classes: tuple[LandCoverClass, ...]
    training_pool: tuple[str, ...]
    fcn_training: tuple[str, ...]
    fixed_sequence: tuple[str, ...]
    evaluation: tuple[str, ...]
    new: tuple[str, ...]
    reference: str
    combinations: tuple[tuple[str, ...], ...]
    water_thresholds: tuple[float, ...]
    water_threshold: float | None
    water_dates: tuple[str, ...]
    tile_size: int
    separation: int
    prediction_stride: int
    split_method: str
    split_seed: int
    split_fractions: dict[str, float]
    block_size: int
    norm_mean: tuple[float, ...] | None
    norm_std: tuple[float, ...] | None
    training: dict[str, Any] = field(default_factory=dict)
    min_labelled_fraction: float = 1.0
    classification_area: str = "aoi"
    baselines: dict[str, str] = field(default_factory=dict)
    period_a: tuple[tuple[str, ...], ...] = ()
    period_b: tuple[tuple[str, ...], ...] = ()
    clouds: CloudSettings = field(default_factory=CloudSettings)

    @property
    def has_ground_truth(self) -> bool:
        """False for a classification-only study area (no ``ground_truth.file``)."""
        return self.gt_file is not None

    def require_ground_truth(self, what: str) -> None:
        """Refuse, in one line, work that needs ground truth on a classification-only study area.

        Args:
            what: What needs it (``step 02``, ``training``, ``metrics.py`` ...), named in the message.

        Raises:
            InputError: ``<config> has no ground_truth.file; <what> needs ground truth ...``.
        """
        if not self.has_ground_truth:
            raise InputError(f"{self.source} has no ground_truth.file; {what} needs ground truth (a "
                             "classification-only study area)")

    # ------------------------------------------------------------------ derived values
    @property
    def tile_stride(self) -> int:
        """Distance between the origins of neighbouring training tiles."""
        return self.tile_size + self.separation

    @property
    def class_ids(self) -> tuple[int, ...]:
        """All class ids of the table, in table order."""
        return tuple(c.id for c in self.classes)

    def bands(self, level: str | None = None) -> tuple[str, ...]:
        """Band (layer) names of a processing level, in stack order."""
        return LEVEL_BANDS[self.check_level(level)]

    def check_level(self, level: str | None) -> str:
        """Return the level in canonical form, or the config's default for None.

        Raises:
            InputError: If the level is neither L1C nor L2A.
        """
        if level is None:
            return self.level
        canonical = str(level).upper().removeprefix("LEVEL_")
        if canonical not in LEVEL_BANDS:
            raise InputError(f"unknown processing level '{level}' (use L1C or L2A)")
        return canonical

    @property
    def classification_dates(self) -> tuple[str, ...]:
        """Dates that get NEW stacks (step 08b): the new dates, then the other dates of the change periods.

        A period date outside ``dates.new`` and ``dates.training_pool`` is left out here; the
        change-period check (``change_detection.py --periods``) names it.
        """
        known = {*self.new, *self.training_pool}
        extra = sorted({d for combo in (*self.period_a, *self.period_b) for d in combo if d in known} - set(self.new))
        return (*self.new, *extra)

    @property
    def all_dates(self) -> tuple[str, ...]:
        """Every configured date (training pool, reference and new dates), sorted."""
        return tuple(sorted({*self.training_pool, self.reference, *self.new}))


# ---------------------------------------------------------------------- loading
def _normalise_gt_value(value: Any) -> Any:
    """Make GT attribute values comparable: integral numbers and digit strings become int."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return int(float(text))
    return text


def normalise_gt_value(value: Any) -> Any:
    """Public form of the GT attribute normalisation (used by rasterisation)."""
    return _normalise_gt_value(value)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a study-area configuration.

    Args:
        path: The TOML file; relative paths are taken from the repository root. None means
            ``configs/demo.toml``.

    Returns:
        The validated configuration with absolute paths.

    Raises:
        ConfigError: For an unknown, missing or invalid key (the message names the key and the
            reason; an unknown key comes with the closest valid one).
        InputError: If the file is missing or not valid TOML.
    """
    source = DEFAULT_CONFIG if path is None else resolve_from_root(path)
    if not source.is_file():
        raise InputError(f"{source}: config file not found")
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{source}: not a valid TOML file ({error})") from None
    check_unknown_keys(data, source)
    return read_config(ConfigReader(data, source), source)


def read_config(r: ConfigReader, source: Path) -> Config:
    """Build the :class:`Config` from a parsed document whose keys are all known.

    Args:
        r: Reader over the whole document (it records every key asked for).
        source: The config file.

    Raises:
        ConfigError: For a missing or invalid value.
    """
    data_root = resolve_from_root(r.get("paths.data_root", kinds=str), REPO_ROOT)
    models_root = resolve_from_root(r.get("paths.models_root", "models", str))
    reports_root = resolve_from_root(r.get("paths.reports_root", "reports", str))

    level = str(r.get("sentinel.level", "L1C", str)).upper()
    if level not in LEVEL_BANDS:
        raise r.error("sentinel.level", f"'{level}' is not L1C or L2A")
    crs = read_crs(r, "sentinel.crs")
    resolution = r.number("sentinel.resolution", 10.0)
    if not resolution > 0:
        raise r.error("sentinel.resolution", "must be positive")
    baselines = _read_baselines(r)

    gt_name = r.get("ground_truth.file", None, str)
    gt_file = None if gt_name is None else data_root / gt_name
    # without a GT file the attribute is optional (and unused)
    attribute = r.get("ground_truth.attribute", ... if gt_file is not None else None, str)
    classification_area = r.get("ground_truth.classification_area", "aoi", str)
    if classification_area not in ("aoi", "gt"):
        raise r.error("ground_truth.classification_area", f"'{classification_area}' is not 'aoi' or 'gt'")
    if classification_area == "gt" and gt_file is None:
        raise r.error("ground_truth.classification_area", "'gt' needs ground_truth.file (use 'aoi')")
    aoi_file = data_root / r.get("ground_truth.aoi_file", kinds=str)
    extra = tuple(data_root / p for p in r.strings("ground_truth.extra_aoi_files", []))
    true_change = r.get("ground_truth.true_change_file", None, str)
    unclassifiable_id = r.get("ground_truth.unclassifiable_id", kinds=int)
    water_id = r.get("ground_truth.water_id", kinds=int)

    classes = _read_classes(r)
    ids = [c.id for c in classes]
    for key, value in (("ground_truth.unclassifiable_id", unclassifiable_id), ("ground_truth.water_id", water_id)):
        if value not in ids:
            raise r.error(key, f"class id {value} is not in the class table {ids}")
    for c in classes:  # loss weights are needed for training only
        if gt_file is not None and c.id != unclassifiable_id and c.pixel_count is None:
            raise r.error("classes", f"class {c.id} ({c.name}) needs a pixel_count (> 0) for the loss weights")

    dates = _read_dates(r, source, has_gt=gt_file is not None)
    periods = _read_periods(r, dates["combinations"])
    water = _read_water_mask(r, dates["training_pool"])

    tile_size = r.get("tiling.tile_size", 32, int)
    min_labelled = r.number("tiling.min_labelled_fraction", 1.0)
    if not 0.0 < min_labelled <= 1.0:
        raise r.error("tiling.min_labelled_fraction", f"{min_labelled} is outside (0, 1] (1.0 keeps only fully "
                      "labelled tiles, as the original)")
    separation = r.get("tiling.separation", 1, int)
    stride = r.get("tiling.prediction_stride", 16, int)
    if tile_size < 2:
        raise r.error("tiling.tile_size", "must be at least 2")
    if separation < 0:
        raise r.error("tiling.separation", "must not be negative")
    if not 0 < stride <= tile_size:
        raise r.error("tiling.prediction_stride", f"must be in 1..tile_size ({tile_size})")

    method = r.get("split.method", "random", str)
    if method not in ("random", "block"):
        raise r.error("split.method", f"'{method}' is not 'random' or 'block'")
    seed = r.get("split.seed", 1, int)
    fractions = {s: r.number(f"split.{s}", d) for s, d in zip(SPLITS, (0.2, 0.6, 0.2), strict=True)}
    if any(v < 0 for v in fractions.values()) or not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise r.error("split", f"valid + train + test must be fractions summing to 1, got {fractions}")
    block_size = r.get("split.block_size", 8, int)
    if block_size < 1:
        raise r.error("split.block_size", "must be at least 1")

    n_bands = len(LEVEL_BANDS[level])
    mean = read_norm(r, "normalisation.mean", n_bands)
    std = read_norm(r, "normalisation.std", n_bands)
    if (mean is None) != (std is None):
        raise r.error("normalisation", "give both mean and std as lists, or both as \"compute\"")
    if std is not None and any(s <= 0 for s in std):
        raise r.error("normalisation.std", "every value must be positive")

    return Config(
        source=source, name=r.get("name", source.stem, str), data_root=data_root,
        models_root=models_root, reports_root=reports_root, level=level, crs=crs,
        resolution=resolution, gt_file=gt_file, gt_attribute=attribute if gt_file is not None else None,
        aoi_file=aoi_file, extra_aoi_files=extra,
        true_change_file=None if true_change is None else data_root / true_change,
        unclassifiable_id=unclassifiable_id, water_id=water_id, classes=classes, **dates, **water,
        tile_size=tile_size, separation=separation, prediction_stride=stride,
        split_method=method, split_seed=seed, split_fractions=fractions, block_size=block_size,
        norm_mean=mean, norm_std=std, training=read_training(r), min_labelled_fraction=min_labelled,
        classification_area=classification_area, baselines=baselines, **periods,
        clouds=read_clouds(r),
    )


def _read_baselines(r: ConfigReader) -> dict[str, str]:
    """``[sentinel.baselines]``: a free table, date -> processing baseline (``"05.09"``)."""
    baselines = {}
    for date_key, value in r.get("sentinel.baselines", {}, dict).items():
        date = normalise_date(date_key, r.source, f"sentinel.baselines.{date_key}")
        if not isinstance(value, str) or not re.fullmatch(r"\d{2}\.\d{2}", value):
            raise r.error(f"sentinel.baselines.{date_key}", f"{value!r} is not a processing baseline like \"05.09\"")
        if date in baselines:
            raise r.error(f"sentinel.baselines.{date_key}", f"date {date} is listed twice; dates must be unique")
        baselines[date] = value
    return baselines


def _read_dates(r: ConfigReader, source: Path, has_gt: bool) -> dict[str, Any]:
    """The ``[dates]`` table as Config fields; every list holds distinct dates.

    Without ground truth (a classification-only area) the training lists are optional and
    default to empty, and the reference defaults to the first new date.
    """
    pool = r.dates("dates.training_pool", ... if has_gt else [])
    if not pool and has_gt:
        raise r.error("dates.training_pool", "must name at least one date")
    fcn_training = r.dates("dates.fcn_training", list(pool) if has_gt else [])
    fixed = r.dates("dates.fixed_sequence", list(fcn_training))
    evaluation = r.dates("dates.evaluation", list(fcn_training))
    for key, subset in (("dates.fcn_training", fcn_training), ("dates.fixed_sequence", fixed),
                        ("dates.evaluation", evaluation)):
        missing = sorted(set(subset) - set(pool))
        if missing:
            raise r.error(key, f"dates {missing} are not in dates.training_pool")
    new = r.dates("dates.new", [])
    if not pool and not new:
        raise r.error("dates.new", "a study area without ground truth needs at least one new date to classify")
    default_reference = pool[-1] if has_gt or not new else new[0]
    reference = normalise_date(r.get("dates.reference", default_reference, str), source, "dates.reference")
    if has_gt and reference not in pool:
        raise r.error("dates.reference", f"'{reference}' is not in dates.training_pool")
    if not has_gt and reference not in (*pool, *new):
        raise r.error("dates.reference", f"'{reference}' is not in dates.new or dates.training_pool")
    combinations: list[tuple[str, ...]] = []
    for i, combo in enumerate(r.get("dates.combinations", [], list)):
        key = f"dates.combinations[{i}]"
        if not isinstance(combo, list) or not combo:
            raise r.error(key, "must be a non-empty list of dates")
        combo_dates = tuple(sorted(r.unique_dates(key, combo)))
        missing = sorted(set(combo_dates) - set(new))
        if missing:
            raise r.error(key, f"dates {missing} are not in dates.new")
        if combo_dates in combinations:
            raise r.error(key, f"the same dates as dates.combinations[{combinations.index(combo_dates)}]")
        combinations.append(combo_dates)
    return {"training_pool": pool, "fcn_training": fcn_training, "fixed_sequence": fixed,
            "evaluation": evaluation, "new": new, "reference": reference, "combinations": tuple(combinations)}


def _read_periods(r: ConfigReader, combinations: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """The ``[change]`` table: two periods of date combinations for change detection without GT.

    Only the form is checked here (lists of distinct dates, no combination twice); that the
    periods are non-empty, known and do not overlap is checked where they are used
    (:mod:`helpers.predict.change_periods`), so that a config without ``[change]`` stays valid.
    Period B defaults to ``dates.combinations``, period A to none.
    """
    periods: dict[str, Any] = {}
    for period, default in (("a", []), ("b", [list(c) for c in combinations])):
        key = f"change.period_{period}"
        combos: list[tuple[str, ...]] = []
        for i, combo in enumerate(r.get(key, default, list)):
            item = f"{key}[{i}]"
            if not isinstance(combo, list) or not combo:
                raise r.error(item, "must be a non-empty list of dates")
            combo_dates = tuple(sorted(r.unique_dates(item, combo)))
            if combo_dates in combos:
                raise r.error(item, f"the same dates as {key}[{combos.index(combo_dates)}]")
            combos.append(combo_dates)
        periods[f"period_{period}"] = tuple(combos)
    return periods


def _read_water_mask(r: ConfigReader, pool: tuple[str, ...]) -> dict[str, Any]:
    """The ``[water_mask]`` table as Config fields."""
    default_sweep = [-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6]  # np.arange(-0.6, 0.8, 0.2) of the original
    thresholds = r.numbers("water_mask.thresholds", default_sweep)
    for t in thresholds:
        if not -1.0 <= t <= 1.0:
            raise r.error("water_mask.thresholds", f"{t} is outside the NDWI range [-1, 1]")
    chosen = r.get("water_mask.threshold", 0.0, (int, float, str))
    if isinstance(chosen, str):
        if chosen.lower() != "none":
            raise r.error("water_mask.threshold", f"'{chosen}' is neither a number nor \"none\"")
        threshold = None
    else:
        threshold = r.finite("water_mask.threshold", chosen)
        if not any(math.isclose(threshold, t, abs_tol=1e-9) for t in thresholds):
            raise r.error("water_mask.threshold", f"{threshold} is not one of water_mask.thresholds {list(thresholds)}")
    return {"water_thresholds": thresholds, "water_threshold": threshold,
            "water_dates": r.dates("water_mask.dates", list(pool))}


def _read_classes(r: ConfigReader) -> tuple[LandCoverClass, ...]:
    """The ``[[classes]]`` table (required even without GT: it is the model's class table)."""
    table = r.get("classes", kinds=list)
    if not table:
        raise r.error("classes", "the class table is empty")
    classes: list[LandCoverClass] = []
    seen_values: dict[Any, int] = {}
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            raise r.error(f"classes[{i}]", "must be a table with id, name and colour")
        sub = r.child(entry, f"classes[{i}]")
        cid = sub.get("id", kinds=int)
        name = sub.get("name", kinds=str)
        colour = sub.get("colour", "#808080", str)
        count = sub.get("pixel_count", None, int)
        values = sub.get("gt_values", [cid], list)
        if not 1 <= cid <= 255:
            raise sub.error("id", f"{cid} is outside 1..255 (0 means outside the study area)")
        if any(c.id == cid for c in classes):
            raise sub.error("id", f"duplicate class id {cid}")
        if not _COLOUR_RE.match(colour):
            raise sub.error("colour", f"'{colour}' is not a #rrggbb colour")
        if count is not None and count <= 0:
            raise sub.error("pixel_count", "must be positive")
        normalised = tuple(_normalise_gt_value(v) for v in values)
        for v in normalised:
            if v in seen_values:
                raise sub.error("gt_values", f"value {v!r} already maps to class {seen_values[v]}")
            seen_values[v] = cid
        classes.append(LandCoverClass(cid, name, colour, count, normalised))
    return tuple(classes)
