"""The classify.py script on tiny study areas with NEW stacks and tiny saved runs (U-Nets and stand-ins)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from gdal_pam import category_names
from runs_fixture import save_run, tiny_fcn
from scene_stacks import TRANSFORM as NEW_AREA_TRANSFORM
from scene_stacks import write_cloud_mask, write_stack
from study_area import DELETE, demo_settings, write_config_file

from helpers.core.config import L1C_BANDS, L2A_BANDS, load_config
from helpers.core.paths import REPO_ROOT
from helpers.train.run_record import RecordClass

SCRIPT = REPO_ROOT / "src" / "predict" / "classify.py"
DATES = ("20180330", "20180419", "20180529")
SHAPE = (100, 90)
TRANSFORM = Affine(10.0, 0.0, 400070.0, 0.0, -10.0, 5639810.0)
BANDS = list(L1C_BANDS)
MODEL = "tiny_fcn_01"
SECOND_RUN = "tiny_fcn_02"
CLEAR_MASK = np.zeros(SHAPE, dtype=np.uint8)  # step 03b's masks: every date clear (masking is on by default)
NARROW_MODEL = "narrow_fcn_01"  # 12 bands (its record says so): does not fit the L1C stacks


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Config, NEW stacks of three dates and three tiny runs (two fit); returns the config path."""
    root = tmp_path_factory.mktemp("classify")
    config_path = write_config_file(root / "config.toml", demo_settings(root), {
        "ground_truth.true_change_file": DELETE, "dates.new": list(DATES),
        "dates.combinations": [list(DATES[:2]), list(DATES)]})

    rng = np.random.default_rng(7)
    inside = np.ones(SHAPE, dtype=np.uint16)
    inside[:, :6] = 0
    for date in DATES:
        path = root / "data" / "processed" / "classification_data" / f"{date}_data" / f"{date}_L1C_merged.tif"
        write_stack(path, rng.integers(500, 3000, size=(13, *SHAPE)), inside, [*BANDS, "area"], TRANSFORM)
        write_cloud_mask(root / "data" / "processed" / "clouds" / f"{date}_L1C_clouds.tif", CLEAR_MASK, TRANSFORM)

    import keras

    from helpers.train.models import build_unet
    from helpers.train.training import compile_model

    config = load_config(config_path)
    keras.utils.set_random_seed(11)
    for name, bands in ((MODEL, L1C_BANDS), (SECOND_RUN, L1C_BANDS), (NARROW_MODEL, L1C_BANDS[:-1])):
        model = build_unet(n_bands=len(bands), n_classes=8, width=0.0625)
        compile_model(model, config, 1e-3)
        save_run(model, config, name, mean=[1500.0] * len(bands), std=[700.0] * len(bands), bands=bands)
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
    assert stem.with_name(stem.name + "_class.png").read_bytes()[:4] == b"\x89PNG"
    for kind in ("probabilities", "confidence"):  # Cloud Optimized GeoTIFFs with overviews
        with rasterio.open(stem.with_name(f"{stem.name}_{kind}.tif")) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.overviews(1)
    first = load_config(area).classes[0]  # the run's class table is the config's
    with rasterio.open(stem.with_name(stem.name + "_class.tif")) as src:  # colour table and class names for a GIS
        assert src.colormap(1)[first.id][:3] == tuple(int(first.colour[i:i + 2], 16) for i in (1, 3, 5))
    assert category_names(stem.with_name(stem.name + "_class.tif"))[:2] == ["outside the area", first.name]
    summary = json.loads((folder / f"{MODEL}_classification.json").read_text())
    assert summary["combinations"]["1"]["dates"] == list(DATES)
    assert summary["combinations"]["1"]["mode"] == "faithful" and summary["combinations"]["1"]["window"] == 32
    assert "sequence_masking" not in summary["combinations"]["1"]  # an FCN: the masked mean, no method to name
    with rasterio.open(stem.with_name(stem.name + "_class.tif")) as src:
        assert src.tags()["CLOUD_MASKING"] == "on" and "SEQUENCE_MASKING" not in src.tags()


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
                "bands": "takes 12 bands"}[case]
    assert expected in lines[0]
    if case == "missing_date":
        assert missing.name in lines[0]
    if case in ("unknown", "outside", "bands"):
        assert not out_dir(area, name).exists()
    assert not (area.parent / "x").exists()


def _tree(folder: Path) -> dict[Path, tuple[int, int]]:
    """Every file under a folder with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def portable_run(area: Path, tmp_path: Path) -> Path:
    """A copy of the first area's run in a run folder outside any models folder."""
    folder = tmp_path / "shared_runs" / MODEL
    folder.mkdir(parents=True)
    shutil.copy(area.parent / "models" / f"{MODEL}.keras", folder)
    return folder


NEW_DATES = ("20220419", "20220519")


@pytest.fixture
def no_gt_area(write_config: Callable[..., Path]) -> Path:
    """A second study area with no ground truth: two NEW stacks (bands named as the pipeline names them)."""
    path = write_config({"ground_truth.file": DELETE, "ground_truth.attribute": DELETE,
                         "dates": {"new": list(NEW_DATES), "combinations": [list(NEW_DATES)]},
                         "tiling.tile_size": 32, "tiling.prediction_stride": 16}, name="no_gt.toml")
    config = load_config(path)
    assert not config.has_ground_truth
    rng = np.random.default_rng(5)
    area = np.zeros((100, 90), dtype=np.uint16)
    area[10:95, 4:80] = 1
    for date in NEW_DATES:
        write_stack(config.merged_path(date, "L1C", "NEW"), rng.integers(500, 3000, size=(13, 100, 90)), area,
                    [*L1C_BANDS, "area"])
        write_cloud_mask(config.cloud_mask_path(date, "L1C"), np.zeros((100, 90), dtype=np.uint8))
    return path


