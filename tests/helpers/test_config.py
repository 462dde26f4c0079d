"""Configuration loading: valid files load, every bad value is reported with its key."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from study_area import DELETE, NEW_DATES, TRAINING_DATES

from helpers.config import L1C_BANDS, L2A_BANDS, format_threshold, load_config, normalise_date
from helpers.errors import ConfigError, InputError
from helpers.paths import REPO_ROOT

WriteConfig = Callable[..., Path]


@pytest.mark.parametrize("name", ["demo.toml", "klingenberg.toml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO_ROOT / "configs" / name)
    assert config.source == REPO_ROOT / "configs" / name
    assert config.data_root.is_absolute()
    assert config.reference in config.training_pool
    assert config.unclassifiable_id in config.class_ids and config.water_id in config.class_ids
    assert config.tile_stride == config.tile_size + config.separation


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
