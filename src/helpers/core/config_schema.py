"""Schema of a study-area configuration and the typed reader that validates it.

Kept apart from :mod:`helpers.core.config` (the :class:`~helpers.core.config.Config` layout and the
loading order) so that the list of valid keys lives in one place. A typo in a key must not
silently fall back to a default: every key of the file is checked against :data:`SCHEMA`
before any value is read, and the error suggests the closest valid key.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError

from helpers.core.errors import ConfigError

_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")

MONITORS: tuple[str, ...] = ("masked_accuracy", "categorical_accuracy")
"""Values of ``training.monitor`` (the training code defaults to ``masked_accuracy``)."""

Check = Callable[[Any], str | None]
"""A value check: returns the reason the (type-checked) value is invalid, or None."""


def _at_least(minimum: int) -> Check:
    return lambda value: None if value >= minimum else f"must be at least {minimum}, got {value}"


def _positive_finite(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else f"must be a finite number > 0, got {value}"


def _monitor(value: str) -> str | None:
    return None if value in MONITORS else f"'{value}' is not one of {', '.join(repr(m) for m in MONITORS)}"


def _any(value: Any) -> str | None:
    del value
    return None


TRAINING_SCHEMA: dict[str, tuple[type | tuple[type, ...], Check]] = {
    "batch_size_fcn": (int, _at_least(1)),
    "batch_size_lstm": (int, _at_least(1)),
    "steps_per_epoch": (int, _at_least(1)),
    "validation_steps": (int, _at_least(1)),
    "max_epochs": (int, _at_least(1)),
    "learning_rate": ((int, float), _positive_finite),
    "timesteps": (int, _at_least(2)),
    "patience": (int, _at_least(0)),
    "monitor": (str, _monitor),
    "deterministic": (bool, _any),
}
"""``[training]`` key -> (accepted types, value check). The table is read as a whole and used
later through ``config.training.get(key, default)``, so its keys are fixed here, not by the
code that reads them. ``bool`` is never accepted where ``int`` is asked for."""

CLOUD_DETECTORS: dict[str, tuple[str, ...]] = {
    "L1C": ("ukis-csmask", "s2cloudless"),
    "L2A": ("scl", "ukis-csmask"),
}
"""``[clouds] detector_l1c`` / ``detector_l2a`` values (first: the default). The names are those of
:data:`helpers.data.cloud_detectors.DETECTORS` (a test keeps both lists equal); they are listed
here because the config is read before, and without, the detector packages."""

SEQUENCE_MASKING: tuple[str, ...] = ("recurrent", "per_pattern")
"""``[clouds] sequence_masking`` values (first: the default): how a sequence model takes cloud
masks, one masked run of its head (:mod:`helpers.predict.masked_recurrence`) or one run per
pattern of clear dates (:func:`helpers.predict.clear_dates.combine_clear`)."""

CLASS_KEYS: tuple[str, ...] = ("id", "name", "colour", "pixel_count", "gt_values")
"""Keys of one ``[[classes]]`` entry."""

SCHEMA: dict[str, Any] = {
    "name": None,
    "paths": dict.fromkeys(("data_root", "models_root", "reports_root")),
    "sentinel": dict.fromkeys(("level", "crs", "resolution", "baselines")),
    "ground_truth": dict.fromkeys(("file", "attribute", "aoi_file", "extra_aoi_files", "true_change_file",
                                   "unclassifiable_id", "water_id", "classification_area")),
    "classes": [dict.fromkeys(CLASS_KEYS)],
    "dates": dict.fromkeys(("training_pool", "fcn_training", "fixed_sequence", "evaluation", "new",
                            "reference", "combinations")),
    "water_mask": dict.fromkeys(("thresholds", "threshold", "dates")),
    "change": dict.fromkeys(("period_a", "period_b")),
    "clouds": dict.fromkeys(("detector_l1c", "detector_l2a", "mask_snow", "shadow_distance",
                             "use_in_classification", "min_clear_dates", "sequence_masking", "mask_training")),
    "tiling": dict.fromkeys(("tile_size", "separation", "prediction_stride", "min_labelled_fraction")),
    "split": dict.fromkeys(("method", "seed", "valid", "train", "test", "block_size")),
    "normalisation": dict.fromkeys(("mean", "std")),
    "training": dict.fromkeys(TRAINING_SCHEMA),
}
"""Every valid key: None is a value (not descended into, so ``sentinel.baselines`` stays a free
table of dates), a dict is a table, a one-element list is an array of tables."""


def _flatten(schema: dict[str, Any], prefix: str = "") -> Iterable[str]:
    for key, sub in schema.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(sub, dict):
            yield from _flatten(sub, f"{path}.")
        elif isinstance(sub, list):
            yield from _flatten(sub[0], f"{path}[].")


KNOWN_KEYS: frozenset[str] = frozenset(_flatten(SCHEMA))
"""Every dotted key of :data:`SCHEMA`; array entries are written ``classes[].id``."""


def schema_key(key: str) -> str:
    """The :data:`KNOWN_KEYS` form of a concrete key (``classes[2].id`` -> ``classes[].id``)."""
    return re.sub(r"\[\d+\]", "[]", key)


def normalise_date(value: object, source: object = "date", key: str = "date") -> str:
    """Return a date label as ``YYYYMMDD``; accepts ``YYYYMMDD`` and ``YYYY-MM-DD``.

    Args:
        value: The date as given.
        source: Where it came from (for the error message).
        key: The config key or argument name (for the error message).

    Raises:
        ConfigError: If the value is not a valid calendar date.
    """
    match = _DATE_RE.match(str(value).strip())
    if not match:
        raise ConfigError(source, key, f"'{value}' is not a date (YYYYMMDD or YYYY-MM-DD)")
    year, month, day = (int(part) for part in match.groups())
    try:
        datetime.date(year, month, day)
    except ValueError as error:
        raise ConfigError(source, key, f"'{value}' is not a valid date ({error})") from None
    return f"{year:04d}{month:02d}{day:02d}"


# ---------------------------------------------------------------------- unknown keys
def check_unknown_keys(data: dict[str, Any], source: object) -> None:
    """Refuse the first key (in file order) that :data:`SCHEMA` does not know.

    Runs before any value is read, so that a misspelt key is reported as such and not as the
    consequence of its default (``normalisation.men`` would otherwise surface as "give both
    mean and std").

    Raises:
        ConfigError: Naming the unknown key and the closest valid one, or a section that is
            not a table.
    """
    _check_table(data, SCHEMA, "", source)


def _check_table(node: dict[str, Any], schema: dict[str, Any], prefix: str, source: object) -> None:
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in schema:
            raise ConfigError(source, path, _unknown_reason(key, schema, prefix))
        sub = schema[key]
        if isinstance(sub, dict):
            if not isinstance(value, dict):
                raise ConfigError(source, path, f"expected a table [{path}], got {type(value).__name__} {value!r}")
            _check_table(value, sub, path, source)
        elif isinstance(sub, list) and isinstance(value, list):  # other types: the reader's type error
            for i, entry in enumerate(value):
                if isinstance(entry, dict):
                    _check_table(entry, sub[0], f"{path}[{i}]", source)


def _unknown_reason(key: str, schema: dict[str, Any], prefix: str) -> str:
    """'unknown key' with the closest sibling, else the same name in another table, else the valid keys."""
    join = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{join(close[0])}'?)"
    elsewhere = sorted(k for k in KNOWN_KEYS if k.rsplit(".", 1)[-1] == key and "[]" not in k)
    if elsewhere:
        return f"unknown key here (did you mean '{elsewhere[0]}'?)"
    return f"unknown key (valid keys: {', '.join(schema)})"


# ---------------------------------------------------------------------- typed reading
class ConfigReader:
    """Typed access to nested TOML values; every error names the file and the dotted key.

    Args:
        data: The (sub-)document.
        source: The config file (for error messages).
        prefix: Dotted key of ``data`` inside the document ("" for the whole document).
        asked: Shared record of every key asked for (see :attr:`asked`).
    """

    def __init__(self, data: dict[str, Any], source: object, prefix: str = "", asked: set[str] | None = None) -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        self.asked: set[str] = set() if asked is None else asked
        """Schema form of every key read so far (tests compare it with :data:`KNOWN_KEYS`)."""

    def child(self, data: dict[str, Any], key: str) -> ConfigReader:
        """A reader of a nested table (``classes[2]``) whose keys and errors carry its prefix."""
        return ConfigReader(data, self.source, self.full(key), self.asked)

    def full(self, key: str) -> str:
        """The dotted key from the document root."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, reason: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` (relative to this reader)."""
        return ConfigError(self.source, self.full(key), reason)

    def get(self, key: str, default: Any = ..., kinds: type | tuple[type, ...] = object) -> Any:
        """The value of ``key``, or ``default`` if absent (``...``: the key is required).

        Raises:
            ConfigError: If the key is missing and required, or its value is not of ``kinds``
                (``bool`` counts as ``int`` only where ``bool`` is listed).
            KeyError: If the key is not in :data:`SCHEMA` (a programming error).
        """
        full = self.full(key)
        if schema_key(full) not in KNOWN_KEYS:
            raise KeyError(f"config key '{full}' is read but missing from helpers/config_schema.py SCHEMA")
        self.asked.add(schema_key(full))
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is ...:
                    raise self.error(key, "missing")
                return default
            node = node[part]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        wrong_type = not isinstance(node, kinds) or (isinstance(node, bool) and bool not in kinds)
        if kinds != (object,) and wrong_type:
            names = "/".join(k.__name__ for k in kinds)
            raise self.error(key, f"expected {names}, got {type(node).__name__} {node!r}")
        return node

    def number(self, key: str, default: Any = ...) -> float:
        """A finite int or float (TOML allows ``inf`` and ``nan``; no config value may be either)."""
        return self.finite(key, self.get(key, default, (int, float)))

    def finite(self, key: str, value: float) -> float:
        """``value`` as float, refused if it is infinite or NaN."""
        if not math.isfinite(value):
            raise self.error(key, f"{value} is not a finite number")
        return float(value)

    def numbers(self, key: str, default: Any = ...) -> tuple[float, ...]:
        """A list of finite numbers."""
        values = self.get(key, default, list)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(key, f"expected a list of numbers, got {value!r} in it")
            self.finite(key, value)
        return tuple(float(v) for v in values)

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        """A list of strings."""
        values = self.get(key, default, list)
        for value in values:
            if not isinstance(value, str):
                raise self.error(key, f"expected a list of strings, got {type(value).__name__} {value!r} in it")
        return tuple(values)

    def dates(self, key: str, default: Any = ...) -> tuple[str, ...]:
        """A list of distinct dates, as ``YYYYMMDD``."""
        return self.unique_dates(key, self.get(key, default, list))

    def unique_dates(self, key: str, values: Iterable[object]) -> tuple[str, ...]:
        """Normalise dates and refuse repeats (compared after normalisation, so that
        ``20160403`` and ``2016-04-03`` are the same date)."""
        given: dict[str, object] = {}
        for value in values:
            date = normalise_date(value, self.source, self.full(key))
            if date in given:
                forms = "" if str(given[date]) == str(value) else f" (as '{given[date]}' and '{value}')"
                raise self.error(key, f"date {date} is listed twice{forms}; dates must be unique")
            given[date] = value
        return tuple(given)


# ---------------------------------------------------------------------- value checks
def read_crs(r: ConfigReader, key: str) -> str:
    """A CRS that pyproj understands, projected, with metre axes (the scene grid is in metres).

    Raises:
        ConfigError: If it is unknown, geographic (EPSG:4326) or projected in other units.
    """
    text = r.get(key, kinds=str)
    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        raise r.error(key, f"'{text}' is not a CRS pyproj understands") from None
    units = {axis.unit_name for axis in crs.axis_info[:2]}
    if not crs.is_projected or not units <= {"metre", "meter"}:
        kind = "projected" if crs.is_projected else "not a projected CRS"
        raise r.error(key, f"'{text}' ({crs.name}) is {kind} in {'/'.join(sorted(units))}; a projected CRS in "
                      "metres such as the scene's UTM zone (e.g. EPSG:32633) is required")
    return text


def read_norm(r: ConfigReader, key: str, n_bands: int) -> tuple[float, ...] | None:
    """Per-band normalisation constants, or None for ``"compute"``."""
    value = r.get(key, "compute", (list, str))
    if isinstance(value, str):
        if value != "compute":
            raise r.error(key, f"'{value}' is neither a list of numbers nor \"compute\"")
        return None
    if len(value) != n_bands or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise r.error(key, f"expected {n_bands} numbers (one per band), got {value!r}")
    return r.numbers(key)


def read_training(r: ConfigReader) -> dict[str, Any]:
    """The given ``[training]`` values, each checked against :data:`TRAINING_SCHEMA`.

    Returns:
        A plain dict of the keys present (absent keys keep the training code's defaults).
    """
    values: dict[str, Any] = {}
    for key, (kinds, check) in TRAINING_SCHEMA.items():
        value = r.get(f"training.{key}", None, kinds)
        if value is None:
            continue
        reason = check(value)
        if reason is not None:
            raise r.error(f"training.{key}", reason)
        values[key] = value
    return values


@dataclass(frozen=True)
class CloudSettings:
    """The ``[clouds]`` table: which detector makes each level's cloud and shadow masks (step 03b).

    Attributes:
        detector_l1c: Detector for Level-1C scenes (default ``ukis-csmask``).
        detector_l2a: Detector for Level-2A scenes (default ``scl``: the product's own scene
            classification layer).
        mask_snow: Count SCL snow/ice (11) as cloud, i.e. not usable (default False: clear).
        shadow_distance: Largest distance in metres between a cloud and its shadow; a shadow
            pixel farther from every cloud of its date is a dark surface and is set clear
            (default 6000 m: a 3.5 km high cloud at 30 degrees sun elevation; 0 keeps every shadow).
        use_in_classification: Classify each pixel from the dates of a combination that are clear
            there (default True; ``classify.py --no-cloud-mask`` overrides it for one run).
        min_clear_dates: Fewest clear dates a pixel needs to be classified (default 1).
        sequence_masking: How a sequence model takes the masks: ``recurrent`` (default; its
            ConvLSTM steps over each pixel's clear dates in one run, and cloudy inputs count as
            zero for the neighbours) or ``per_pattern`` (the head once per pattern of clear dates,
            on those dates of the whole window; slower).
        mask_training: Give the cloudy and shadowed pixels of the training tiles no loss
            (label 0; default False, as the original, which chose cloud-free dates by hand).
    """

    detector_l1c: str = CLOUD_DETECTORS["L1C"][0]
    detector_l2a: str = CLOUD_DETECTORS["L2A"][0]
    mask_snow: bool = False
    shadow_distance: float = 6000.0
    use_in_classification: bool = True
    min_clear_dates: int = 1
    mask_training: bool = False
    sequence_masking: str = SEQUENCE_MASKING[0]

    def detector(self, level: str) -> str:
        """The detector name of a canonical level (``L1C`` or ``L2A``)."""
        return self.detector_l1c if level == "L1C" else self.detector_l2a


def read_clouds(r: ConfigReader) -> CloudSettings:
    """The ``[clouds]`` table; every key is optional, so configs written before it stay valid."""
    names = {}
    for level, choices in CLOUD_DETECTORS.items():
        key = f"clouds.detector_{level.lower()}"
        name = r.get(key, choices[0], str)
        if name not in choices:
            raise r.error(key, f"'{name}' is not a {level} detector (use {' or '.join(repr(c) for c in choices)})")
        names[level] = name
    min_clear = r.get("clouds.min_clear_dates", 1, int)
    if isinstance(min_clear, bool) or min_clear < 1:
        raise r.error("clouds.min_clear_dates", f"must be a whole number of at least 1, got {min_clear!r}")
    masking = r.get("clouds.sequence_masking", SEQUENCE_MASKING[0], str)
    if masking not in SEQUENCE_MASKING:
        raise r.error("clouds.sequence_masking",
                      f"'{masking}' is not a method (use {' or '.join(repr(m) for m in SEQUENCE_MASKING)})")
    distance = r.get("clouds.shadow_distance", 6000.0, (int, float))
    if not math.isfinite(distance) or distance < 0:
        raise r.error("clouds.shadow_distance", f"must be a distance in metres of at least 0, got {distance!r}")
    return CloudSettings(names["L1C"], names["L2A"], r.get("clouds.mask_snow", False, bool), float(distance),
                         r.get("clouds.use_in_classification", True, bool), min_clear,
                         r.get("clouds.mask_training", False, bool), masking)