def test_a_run_folder_from_another_area_classifies_an_area_without_ground_truth(
        area: Path, portable_run: Path, no_gt_area: Path) -> None:
    first_area = _tree(area.parent)
    shared = _tree(portable_run.parent)
    result = run("--model", str(portable_run), "--config", str(no_gt_area), cwd=no_gt_area.parent)
    assert result.returncode == 0, result.stderr
    config = load_config(no_gt_area)
    folder = config.processed_dir / "classified" / MODEL
    with rasterio.open(config.merged_path(NEW_DATES[0], "L1C", "NEW")) as src:
        inside = src.read(14).astype(bool)
        crs, transform = src.crs, src.transform
    assert transform == NEW_AREA_TRANSFORM
    with rasterio.open(folder / f"{MODEL}_combination_0_class.tif") as src:
        assert (src.crs, src.transform, src.shape) == (crs, transform, inside.shape)
        classes = src.read(1)
    with rasterio.open(folder / f"{MODEL}_combination_0_probabilities.tif") as src:
        assert (src.crs, src.transform, src.count) == (crs, transform, 8)
        assert list(src.descriptions) == [c.name for c in config.classes]  # the run's class table
        probabilities = src.read()
    np.testing.assert_array_equal(classes > 0, inside)  # the maps cover the area, exactly
    np.testing.assert_array_equal(classes[inside], probabilities[:, inside].argmax(axis=0) + 1)
    summary = json.loads((folder / f"{MODEL}_classification.json").read_text())
    assert summary["model_files"] == [str(portable_run / f"{MODEL}.keras")] and summary["level"] == "L1C"
    assert _tree(area.parent) == first_area, "something was written in the first study area"
    assert _tree(portable_run.parent) == shared, "something was written beside the model"


def _incompatible_run(case: str, area: Path, folder: Path) -> Path:
    config = load_config(area)
    if case == "level":
        return save_run(tiny_fcn(len(L2A_BANDS)), config, "l2a_fcn_01", level="L2A", folder=folder)
    if case == "bands":
        return save_run(tiny_fcn(12), config, "narrow_fcn_02", folder=folder, bands=L1C_BANDS[:-1])
    classes = (RecordClass(1, "Forest", "#00aa00"), *(RecordClass(c.id, c.name, c.colour) for c in config.classes[1:]))
    return save_run(tiny_fcn(), config, "other_classes_01", folder=folder, classes=classes)


@pytest.mark.parametrize(("case", "message"), [
    ("level", r"trained on L2A data, the area has L1C stacks"),
    ("bands", r"takes 12 bands \(B01, .*\), the L1C data of .* have 13"),
    ("classes", r"another class table than .*\(1, 'Forest'\)"),
])
def test_an_incompatible_run_is_one_line_and_writes_nothing(area: Path, tmp_path: Path, case: str,
                                                            message: str) -> None:
    model_file = _incompatible_run(case, area, tmp_path / "runs")
    before = _tree(area.parent)
    result = run("--model", str(model_file), "--config", str(area))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert _tree(area.parent) == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [model_file.name]


def test_a_name_or_a_path_but_not_both(area: Path) -> None:
    for args in ((), (MODEL, "--model", str(area.parent / "models" / f"{MODEL}.keras"))):
        result = run(*args, "--config", str(area))
        assert result.returncode == 2 and "give either MODEL_NAME" in result.stderr, result.stderr


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")
def test_maps_are_written_behind_the_pass_and_an_interrupt_leaves_the_old_ones(area: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.predict import classification

    real_pass = classification.predict_scene
    passes: list[list] = []

    def small_blocks(*args, **kwargs):  # many blocks of 16 rows, kept to compare with the files
        blocks = []
        passes.append(blocks)
        for block in real_pass(*args, **{**kwargs, "block_rows": 16}):
            blocks.append(block)
            yield block

    monkeypatch.setattr(classification, "predict_scene", small_blocks)
    config = load_config(area)
    classification.classify_model(config, SECOND_RUN, [0], say=lambda line: None)
    blocks = passes[0]
    assert len(blocks) == 7
    for kind, layer in (("class", "classes"), ("confidence", "confidence")):
        written = _maps(area, SECOND_RUN, 0, kind)[0]
        np.testing.assert_array_equal(written, np.concatenate([getattr(b, layer)[0] for b in blocks]))
    np.testing.assert_array_equal(_maps(area, SECOND_RUN, 0),
                                  np.concatenate([b.probabilities[0] for b in blocks], axis=1))

    folder = out_dir(area, SECOND_RUN)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def interrupted(*args, **kwargs):
        for index, block in enumerate(small_blocks(*args, **kwargs)):
            if index == 3:
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(classification, "predict_scene", interrupted)
    with pytest.raises(KeyboardInterrupt):
        classification.classify_model(config, SECOND_RUN, [0], say=lambda line: None)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # no partial or temporary file
