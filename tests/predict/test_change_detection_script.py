"""change_detection.py end to end on hand-made class maps with a real CRS and transform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from helpers.paths import REPO_ROOT

TRANSFORM = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5640000.0)
SHAPE = (20, 30)
N_COMBINATIONS = 6  # configs/demo.toml


def write_tif(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(values, 1)


@pytest.fixture
def area(tmp_path: Path) -> tuple[Path, Path]:
    """GT, six class maps of model ``m_01`` and a true-change polygon; returns (config, data root)."""
    root = tmp_path / "data"
    text = (REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8")
    for old, new in {'data_root = "data/demo"': f'data_root = "{root}"',
                     'models_root = "models/demo"': f'models_root = "{tmp_path / "models"}"',
                     'reports_root = "reports/demo"': f'reports_root = "{tmp_path / "reports"}"'}.items():
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
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
    assert (out / "m_01_change_map.png").is_file()
    report = json.loads((config.parent / "reports" / "logs_and_plots" / "m_01" /
                         "m_01_change_detection.json").read_text())
    n = 19 * 30
    assert report["overall"] == pytest.approx({"n_pixels": n, "stable": (n - 50) / n, "robust_change": 25 / n,
                                               "unstable": 25 / n})
    assert report["change_matrix"] == {"Farmland": {"Grassland": 25}}
    assert report["true_change"]["f1"] == pytest.approx(1.0)


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_unclassified_model_and_bad_names(area: tuple[Path, Path]) -> None:
    config, root = area
    before = sorted(p for p in root.rglob("*"))
    _one_line_error(run("m_02", "--config", str(config)), "class map missing")
    _one_line_error(run("../x", "--config", str(config)), "not a plain name")
    assert sorted(p for p in root.rglob("*")) == before
    assert not (config.parent / "reports").exists()
