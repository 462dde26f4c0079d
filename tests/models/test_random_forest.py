"""random_forest.py end to end: trained on the tiles, scored as metrics.py scores, maps of a scene, clean refusals."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score
from scene_stacks import write_stack
from study_area import DELETE, write_config_file
from training_helpers import assert_one_line_error, files_under, quiet, run_script

from helpers.core.config import L1C_BANDS, Config, load_config
from helpers.core.paths import REPO_ROOT
from helpers.train.forest_model import save_forest
from helpers.train.run_record import load_run
from helpers.train.tile_cache import load_tiles
from models import random_forest

TINY_FOREST = ["--trees", "6", "--max-pixels", "3000", "--seed", "3", "--quiet"]
NEW_DATES = ("20180330", "20180419", "20180529", "20180703", "20180807", "20180926", "20181031")
SHAPE = (40, 52)
TRANSFORM = Affine(10.0, 0.0, 400070.0, 0.0, -10.0, 5639810.0)


@pytest.fixture(scope="module")
def forests(tiles_area: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Both forests trained (and scored on the test split) on the tiny demo tiles, in a folder of their own."""
    folder = tmp_path_factory.mktemp("forests")
    write_config_file(folder / "config.toml", tomllib.loads((tiles_area / "config.toml").read_text(encoding="utf-8")),
                      {"paths.models_root": str(folder / "models"), "paths.reports_root": str(folder / "reports")})
    for kind in ("mono", "multi"):
        random_forest.train(["--config", str(folder / "config.toml"), "--kind", kind, *TINY_FOREST], say=quiet)
    return load_config(folder / "config.toml")


def direct_test_pixels(config: Config, sequence: bool) -> tuple[np.ndarray, np.ndarray]:
    """The test split's pixels and ground truth read straight from the tile cache (dates pooled or stacked)."""
    sets = [load_tiles(config, date, "test") for date in sorted(config.evaluation)]
    if not sequence:
        return (np.concatenate([s.x.reshape(-1, 13) for s in sets]), np.concatenate([s.y.reshape(-1) for s in sets]))
    common = sorted(set.intersection(*(set(s.endings) for s in sets)))
    rows = [[s.endings.index(e) for e in common] for s in sets]
    x = np.stack([np.asarray(s.x)[r] for s, r in zip(sets, rows, strict=True)], axis=3)  # n, H, W, dates, bands
    return x.reshape(-1, len(sets) * 13), np.asarray(sets[0].y)[rows[0]].reshape(-1)


@pytest.mark.parametrize("run", ["random_forest_mono_01", "random_forest_multi_01"])
def test_metrics_equal_a_direct_scikit_learn_computation(forests: Config, run: str) -> None:
    model = load_run(run, forests).load_model()
    x, truth = direct_test_pixels(forests, model.takes_sequences)
    keep = (truth != 0) & (truth != forests.unclassifiable_id)
    x, truth = x[keep].astype(np.float32), truth[keep]
    # argmax of the float32 probabilities: scikit-learn's predict() sums the trees in thread order in
    # float64, which can break an exact tie either way
    direct = model.forest.classes_[np.argmax(model.forest.predict_proba(x).astype(np.float32), axis=1)]
    assert np.mean(direct == model.forest.predict(x)) > 0.995
    metrics = json.loads((forests.reports_root / "logs_and_plots" / run / "metrics.json").read_text())
    assert metrics["n_pixels"] == len(truth)
    assert metrics["overall_accuracy"] == pytest.approx(accuracy_score(truth, direct))
    assert metrics["kappa"] == pytest.approx(cohen_kappa_score(truth, direct))
    scored = [c for c in forests.classes if c.id != forests.unclassifiable_id]
    f1 = f1_score(truth, direct, labels=[c.id for c in scored], average=None, zero_division=0)
    assert [metrics["per_class"][c.name]["f1"] for c in scored] == pytest.approx(list(f1))
    record = load_run(run, forests)
    assert record.is_forest and record.model_path.name == f"{run}.skops"
    assert all((forests.models_root / f"{run}_{side}").is_file() for side in ("config.toml", "flags.json"))
    expected_dates = forests.fcn_training if "mono" in run else tuple(sorted(forests.fixed_sequence))
    assert record.dates == expected_dates and record.flags["seed"] == 3


