"""The classify.py script on a tiny study area with NEW stacks and a tiny saved U-Net."""

from __future__ import annotations

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
from study_area import dump_toml

from helpers.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "src" / "predict" / "classify.py"
DATES = ("20180330", "20180419", "20180529")
SHAPE = (100, 90)
TRANSFORM = Affine(10.0, 0.0, 400070.0, 0.0, -10.0, 5639810.0)
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
MODEL = "tiny_fcn_01"
SECOND_RUN = "tiny_fcn_02"
NARROW_MODEL = "narrow_fcn_01"  # 12 bands: does not match the L1C stacks


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Config, NEW stacks of three dates and two tiny models; returns the config path."""
    root = tmp_path_factory.mktemp("classify")
    data = tomllib.loads((REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8"))
    data["paths"] = {"data_root": str(root / "data"), "models_root": str(root / "models"),
                     "reports_root": str(root / "reports")}
    data["ground_truth"].pop("true_change_file", None)
    data["dates"]["new"] = list(DATES)
    data["dates"]["combinations"] = [list(DATES[:2]), list(DATES)]
    config_path = root / "config.toml"
    config_path.write_text(dump_toml(data), encoding="utf-8")

    rng = np.random.default_rng(7)
    inside = np.ones(SHAPE, dtype=np.uint16)
    inside[:, :6] = 0
    for date in DATES:
        path = root / "data" / "processed" / "classification_data" / f"{date}_data" / f"{date}_L1C_merged.tif"
        path.parent.mkdir(parents=True)
        stack = np.concatenate([rng.integers(500, 3000, size=(13, *SHAPE)), inside[np.newaxis]]).astype(np.uint16)
        with rasterio.open(path, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=14, dtype="uint16",
                           crs="EPSG:32633", transform=TRANSFORM) as dst:
            dst.write(stack)
            dst.descriptions = [*BANDS, "area"]

    code = f"""
import json, sys
sys.path.insert(0, {str(REPO_ROOT / "src")!r})
from helpers.config import load_config
from helpers.models import build_unet
from helpers.training import compile_model
config = load_config({str(config_path)!r})
config.models_root.mkdir(parents=True, exist_ok=True)
import keras
keras.utils.set_random_seed(11)
for name, bands in (({MODEL!r}, 13), ({SECOND_RUN!r}, 13), ({NARROW_MODEL!r}, 12)):
    model = build_unet(n_bands=bands, n_classes=8, width=0.0625)
    compile_model(model, config, 1e-3)
    model.save(config.models_root / f"{{name}}.keras")
    (config.models_root / f"{{name}}_normalisation.json").write_text(
        json.dumps({{"mean": [1500.0] * bands, "std": [700.0] * bands}}))
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=_env())
    return config_path


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, env=_env(),
                          timeout=300)


def out_dir(config_path: Path, model: str) -> Path:
    return config_path.parent / "data" / "processed" / "classified" / model


