"""change_detection.py --periods: two periods without ground truth, on hand-made maps and end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from runs_fixture import save_run, tiny_fcn
from shapely.geometry import box
from study_area import StudyArea, demo_settings, write_config_file, write_config_variant

from helpers.core.config import load_config
from helpers.core.paths import REPO_ROOT
from helpers.predict.change_detection import CHANGE_ID, UNSTABLE_ID, compare_periods, period_change_map
from helpers.train.run_record import RecordClass

TRANSFORM = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5640000.0)  # 10 m pixels: 0.01 ha each
SHAPE = (20, 30)
PERIOD_A = [["20160403", "20160522", "20160828"], ["20160929", "20161118", "20161206"]]
N_B = 6  # period B defaults to the six dates.combinations of configs/demo.toml
MODEL = "m_01"


def write_tif(path: Path, values: np.ndarray, tags: dict[str, str] | None = None,
              descriptions: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[-1], height=values.shape[-2],
                       count=1 if values.ndim == 2 else values.shape[0], dtype=values.dtype.name, crs="EPSG:32633",
                       transform=TRANSFORM) as dst:
        dst.write(values if values.ndim == 3 else values[np.newaxis])
        dst.update_tags(**(tags or {}))
        for i, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, text)


def hand_made_maps() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Period A (2 maps) and B (6 maps) with known categories (counts in :func:`test_periods_end_to_end`)."""
    base = np.full(SHAPE, 5, dtype=np.uint8)
    base[:, :10] = 2
    base[0, :] = 0                                    # outside the area in every map
    maps_a = [base.copy(), base.copy()]
    maps_a[1][15:20, 25:30] = 4                       # unstable: A's maps disagree, B's say 5
    maps_b = []
    for k in range(N_B):
        values = base.copy()
        values[5:10, 20:25] = 2                       # robust change 5 -> 2 (the true change)
        values[10:12, 0:5] = 3                        # robust change 2 -> 3 (not a true change)
        values[15:20, 0:5] = 1 + k % 2                # unstable: B's maps alternate between 1 and 2
        if k == 3:
            values[1, 0:10] = 0                       # not classified in one map: excluded
        maps_b.append(values)
    return maps_a, maps_b