@pytest.fixture(scope="module")
def new_area(forests: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classification-only area: NEW stacks of seven dates, two combinations of six, the forests' class table."""
    root = tmp_path_factory.mktemp("forest_scene")
    config_path = write_config_file(root / "config.toml", tomllib.loads(forests.source.read_text(encoding="utf-8")), {
        "paths": {"data_root": str(root / "data"), "models_root": str(root / "models"),
                  "reports_root": str(root / "reports")},
        "change": DELETE, "dates.new": list(NEW_DATES),
        "dates.combinations": [list(NEW_DATES[:6]), list(NEW_DATES[1:])]})
    rng = np.random.default_rng(5)
    inside = np.ones(SHAPE, dtype=np.uint16)
    inside[:, :4] = 0
    for date in NEW_DATES:
        path = root / "data" / "processed" / "classification_data" / f"{date}_data" / f"{date}_L1C_merged.tif"
        write_stack(path, rng.integers(300, 4000, size=(13, *SHAPE)), inside, [*L1C_BANDS, "area"], TRANSFORM)
    return config_path


def classify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / "predict" / "classify.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def read_stack(config: Config, date: str) -> np.ndarray:
    with rasterio.open(config.merged_path(date, "L1C", "NEW")) as src:
        return src.read()


@pytest.mark.parametrize("run", ["random_forest_mono_01", "random_forest_multi_01"])
def test_a_forest_run_classifies_a_scene(forests: Config, new_area: Path, run: str) -> None:
    result = classify("--model", str(forests.models_root / f"{run}.skops"), "--config", str(new_area),
                      "--no-cloud-mask")  # the hand-made stacks have no cloud masks (step 03b)
    assert result.returncode == 0, result.stderr[-3000:]
    config = load_config(new_area)
    model = load_run(run, forests).load_model()
    folder = config.processed_dir / "classified" / run
    for k, dates in enumerate(config.combinations):
        stacks = np.stack([read_stack(config, d) for d in sorted(dates)])  # dates, layers, rows, cols
        pixels = np.moveaxis(stacks[:, :13], (0, 1), (2, 3))  # rows, cols, dates, bands
        if model.takes_sequences:
            expected = model.pixel_probabilities(pixels.reshape(-1, 6 * 13))
        else:
            expected = np.mean([model.pixel_probabilities(pixels[:, :, d].reshape(-1, 13)) for d in range(6)], axis=0)
        expected = np.moveaxis(expected.reshape(*SHAPE, -1), -1, 0)
        with rasterio.open(folder / f"{run}_combination_{k}_probabilities.tif") as src:
            assert (src.crs.to_epsg(), src.transform, src.count) == (32633, TRANSFORM, 8)
            probabilities = src.read()
        with rasterio.open(folder / f"{run}_combination_{k}_class.tif") as src:
            assert (src.crs.to_epsg(), src.transform, src.shape) == (32633, TRANSFORM, SHAPE)
            classes = src.read(1)
        np.testing.assert_allclose(probabilities[:, :, 4:], expected[:, :, 4:], atol=1e-5)
        np.testing.assert_array_equal(classes[:, 4:], np.argmax(probabilities[:, :, 4:], axis=0) + 1)
        assert not classes[:, :4].any() and not probabilities[:, :, :4].any(), "0 outside the area"


def test_a_damaged_forest_file_is_one_line_and_writes_nothing(forests: Config, tmp_path: Path) -> None:
    damaged = tmp_path / "random_forest_mono_01.skops"
    data = (forests.models_root / "random_forest_mono_01.skops").read_bytes()
    damaged.write_bytes(data[: len(data) // 3])
    before = files_under(forests.reports_root)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "src" / "predict" / "metrics.py"), "--model",
                             str(damaged), "--config", str(forests.source)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert_one_line_error(result, "random_forest_mono_01.skops", "not a readable random-forest model")
    assert files_under(forests.reports_root) == before


def test_a_forest_of_another_band_count_is_one_line(forests: Config, new_area: Path, tmp_path: Path) -> None:
    record = load_run("random_forest_mono_01", forests)
    narrow = dataclasses.replace(record, bands=L1C_BANDS[:-1], mean=record.mean[:-1], std=record.std[:-1],
                                 model_path=tmp_path / "random_forest_mono_09.skops")
    save_forest(record.load_model(), narrow.model_path, narrow)  # a 13-feature forest whose record lists 12 bands
    result = classify("--model", str(narrow.model_path), "--config", str(new_area))
    assert_one_line_error(result, "random_forest_mono_09", "takes 12 bands", "have 13")
    assert not (load_config(new_area).processed_dir / "classified" / "random_forest_mono_09").exists()


def test_a_bad_flag_is_one_line(forests: Config) -> None:
    result = run_script("random_forest", "--config", str(forests.source), "--max-pixels", "0")
    assert_one_line_error(result, "--max-pixels 0: must be at least 1")