def test_classify_writes_georeferenced_maps_and_previews(area: Path) -> None:
    result = run(MODEL, "--combination", "1", "--config", str(area), cwd=REPO_ROOT / "src" / "predict")
    assert result.returncode == 0, result.stderr
    assert "combination 1" in result.stdout
    folder = out_dir(area, MODEL)
    stem = folder / f"{MODEL}_combination_1"
    with rasterio.open(stem.with_name(stem.name + "_probabilities.tif")) as src:
        assert (src.count, src.dtypes[0], src.crs.to_epsg(), src.transform) == (8, "float32", 32633, TRANSFORM)
        probabilities = src.read()
    with rasterio.open(stem.with_name(stem.name + "_class.tif")) as src:
        assert (src.count, src.dtypes[0], src.crs.to_epsg(), src.transform) == (1, "uint8", 32633, TRANSFORM)
        classes = src.read(1)
    with rasterio.open(stem.with_name(stem.name + "_confidence.tif")) as src:
        assert src.dtypes[0] == "float32" and src.transform == TRANSFORM
        confidence = src.read(1)
    assert (classes[:, :6] == 0).all() and (classes[:, 6:] >= 1).all()  # 0 exactly outside the area
    np.testing.assert_allclose(probabilities[:, :, 6:].sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(classes[:, 6:], probabilities[:, :, 6:].argmax(axis=0) + 1)
    np.testing.assert_allclose(confidence[:, 6:], probabilities[:, :, 6:].max(axis=0))
    assert stem.with_name(stem.name + "_class.png").is_file()
    summary = json.loads((folder / f"{MODEL}_classification.json").read_text())
    assert summary["combinations"]["1"]["dates"] == list(DATES)
    assert summary["combinations"]["1"]["mode"] == "faithful" and summary["combinations"]["1"]["window"] == 32


def test_fast_mode_reports_agreement_with_faithful(area: Path) -> None:
    result = run(MODEL, "--combination", "0", "--fast", "--compare", "--config", str(area))
    assert result.returncode == 0, result.stderr
    assert "agreement with faithful" in result.stdout
    entry = json.loads((out_dir(area, MODEL) / f"{MODEL}_classification.json").read_text())["combinations"]["0"]
    assert entry["mode"] == "fast" and 0.0 <= entry["agreement_with_faithful"] <= 1.0


def _maps(config_path: Path, model: str, k: int, kind: str = "probabilities") -> np.ndarray:
    with rasterio.open(out_dir(config_path, model) / f"{model}_combination_{k}_{kind}.tif") as src:
        return src.read()


def test_all_combinations_in_one_pass_equal_one_at_a_time(area: Path) -> None:
    assert run(SECOND_RUN, "--combination", "1", "--config", str(area)).returncode == 0
    alone = _maps(area, SECOND_RUN, 1)
    result = run(SECOND_RUN, "--config", str(area))
    assert result.returncode == 0, result.stderr
    assert "2 combinations of 3 dates classified together" in result.stdout
    np.testing.assert_allclose(_maps(area, SECOND_RUN, 1), alone, atol=1e-5)
    entry = json.loads((out_dir(area, SECOND_RUN) / f"{SECOND_RUN}_classification.json").read_text())
    assert entry["combinations"]["0"]["combinations_in_pass"] == 2 and entry["combinations"]["0"]["dates"] == list(
        DATES[:2])
    assert not list(out_dir(area, SECOND_RUN).glob("*.partial"))


def test_an_ensemble_name_averages_the_runs_maps(area: Path) -> None:
    for model in (MODEL, SECOND_RUN):
        assert run(model, "--combination", "0", "--config", str(area)).returncode == 0
    ensemble = "tiny_fcn_ensemble_12"
    result = run(ensemble, "--combination", "0", "--config", str(area))
    assert result.returncode == 0, result.stderr
    mean = (_maps(area, MODEL, 0) + _maps(area, SECOND_RUN, 0)) / 2
    np.testing.assert_allclose(_maps(area, ensemble, 0), mean, atol=1e-5)
    classes = _maps(area, ensemble, 0, "class")[0]
    np.testing.assert_array_equal(classes[:, 6:], mean[:, :, 6:].argmax(axis=0) + 1)
    summary = json.loads((out_dir(area, ensemble) / f"{ensemble}_classification.json").read_text())
    assert summary["members"] == [MODEL, SECOND_RUN]
    missing = run("tiny_fcn_ensemble_13", "--config", str(area))
    assert missing.returncode == 2 and "unknown model 'tiny_fcn_03'" in missing.stderr
    assert not out_dir(area, "tiny_fcn_ensemble_13").exists()


@pytest.mark.parametrize("case", ["unknown", "outside", "missing_date", "bands"])
def test_bad_input_is_one_line_and_writes_nothing(area: Path, case: str) -> None:
    name = {"unknown": "no_such_model_01", "outside": "../x", "missing_date": MODEL, "bands": NARROW_MODEL}[case]
    args = [name, "--config", str(area)]
    missing = area.parent / "data" / "processed" / "classification_data" / f"{DATES[2]}_data" / (
        f"{DATES[2]}_L1C_merged.tif")
    hidden = missing.with_name("hidden.tif")
    if case == "missing_date":
        missing.rename(hidden)
    try:
        result = run(*args)
    finally:
        if hidden.exists():
            hidden.rename(missing)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    expected = {"unknown": "unknown model", "outside": "not a plain name", "missing_date": "08b_process_new_batch",
                "bands": "do not match"}[case]
    assert expected in lines[0]
    if case == "missing_date":
        assert missing.name in lines[0]
    if case in ("unknown", "outside", "bands"):
        assert not out_dir(area, name).exists()
    assert not (area.parent / "x").exists()