def read_band(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


def map_path(root: Path, part: str) -> Path:
    return root / "processed" / "classified" / MODEL / f"{MODEL}_{part}_class.tif"


@pytest.fixture(scope="module")
def stand_in() -> Any:
    """A tiny model saved as the run whose maps are compared."""
    return tiny_fcn()


@pytest.fixture
def area(tmp_path: Path, stand_in: Any) -> tuple[Path, Path]:
    """Demo config with two period-A combinations, their maps and period B's, a true change; (config, data root)."""
    root = tmp_path / "data"
    config_path = write_config_file(tmp_path / "config.toml", demo_settings(tmp_path, root),
                                    {"change": {"period_a": PERIOD_A}})
    config = load_config(config_path)
    maps_a, maps_b = hand_made_maps()
    for k, values in enumerate(maps_a):
        write_tif(map_path(root, f"period_a_{k}"), values, {"MODEL": MODEL, "DATES": ",".join(PERIOD_A[k])})
    for k, values in enumerate(maps_b):
        write_tif(map_path(root, f"combination_{k}"), values,
                  {"MODEL": MODEL, "DATES": ",".join(config.combinations[k])})
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    folder = root / "raw" / "ground_truth" / "true_changes"
    folder.mkdir(parents=True)
    gpd.GeoDataFrame({"old_class": [5]}, geometry=[box(x0 + 200, y0 - 100, x0 + 250, y0 - 50)],
                     crs="EPSG:32633").to_file(folder / "true_changes.shp")   # rows 5-10, cols 20-25
    save_run(stand_in, config, MODEL)
    return config_path, root


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run(script: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / script), *args], capture_output=True, text=True,
                          cwd=cwd, env=_env(), timeout=600)


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def test_periods_end_to_end(area: tuple[Path, Path]) -> None:
    config, root = area
    result = run("predict/change_detection.py", MODEL, "--periods", "--config", str(config),
                 cwd=REPO_ROOT / "src" / "predict")
    assert result.returncode == 0, result.stderr
    assert "precision 0.714, recall 1.000" in result.stdout  # 25 of 35 robust-change pixels are true changes
    out = root / "processed" / "classified" / MODEL
    with rasterio.open(out / f"{MODEL}_period_change_map.tif") as src:
        values = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == TRANSFORM
    assert (values[5:10, 20:25] == CHANGE_ID).all() and (values[10:12, 0:5] == CHANGE_ID).all()
    assert (values == CHANGE_ID).sum() == 35
    assert (values[15:20, 0:5] == UNSTABLE_ID).all() and (values[15:20, 25:30] == UNSTABLE_ID).all()
    assert (values == UNSTABLE_ID).sum() == 50
    assert (values[0] == 0).all() and (values[1, :10] == 0).all() and values[1, 10] == 5 and values[2, 0] == 2
    assert (out / f"{MODEL}_period_change_map.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / f"{MODEL}_change_map.tif").exists()  # the GT mode's names are left alone
    reports = config.parent / "reports" / "logs_and_plots" / MODEL
    report = json.loads((reports / f"{MODEL}_period_change_detection.json").read_text())
    overall = report["overall"]
    assert {k: overall[k] for k in ("inside", "evaluated", "excluded", "stable", "robust_change", "unstable")} == {
        "inside": 570, "evaluated": 560, "excluded": 10, "stable": 475, "robust_change": 35, "unstable": 50}
    assert overall["hectares"]["robust_change"] == pytest.approx(0.35)
    assert report["change_matrix"] == {
        "Farmland": {"Grassland": {"pixels": 25, "hectares": pytest.approx(0.25)}},
        "Grassland": {"Forest / Wood": {"pixels": 10, "hectares": pytest.approx(0.10)}}}
    assert report["period_a"] == PERIOD_A and len(report["period_b"]) == N_B
    assert report["true_change"]["hits"] == 25 and report["true_change"]["f1"] == pytest.approx(2 * 25 / (35 + 25))
    assert "Farmland -> Grassland: 25 px (0.25 ha)" in (reports / f"{MODEL}_period_change_detection.txt").read_text()


def _config_with(config: Path, name: str, change: dict[str, Any]) -> Path:
    return write_config_variant(config, name, {"change": change})


@pytest.mark.parametrize(("change", "fragment"), [
    ({"period_a": [["20160403", "20180330"]]}, "config key 'change.period_b': the periods overlap (period A "
                                               "20160403-20180330, period B 20180330-20181205)"),
    ({"period_a": [["20160403"]], "period_b": [["20160522"], ["20160403", "20181205"]]},
     "the periods overlap"),
    ({"period_a": []}, "config key 'change.period_a': no date combinations"),
    ({"period_a": [["20160403"]], "period_b": []}, "config key 'change.period_b': no date combinations"),
    ({"period_a": [["20150101"]]}, "config key 'change.period_a': dates 20150101 are not in dates.new or "
                                   "dates.training_pool"),
])
def test_bad_periods_are_one_line_and_write_nothing(area: tuple[Path, Path], change: dict, fragment: str) -> None:
    config, root = area
    bad = _config_with(config, "bad.toml", change)
    before = _files(root)
    _one_line_error(run("predict/change_detection.py", MODEL, "--periods", "--config", str(bad)), fragment)
    _one_line_error(run("predict/classify.py", MODEL, "--period", "a", "--config", str(bad)), fragment)
    assert _files(root) == before
    assert not (config.parent / "reports").exists()


def _other_class_table(config: Path, root: Path, stand_in: Any) -> list[str]:
    loaded = load_config(config)
    classes = (RecordClass(1, "Forest", "#00aa00"), *(RecordClass(c.id, c.name, c.colour) for c in loaded.classes[1:]))
    save_run(stand_in, loaded, MODEL, folder=root.parent / "other", classes=classes)
    return ["--model", str(root.parent / "other" / f"{MODEL}.keras")]


@pytest.mark.parametrize("case", ["missing", "values", "model", "dates", "probabilities", "class_table", "grid"])
def test_maps_that_do_not_fit_are_one_line_and_write_nothing(area: tuple[Path, Path], stand_in: Any,
                                                             case: str) -> None:
    config, root = area
    args = [MODEL]
    a0 = map_path(root, "period_a_0")
    values = hand_made_maps()[0][0]
    tags = {"MODEL": MODEL, "DATES": ",".join(PERIOD_A[0])}
    if case == "missing":
        a0.unlink()
        fragment = f"{a0}: class map of change.period_a[0] missing; run src/predict/classify.py {MODEL} --period a"
    elif case == "values":
        values[3, 3] = 12
        write_tif(a0, values, tags)
        fragment = f"{a0}: class values 12 are not in the class table of model '{MODEL}'"
    elif case == "model":
        write_tif(a0, values, {**tags, "MODEL": "other_01"})
        fragment = f"{a0}: classified with model 'other_01', not '{MODEL}'"
    elif case == "dates":
        write_tif(a0, values, {**tags, "DATES": "20160403"})
        fragment = "classified from dates 20160403, but change.period_a[0] is 20160403,20160522,20160828"
    elif case == "probabilities":
        names = [f"class {i}" for i in range(1, 9)]
        write_tif(a0.with_name(f"{MODEL}_period_a_0_probabilities.tif"), np.zeros((8, *SHAPE), np.float32),
                  descriptions=names)
        fragment = "classified into the classes class 1, class 2"
    elif case == "class_table":
        args = _other_class_table(config, root, stand_in)
        fragment = "another class table"
    else:
        with rasterio.open(a0) as src:
            shifted = src.read(1)
        with rasterio.open(a0, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=1, dtype="uint8",
                           crs="EPSG:32633", transform=TRANSFORM @ Affine.translation(1, 0)) as dst:
            dst.write(shifted, 1)
        fragment = "differs from"
    before = _files(root)
    _one_line_error(run("predict/change_detection.py", *args, "--periods", "--config", str(config)), fragment)
    assert _files(root) == before
    assert not (config.parent / "reports").exists()


def test_periods_on_a_study_area_through_the_pipeline(study_area: StudyArea, stand_in: Any) -> None:
    """08b makes the period dates' NEW stacks, classify.py --period a and the default run the maps, then --periods."""
    a_dates = study_area.settings["dates"]["training_pool"]  # 20160403, 20160522; period B: 20220419
    config_path = study_area.write_config({"change": {"period_a": [[d] for d in a_dates]}})
    config = load_config(config_path)
    save_run(stand_in, config, MODEL, mean=[1500.0] * 13, std=[700.0] * 13)
    steps = [("data_processing/08b_process_new_batch.py",), ("predict/classify.py", MODEL),
             ("predict/classify.py", MODEL, "--period", "a"), ("predict/change_detection.py", MODEL, "--periods")]
    outputs = []
    for script, *args in steps:
        result = run(script, *args, "--config", str(config_path))
        assert result.returncode == 0, f"{script}: {result.stderr}"
        outputs.append(result.stdout)
    for date in a_dates:
        assert config.merged_path(date, "L1C", "NEW").is_file()
    assert "period A combination 1 (20160522)" in outputs[2]
    folder = config.processed_dir / "classified" / MODEL
    maps_a = [read_band(folder / f"{MODEL}_period_a_{k}_class.tif") for k in range(2)]
    maps_b = [read_band(folder / f"{MODEL}_combination_0_class.tif")]
    expected = period_change_map(compare_periods(maps_a, maps_b))
    with rasterio.open(folder / f"{MODEL}_period_change_map.tif") as src:
        np.testing.assert_array_equal(src.read(1), expected)
    report = json.loads((config.reports_root / "logs_and_plots" / MODEL /
                         f"{MODEL}_period_change_detection.json").read_text())
    overall = report["overall"]
    area = int(read_band(config.merged_path(a_dates[0], "L1C", "NEW"), 14).astype(bool).sum())
    assert overall["inside"] == area == overall["evaluated"] + overall["excluded"]
    assert overall["stable"] + overall["robust_change"] + overall["unstable"] == overall["evaluated"]
    assert sum(c["pixels"] for row in report["change_matrix"].values() for c in row.values()) == \
        overall["robust_change"] == int((expected == CHANGE_ID).sum())
    assert "Change between two periods" in outputs[3]
