"""change_detection.py end to end on hand-made class maps with a real CRS and transform."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from gdal_pam import category_names
from runs_fixture import save_run, tiny_fcn
from shapely.geometry import box
from study_area import demo_settings, dump_toml, write_config_file

from helpers.core.config import load_config
from helpers.core.paths import REPO_ROOT
from helpers.train.run_record import RecordClass

TRANSFORM = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5640000.0)
SHAPE = (20, 30)
N_COMBINATIONS = 6  # configs/demo.toml


def write_tif(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(values, 1)


@pytest.fixture(scope="module")
def stand_in():
    """A tiny model saved as the runs whose class maps are compared."""
    return tiny_fcn()


@pytest.fixture
def area(tmp_path: Path, stand_in) -> tuple[Path, Path]:
    """GT, six class maps of run ``m_01``, an unclassified run ``m_02`` and a true-change polygon.

    Returns:
        (config, data root).
    """
    root = tmp_path / "data"
    config = write_config_file(tmp_path / "config.toml", demo_settings(tmp_path))
    gt = np.full(SHAPE, 5, dtype=np.uint8)
    gt[:, :10] = 2
    gt[0, :] = 0
    write_tif(root / "processed" / "ground_truth" / "gt.tif", gt)
    for k in range(N_COMBINATIONS):
        classes = gt.copy()
        classes[gt == 0] = 0
        classes[5:10, 20:25] = 2           # robust change 5 -> 2 in every map (the true change)
        classes[15:20, 0:5] = 1 + k % 2    # unstable: maps alternate between 1 and 2
        write_tif(root / "processed" / "classified" / "m_01" / f"m_01_combination_{k}_class.tif", classes)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    true = box(x0 + 20 * 10, y0 - 10 * 10, x0 + 25 * 10, y0 - 5 * 10)  # cols 20-25, rows 5-10
    folder = root / "raw" / "ground_truth" / "true_changes"
    folder.mkdir(parents=True)
    gpd.GeoDataFrame({"old_class": [5], "new_class": [2]}, geometry=[true], crs="EPSG:32633").to_file(
        folder / "true_changes.shp")
    for run in ("m_01", "m_02"):
        save_run(stand_in, load_config(config), run)
    return config, root


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / "predict" / "change_detection.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_change_detection_end_to_end(area: tuple[Path, Path]) -> None:
    config, root = area
    result = run("m_01", "--config", str(config), cwd=REPO_ROOT / "src" / "predict")
    assert result.returncode == 0, result.stderr
    assert "precision 1.000, recall 1.000" in result.stdout
    out = root / "processed" / "classified" / "m_01"
    with rasterio.open(out / "m_01_change_map.tif") as src:
        values = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == TRANSFORM
    assert (values[5:10, 20:25] == 9).all() and (values == 9).sum() == 25
    assert (values[15:20, 0:5] == 10).all() and (values == 10).sum() == 25
    assert (values[0] == 0).all()
    assert (out / "m_01_change_map.png").read_bytes()[:4] == b"\x89PNG"
    with rasterio.open(out / "m_01_change_map.tif") as src:  # coloured and named for a GIS
        assert src.colormap(1)[9] == (255, 0, 255, 255) and src.colormap(1)[10] == (127, 127, 127, 255)
    names = category_names(out / "m_01_change_map.tif")
    assert names[0].startswith("not evaluated") and names[9].startswith("robust change")
    assert names[10].startswith("unstable") and names[3] == "stable: Forest / Wood"
    report = json.loads((config.parent / "reports" / "logs_and_plots" / "m_01" /
                         "m_01_change_detection.json").read_text())
    n = 19 * 30
    assert report["overall"] == pytest.approx({"n_pixels": n, "stable": (n - 50) / n, "robust_change": 25 / n,
                                               "unstable": 25 / n})
    assert report["change_matrix"] == {"Farmland": {"Grassland": 25}}
    assert report["true_change"]["f1"] == pytest.approx(1.0)


def test_pixels_one_map_did_not_classify_are_left_out_and_counted(area: tuple[Path, Path]) -> None:
    config, root = area
    path = root / "processed" / "classified" / "m_01" / "m_01_combination_3_class.tif"
    with rasterio.open(path) as src:
        classes = src.read(1)
    classes[2:6, 20:30] = 0  # a cloud over part of the robust change and of stable farmland
    write_tif(path, classes)
    result = run("m_01", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "Left out: 40 GT pixels not classified in at least one map" in result.stdout
    with rasterio.open(root / "processed" / "classified" / "m_01" / "m_01_change_map.tif") as src:
        values = src.read(1)
    assert (values[2:6, 20:30] == 0).all() and (values == 9).sum() == 20
    report = json.loads((config.parent / "reports" / "logs_and_plots" / "m_01" /
                         "m_01_change_detection.json").read_text())
    assert report["not_classified_excluded"] == 40 and report["overall"]["n_pixels"] == 19 * 30 - 40


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_unclassified_model_and_bad_names(area: tuple[Path, Path]) -> None:
    config, root = area
    before = sorted(p for p in root.rglob("*"))
    _one_line_error(run("m_02", "--config", str(config)), "class map missing; run src/predict/classify.py m_02")
    _one_line_error(run("m_03", "--config", str(config)), "unknown model 'm_03'")
    _one_line_error(run("../x", "--config", str(config)), "not a plain name")
    _one_line_error(run("--config", str(config)), "give either MODEL_NAME")
    assert sorted(p for p in root.rglob("*")) == before
    assert not (config.parent / "reports").exists()


def test_a_run_given_by_its_folder(area: tuple[Path, Path], tmp_path: Path) -> None:
    config, root = area
    folder = tmp_path / "shared" / "m_01"
    folder.mkdir(parents=True)
    shutil.move(config.parent / "models" / "m_01.keras", folder / "m_01.keras")
    result = run("--model", str(folder), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert (root / "processed" / "classified" / "m_01" / "m_01_change_map.tif").is_file()
    assert (config.parent / "reports" / "logs_and_plots" / "m_01" / "m_01_change_detection.txt").is_file()
    assert [p.name for p in folder.iterdir()] == ["m_01.keras"]


def test_a_run_with_another_class_table_is_refused(area: tuple[Path, Path], stand_in) -> None:
    config, root = area
    loaded = load_config(config)
    classes = (RecordClass(1, "Forest", "#00aa00"), *(RecordClass(c.id, c.name, c.colour) for c in loaded.classes[1:]))
    save_run(stand_in, loaded, "m_01", folder=root.parent / "other", classes=classes)
    before = sorted(p for p in root.rglob("*"))
    _one_line_error(run("--model", str(root.parent / "other" / "m_01.keras"), "--config", str(config)),
                    "another class table")
    assert sorted(p for p in root.rglob("*")) == before


def test_a_study_area_without_ground_truth_is_refused(area: tuple[Path, Path]) -> None:
    config, root = area
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    del data["ground_truth"]["file"]
    data["ground_truth"].pop("attribute", None)
    no_gt = config.with_name("no_gt.toml")
    no_gt.write_text(dump_toml(data), encoding="utf-8")
    before = sorted(p for p in root.rglob("*"))
    _one_line_error(run("m_01", "--config", str(no_gt)), f"{no_gt} has no ground_truth.file")
    assert sorted(p for p in root.rglob("*")) == before
    assert not (config.parent / "reports").exists()
