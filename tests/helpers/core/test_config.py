"""Configuration loading: valid files load, every bad value is reported with its key."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from study_area import DELETE, NEW_DATES, TRAINING_DATES

from helpers.core.config import L1C_BANDS, L2A_BANDS, format_threshold, load_config, normalise_date, read_config
from helpers.core.config_schema import KNOWN_KEYS, SCHEMA, TRAINING_SCHEMA, ConfigReader
from helpers.core.errors import ConfigError, InputError
from helpers.core.paths import REPO_ROOT

WriteConfig = Callable[..., Path]


@pytest.mark.parametrize("name", ["demo.toml", "klingenberg.toml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO_ROOT / "configs" / name)
    assert config.source == REPO_ROOT / "configs" / name
    assert config.data_root.is_absolute()
    assert config.reference in config.training_pool
    assert config.unclassifiable_id in config.class_ids and config.water_id in config.class_ids
    assert config.tile_stride == config.tile_size + config.separation


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs").rglob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_and_template_has_only_valid_keys(path: Path) -> None:
    assert load_config(path).source == path


def test_default_config_is_the_demo() -> None:
    assert load_config().source == REPO_ROOT / "configs" / "demo.toml"


def test_relative_config_path_is_taken_from_the_repository_root(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/demo.toml").source == REPO_ROOT / "configs" / "demo.toml"


def test_generated_config_values(write_config: WriteConfig, tmp_path: Path) -> None:
    config = load_config(write_config())
    assert config.data_root == tmp_path / "data"
    assert config.gt_file == tmp_path / "data" / "raw" / "ground_truth" / "gt_shapefile" / "gt.shp"
    assert config.training_pool == TRAINING_DATES
    assert config.new == NEW_DATES
    assert config.reference == TRAINING_DATES[-1]
    assert config.all_dates == tuple(sorted(TRAINING_DATES + NEW_DATES))
    assert (config.tile_size, config.separation, config.tile_stride, config.prediction_stride) == (8, 1, 9, 4)
    assert config.class_ids == (1, 2, 3, 4, 5, 6, 7, 8)
    assert (config.water_id, config.unclassifiable_id) == (7, 8)
    assert config.water_thresholds == (-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6)
    assert config.water_threshold == 0.0
    assert config.water_dates == TRAINING_DATES
    assert config.split_fractions == {"valid": 0.2, "train": 0.6, "test": 0.2}
    assert config.bands() == L1C_BANDS and config.bands("l2a") == L2A_BANDS
    assert config.bands()[-1] == "B8A" and len(L2A_BANDS) == 17
    size = "(8x8)"
    assert config.tiles_dir("20160403", "L1C", "train").name == f"20160403_L1C_train_tiles_{size}"
    assert config.scene_path("20160403").name == "20160403_L1C_all_bands.tif"
    assert config.gt_masked_path(-0.2).name == "gt_water_masked_-0.2.tif"


def test_dates_accept_iso_form_and_defaults_follow_the_pool(write_config: WriteConfig) -> None:
    config = load_config(write_config({
        "dates.training_pool": ["2016-04-03", "2016-05-22"], "dates.fcn_training": DELETE,
        "dates.fixed_sequence": DELETE, "dates.evaluation": DELETE, "dates.reference": DELETE,
    }))
    assert config.training_pool == TRAINING_DATES
    assert config.fcn_training == config.fixed_sequence == config.evaluation == TRAINING_DATES
    assert config.reference == "20160522"


def test_water_threshold_none_disables_masking(write_config: WriteConfig) -> None:
    assert load_config(write_config({"water_mask.threshold": "none"})).water_threshold is None


def test_gt_values_are_normalised(write_config: WriteConfig) -> None:
    config = load_config(write_config({"classes.0.gt_values": ["1", 11.0, "Gebaeude"]}))
    assert config.classes[0].gt_values == (1, 11, "Gebaeude")
    assert config.classes[1].gt_values == (2,)


@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"paths.data_root": DELETE}, "paths.data_root", "missing"),
    ({"sentinel.crs": DELETE}, "sentinel.crs", "missing"),
    ({"ground_truth.attribute": DELETE}, "ground_truth.attribute", "missing"),
    ({"dates.training_pool": DELETE}, "dates.training_pool", "missing"),
    ({"classes.2.name": DELETE}, "classes[2].name", "missing"),
    ({"tiling.tile_size": "8"}, "tiling.tile_size", "expected int"),
    ({"split.seed": True}, "split.seed", "expected int"),
    ({"sentinel.resolution": "10 m"}, "sentinel.resolution", "expected int/float"),
    ({"dates.new": "20220419"}, "dates.new", "expected list"),
    ({"classes.0.id": 1.5}, "classes[0].id", "expected int"),
    ({"sentinel.level": "L3A"}, "sentinel.level", "is not L1C or L2A"),
    ({"sentinel.crs": "EPSG:999999"}, "sentinel.crs", "not a CRS"),
    ({"sentinel.crs": "UTM 33 north"}, "sentinel.crs", "not a CRS"),
    ({"dates.fcn_training": ["20160403", "20170101"]}, "dates.fcn_training", "not in dates.training_pool"),
    ({"dates.evaluation": ["20160404"]}, "dates.evaluation", "not in dates.training_pool"),
    ({"dates.reference": "20220419"}, "dates.reference", "not in dates.training_pool"),
    ({"dates.combinations": [["20160403"]]}, "dates.combinations[0]", "not in dates.new"),
    ({"dates.training_pool": ["20160431", "20160522"]}, "dates.training_pool", "not a valid date"),
    ({"dates.training_pool": ["April 3", "20160522"]}, "dates.training_pool", "is not a date"),
    ({"dates.training_pool": ["20160522", "2016-05-22"]}, "dates.training_pool", "unique"),
    ({"water_mask.threshold": 0.3}, "water_mask.threshold", "not one of water_mask.thresholds"),
    ({"water_mask.threshold": "always"}, "water_mask.threshold", "neither a number"),
    ({"water_mask.thresholds": [-0.2, 1.5]}, "water_mask.thresholds", "outside the NDWI range"),
    ({"split.valid": 0.3}, "split", "summing to 1"),
    ({"split.test": -0.2, "split.train": 1.0}, "split", "summing to 1"),
    ({"split.method": "stratified"}, "split.method", "not 'random' or 'block'"),
    ({"classes.1.id": 1}, "classes[1].id", "duplicate class id 1"),
    ({"classes.0.id": 0}, "classes[0].id", "outside 1..255"),
    ({"classes.0.colour": "red"}, "classes[0].colour", "not a #rrggbb colour"),
    ({"classes.0.colour": "#12345g"}, "classes[0].colour", "not a #rrggbb colour"),
    ({"classes.0.pixel_count": DELETE}, "classes", "class 1 (Buildings) needs a pixel_count"),
    ({"classes.3.pixel_count": 0}, "classes[3].pixel_count", "must be positive"),
    ({"classes.1.gt_values": [1]}, "classes[1].gt_values", "already maps to class 1"),
    ({"ground_truth.water_id": 9}, "ground_truth.water_id", "not in the class table"),
    ({"ground_truth.unclassifiable_id": 12}, "ground_truth.unclassifiable_id", "not in the class table"),
    ({"tiling.tile_size": 1}, "tiling.tile_size", "at least 2"),
    ({"tiling.separation": -1}, "tiling.separation", "must not be negative"),
    ({"tiling.prediction_stride": 9}, "tiling.prediction_stride", "1..tile_size"),
    ({"normalisation.mean": [1.0, 2.0]}, "normalisation.mean", "expected 13 numbers"),
    ({"normalisation.mean": "compute"}, "normalisation", "both mean and std"),
    ({"normalisation.std": [0.0] * 13}, "normalisation.std", "must be positive"),
    ({"clouds.sequence_masking": "exact"}, "clouds.sequence_masking", "'exact' is not a method"),
    ({"clouds.min_clear_dates": 0}, "clouds.min_clear_dates", "at least 1"),
])
def test_bad_value_names_the_key(write_config: WriteConfig, changes: dict[str, Any], key: str, reason: str) -> None:
    path = write_config(changes)
    with pytest.raises(ConfigError, match=rf"config key '{re.escape(key)}': .*{re.escape(reason)}") as caught:
        load_config(path)
    assert caught.value.key == key
    assert str(path) in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.toml'}: config file not found")):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[paths\ndata_root = "x"\n', encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{path}: not a valid TOML file")):
        load_config(path)


def test_unknown_level_argument(write_config: WriteConfig) -> None:
    config = load_config(write_config())
    assert config.check_level("level_l2a") == "L2A"
    assert config.check_level(None) == "L1C"
    with pytest.raises(InputError, match="unknown processing level 'L3A'"):
        config.check_level("L3A")


@pytest.mark.parametrize(("given", "expected"), [("20160403", "20160403"), ("2016-04-03", "20160403"),
                                                 (20160403, "20160403"), (" 2016-04-03 ", "20160403")])
def test_normalise_date(given: object, expected: str) -> None:
    assert normalise_date(given) == expected


def test_normalise_date_rejects_impossible_day() -> None:
    with pytest.raises(ConfigError, match=r"config key 'DATE': '20160230' is not a valid date"):
        normalise_date("20160230", "command line", "DATE")


@pytest.mark.parametrize(("threshold", "text"), [(-0.6, "-0.6"), (0.0, "0.0"), (-0.0, "0.0"), (0.4, "0.4"),
                                                 (0.25, "0.25"), (0.2 + 0.4, "0.6"), (-1e-17, "0.0")])
def test_threshold_file_labels(threshold: float, text: str) -> None:
    assert format_threshold(threshold) == text


def _raises(path: Path, key: str, reason: str) -> ConfigError:
    """Load ``path`` and check the one-line message: file, dotted key, reason."""
    with pytest.raises(ConfigError, match=rf"config key '{re.escape(key)}': .*{re.escape(reason)}") as caught:
        load_config(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: config key '{key}': ")
    assert "\n" not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------------- unknown keys
@pytest.mark.parametrize(("changes", "key", "suggestion"), [
    ({"nmae": "x"}, "nmae", "name"),
    ({"tilling.tile_size": 8}, "tilling", "tiling"),
    ({"normalisaton.mean": "compute"}, "normalisaton", "normalisation"),
    ({"paths.data_rot": "x"}, "paths.data_rot", "paths.data_root"),
    ({"sentinel.levl": "L1C"}, "sentinel.levl", "sentinel.level"),
    ({"sentinel.baseline": {"20220419": "04.00"}}, "sentinel.baseline", "sentinel.baselines"),
    ({"ground_truth.atribute": "x"}, "ground_truth.atribute", "ground_truth.attribute"),
    ({"ground_truth.extra_aoi_file": []}, "ground_truth.extra_aoi_file", "ground_truth.extra_aoi_files"),
    ({"classes.2.colr": "#000000"}, "classes[2].colr", "classes[2].colour"),
    ({"classes.0.pixelcount": 5}, "classes[0].pixelcount", "classes[0].pixel_count"),
    ({"dates.referense": "20160522"}, "dates.referense", "dates.reference"),
    ({"dates.combination": []}, "dates.combination", "dates.combinations"),
    ({"water_mask.treshold": 0.0}, "water_mask.treshold", "water_mask.threshold"),
    ({"tiling.tile_sise": 8}, "tiling.tile_sise", "tiling.tile_size"),
    ({"split.sed": 1}, "split.sed", "split.seed"),
    ({"normalisation.men": [1.0] * 13}, "normalisation.men", "normalisation.mean"),
    ({"training.batch_size_fnc": 8}, "training.batch_size_fnc", "training.batch_size_fcn"),
    ({"training.max_epoch": 8}, "training.max_epoch", "training.max_epochs"),
    ({"training.seed": 1}, "training.seed", "split.seed"),  # no close sibling: the same name elsewhere
    ({"tiling.method": "block"}, "tiling.method", "split.method"),
])
def test_unknown_key_suggests_the_closest_valid_key(write_config: WriteConfig, changes: dict[str, Any], key: str,
                                                     suggestion: str) -> None:
    error = _raises(write_config(changes), key, "unknown key")
    assert error.reason.endswith(f"(did you mean '{suggestion}'?)")
    if suggestion.rpartition(".")[0] != key.rpartition(".")[0]:  # a key of another table
        assert error.reason.startswith("unknown key here ")


def test_unknown_key_message_format(write_config: WriteConfig) -> None:
    path = write_config({"normalisation.men": [1.0] * 13})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}: config key 'normalisation.men': unknown key "
                                 "(did you mean 'normalisation.mean'?)")


def test_unknown_key_without_a_close_match_lists_the_valid_keys(write_config: WriteConfig) -> None:
    _raises(write_config({"split.shuffle": True}), "split.shuffle",
            "unknown key (valid keys: method, seed, valid, train, test, block_size)")


def test_unknown_key_is_reported_before_the_values_it_leaves_at_their_defaults(write_config: WriteConfig) -> None:
    # without the unknown-key check, the missing mean would be reported as "give both mean and std"
    path = write_config({"normalisation.mean": DELETE, "normalisation.men": [1.0] * 13})
    _raises(path, "normalisation.men", "did you mean 'normalisation.mean'?")


def test_a_section_must_be_a_table(write_config: WriteConfig) -> None:
    _raises(write_config({"paths": "data"}), "paths", "expected a table [paths], got str")


def test_baselines_are_a_free_table_of_dates(write_config: WriteConfig) -> None:
    config = load_config(write_config({"sentinel.baselines": {"2022-04-19": "04.00", "20160403": "02.04"}}))
    assert config.baselines == {"20220419": "04.00", "20160403": "02.04"}
    _raises(write_config({"sentinel.baselines": {"April": "04.00"}}), "sentinel.baselines.April", "not a date")
    _raises(write_config({"sentinel.baselines": {"20220419": "4"}}), "sentinel.baselines.20220419",
            "not a processing baseline")


def test_every_schema_key_is_read_by_the_loader(write_config: WriteConfig) -> None:
    """The schema and the loader agree: no valid key is silently ignored (the reader itself
    refuses to read a key missing from the schema)."""
    import tomllib

    path = write_config()
    reader = ConfigReader(tomllib.loads(path.read_text(encoding="utf-8")), path)
    read_config(reader, path)
    tables = {k for k, v in SCHEMA.items() if isinstance(v, dict)}
    assert KNOWN_KEYS - reader.asked == tables
    with pytest.raises(KeyError, match=re.escape("missing from helpers/config_schema.py")):
        reader.get("tiling.no_such_key", None)


# ---------------------------------------------------------------------- duplicate dates
@pytest.mark.parametrize(("changes", "key"), [
    ({"dates.training_pool": ["20160403", "20160522", "2016-04-03"]}, "dates.training_pool"),
    ({"dates.fcn_training": ["20160403", "2016-04-03"]}, "dates.fcn_training"),
    ({"dates.fixed_sequence": ["2016-05-22", "20160522"]}, "dates.fixed_sequence"),
    ({"dates.evaluation": ["20160403", "20160522", "20160403"]}, "dates.evaluation"),
    ({"dates.new": ["20220419", "2022-04-19"]}, "dates.new"),
    ({"water_mask.dates": ["20160403", "2016-04-03"]}, "water_mask.dates"),
    ({"dates.combinations": [["20220419", "2022-04-19"]]}, "dates.combinations[0]"),
])
def test_duplicate_dates_are_refused_after_normalisation(write_config: WriteConfig, changes: dict[str, Any],
                                                         key: str) -> None:
    error = _raises(write_config(changes), key, "is listed twice")
    assert "dates must be unique" in error.reason


def test_duplicate_date_message_shows_both_forms(write_config: WriteConfig) -> None:
    error = _raises(write_config({"dates.fcn_training": ["20160403", "2016-04-03"]}), "dates.fcn_training", "")
    assert error.reason == "date 20160403 is listed twice (as '20160403' and '2016-04-03'); dates must be unique"


def test_identical_combinations_are_refused(write_config: WriteConfig) -> None:
    path = write_config({"dates.new": ["20220419", "20220501", "20220601"],
                         "dates.combinations": [["20220419", "20220501"], ["20220601"], ["20220501", "2022-04-19"]]})
    _raises(path, "dates.combinations[2]", "the same dates as dates.combinations[0]")


# ---------------------------------------------------------------------- numbers and CRS
@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"sentinel.resolution": math.inf}, "sentinel.resolution", "inf is not a finite number"),
    ({"sentinel.resolution": math.nan}, "sentinel.resolution", "nan is not a finite number"),
    ({"water_mask.thresholds": [-0.2, math.nan]}, "water_mask.thresholds", "nan is not a finite number"),
    ({"water_mask.thresholds": [-0.2, "0.0"]}, "water_mask.thresholds", "expected a list of numbers"),
    ({"water_mask.threshold": math.nan}, "water_mask.threshold", "nan is not a finite number"),
    ({"water_mask.threshold": -math.inf}, "water_mask.threshold", "-inf is not a finite number"),
    ({"split.valid": math.nan}, "split.valid", "nan is not a finite number"),
    ({"split.test": math.inf}, "split.test", "inf is not a finite number"),
    ({"tiling.min_labelled_fraction": math.nan}, "tiling.min_labelled_fraction", "nan is not a finite number"),
    ({"normalisation.mean": [1.0] * 12 + [math.nan]}, "normalisation.mean", "nan is not a finite number"),
    ({"normalisation.std": [1.0] * 12 + [math.inf]}, "normalisation.std", "inf is not a finite number"),
    ({"normalisation.std": [1.0] * 12 + [-1.0]}, "normalisation.std", "must be positive"),
])
def test_numbers_must_be_finite(write_config: WriteConfig, changes: dict[str, Any], key: str, reason: str) -> None:
    _raises(write_config(changes), key, reason)


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:4978", "EPSG:2263"])
def test_crs_must_be_projected_in_metres(write_config: WriteConfig, crs: str) -> None:
    _raises(write_config({"sentinel.crs": crs}), "sentinel.crs",
            "a projected CRS in metres such as the scene's UTM zone (e.g. EPSG:32633) is required")


def test_geographic_crs_message(write_config: WriteConfig) -> None:
    error = _raises(write_config({"sentinel.crs": "EPSG:4326"}), "sentinel.crs", "")
    assert error.reason.startswith("'EPSG:4326' (WGS 84) is not a projected CRS in degree;")


def test_projected_crs_in_metres_is_accepted(write_config: WriteConfig) -> None:
    assert load_config(write_config({"sentinel.crs": "EPSG:3035"})).crs == "EPSG:3035"


@pytest.mark.parametrize(("value", "reason"), [([5], "expected a list of strings, got int 5"),
                                               (["a.shp", ["b.shp"]], "expected a list of strings, got list"),
                                               ("a.shp", "expected list, got str")])
def test_extra_aoi_files_must_be_a_list_of_strings(write_config: WriteConfig, value: Any, reason: str) -> None:
    _raises(write_config({"ground_truth.extra_aoi_files": value}), "ground_truth.extra_aoi_files", reason)


def test_extra_aoi_files_are_relative_to_the_data_root(write_config: WriteConfig, tmp_path: Path) -> None:
    config = load_config(write_config({"ground_truth.extra_aoi_files": ["raw/cz.shp"]}))
    assert config.extra_aoi_files == (tmp_path / "data" / "raw" / "cz.shp",)


# ---------------------------------------------------------------------- [training]
ALL_TRAINING = {"batch_size_fcn": 8, "batch_size_lstm": 4, "steps_per_epoch": 10, "validation_steps": 1,
                "max_epochs": 1, "learning_rate": 1, "timesteps": 2, "patience": 0, "monitor": "categorical_accuracy",
                "deterministic": True}


def test_training_values_are_kept_as_given(write_config: WriteConfig) -> None:
    assert set(ALL_TRAINING) == set(TRAINING_SCHEMA)
    config = load_config(write_config({"training": ALL_TRAINING}))
    assert config.training == ALL_TRAINING
    assert load_config(write_config({"training": {}})).training == {}  # monitor default is not stored
    assert load_config(write_config({"training": DELETE})).training == {}


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("batch_size_fcn", "64", "expected int, got str '64'"),
    ("batch_size_fcn", True, "expected int, got bool"),
    ("batch_size_fcn", 0, "must be at least 1, got 0"),
    ("batch_size_lstm", 2.0, "expected int, got float"),
    ("steps_per_epoch", 0, "must be at least 1"),
    ("validation_steps", -1, "must be at least 1"),
    ("max_epochs", 0, "must be at least 1"),
    ("learning_rate", 0, "must be a finite number > 0"),
    ("learning_rate", -0.001, "must be a finite number > 0"),
    ("learning_rate", math.nan, "must be a finite number > 0"),
    ("learning_rate", math.inf, "must be a finite number > 0"),
    ("learning_rate", "1e-3", "expected int/float, got str"),
    ("learning_rate", False, "expected int/float, got bool"),
    ("timesteps", 1, "must be at least 2, got 1"),
    ("patience", -1, "must be at least 0"),
    ("patience", "20", "expected int"),
    ("monitor", "val_loss", "'val_loss' is not one of 'masked_accuracy', 'categorical_accuracy'"),
    ("monitor", 1, "expected str"),
    ("deterministic", 1, "expected bool, got int"),
    ("deterministic", "yes", "expected bool, got str"),
])
def test_bad_training_value_names_the_key(write_config: WriteConfig, key: str, value: Any, reason: str) -> None:
    _raises(write_config({f"training.{key}": value}), f"training.{key}", reason)


# ---------------------------------------------------------------------- date layouts
NO_GT = {"ground_truth.file": DELETE, "ground_truth.attribute": DELETE, "dates.training_pool": DELETE,
         "dates.fcn_training": DELETE, "dates.fixed_sequence": DELETE, "dates.evaluation": DELETE,
         "dates.reference": DELETE}


def test_classification_only_config(write_config: WriteConfig) -> None:
    config = load_config(write_config({**NO_GT, "dates.new": ["20220419", "20220501"],
                                       "dates.combinations": [["20220419"], ["20220501"]],
                                       "classes.0.pixel_count": DELETE}))  # loss weights: training only
    assert not config.has_ground_truth
    assert config.gt_file is None and config.gt_attribute is None
    assert config.training_pool == config.fcn_training == config.fixed_sequence == config.evaluation == ()
    assert config.water_dates == ()
    assert config.reference == "20220419"  # the first new date
    assert config.combinations == (("20220419",), ("20220501",))
    assert config.class_ids == (1, 2, 3, 4, 5, 6, 7, 8) and config.classes[0].pixel_count is None
    assert load_config(write_config()).has_ground_truth


def test_classification_only_config_accepts_the_optional_gt_keys(write_config: WriteConfig) -> None:
    config = load_config(write_config({**NO_GT, "ground_truth.attribute": "ATKIS_mod",
                                       "ground_truth.true_change_file": "raw/changes.shp"}))
    assert config.gt_attribute is None and config.true_change_file is not None
    assert config.reference == "20220419"


@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"ground_truth.unclassifiable_id": DELETE}, "ground_truth.unclassifiable_id", "missing"),
    ({"ground_truth.water_id": DELETE}, "ground_truth.water_id", "missing"),
    ({"classes": DELETE}, "classes", "missing"),
    ({"dates.new": []}, "dates.new", "needs at least one new date"),
    ({"dates.reference": "20220501"}, "dates.reference", "not in dates.new"),
    ({"dates.fcn_training": ["20160403"]}, "dates.fcn_training", "not in dates.training_pool"),
    ({"ground_truth.classification_area": "gt"}, "ground_truth.classification_area", "needs ground_truth.file"),
])
def test_classification_only_config_still_needs(write_config: WriteConfig, changes: dict[str, Any], key: str,
                                                reason: str) -> None:
    _raises(write_config({**NO_GT, **changes}), key, reason)


def test_one_date_config(write_config: WriteConfig) -> None:
    config = load_config(write_config({"dates.training_pool": ["2016-04-03"], "dates.fcn_training": DELETE,
                                       "dates.fixed_sequence": DELETE, "dates.evaluation": DELETE,
                                       "dates.reference": DELETE, "dates.new": DELETE,
                                       "dates.combinations": DELETE}))
    assert config.training_pool == config.fcn_training == config.fixed_sequence == config.evaluation == ("20160403",)
    assert config.reference == "20160403" and config.new == () and config.combinations == ()
    assert config.water_dates == ("20160403",)


def test_fcn_only_config(write_config: WriteConfig) -> None:
    config = load_config(write_config({"dates.fixed_sequence": DELETE, "dates.combinations": DELETE}))
    assert config.fixed_sequence == config.fcn_training == TRAINING_DATES
    assert config.combinations == ()
