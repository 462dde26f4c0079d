"""The pre-processing scripts run as a user runs them: ``python src/data_processing/<script>.py``.

One tiny study area is processed end to end (08a, then 08b from the scripts' own folder) and
inspected; every bad input of SPEC section 8 must end with exit status 2, a single
``error:`` line naming the file or key, no traceback and no new output file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import Point, box
from study_area import (
    DELETE,
    GRID_PX,
    GRID_TRANSFORM,
    NEW_DATES,
    TRAINING_DATES,
    StudyArea,
    aoi_polygon,
    centres_inside,
    expected_gt,
    expected_min_ndwi,
    expected_scene,
    grid_box,
    scene_xy,
    write_aoi,
    write_gt,
    write_vector,
)

from helpers.core.config import L1C_BANDS, SPLITS
from helpers.core.paths import REPO_ROOT
from helpers.data import pipeline

SCRIPTS = REPO_ROOT / "src" / "data_processing"
SIZE, STRIDE, PREDICTION_STRIDE = 8, 9, 4
WATER, UNCLASSIFIABLE = 7, 8
REFERENCE = TRAINING_DATES[-1]
TILE_NAME = re.compile(r"^(\d{8})_L1C_(tile_\d{3}_\d{3})\.tif$")


def run_script(script: str, *args: str, config: Path | str | None = None,
               cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run one pre-processing script in a fresh interpreter, as from a shell.

    Args:
        script: File name in ``src/data_processing``.
        *args: Positional arguments and flags.
        config: Value of ``--config`` (omitted when None).
        cwd: Working directory (the repository root unless a test says otherwise).

    Returns:
        The finished process with text stdout and stderr.
    """
    path = SCRIPTS / script if cwd == REPO_ROOT else os.path.relpath(SCRIPTS / script, cwd)
    command = [sys.executable, str(path), *args]
    if config is not None:
        command += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert success and return stdout."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def file_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under a folder (empty if it does not exist)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def output_hashes(folder: Path) -> dict[str, str]:
    """:func:`file_hashes` without the freshness records (they hold the inputs' modification times)."""
    return {name: digest for name, digest in file_hashes(folder).items() if not name.startswith(".fingerprints/")}


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def read_all(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, tuple[str, ...]]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.descriptions


def expected_masked_gt(threshold: float) -> np.ndarray:
    """GT after shoreline masking, computed from the generator's NDWI design."""
    gt = expected_gt()
    gt[(gt == WATER) & (expected_min_ndwi([0, 1]) < threshold)] = UNCLASSIFIABLE
    return gt


def expected_kept_tiles() -> tuple[set[str], set[str]]:
    """Tiles of the reference date that the keep rule retains, and those of them holding class 8."""
    gt = expected_masked_gt(0.0)
    band1 = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)  # B01 is non-zero inside the AOI
    kept, with_unclassifiable = set(), set()
    n = (GRID_PX - SIZE) // STRIDE + 1
    for r in range(n):
        for c in range(n):
            window = np.s_[r * STRIDE:r * STRIDE + SIZE, c * STRIDE:c * STRIDE + SIZE]
            if (gt[window] != 0).all() and band1[window].all():
                kept.add(f"tile_{r:03d}_{c:03d}")
                if (gt[window] == UNCLASSIFIABLE).any():
                    with_unclassifiable.add(f"tile_{r:03d}_{c:03d}")
    return kept, with_unclassifiable


@dataclass
class ProcessedArea:
    """The standard area after 08a and 08b, with what the runs printed and the raw hashes before."""

    area: StudyArea
    train_stdout: str
    new_stdout: str
    raw_before: dict[str, str]


@pytest.fixture(scope="module")
def processed(study_template: StudyArea, tmp_path_factory: pytest.TempPathFactory) -> ProcessedArea:
    """Run 08a from the repository root and 08b from ``src/data_processing`` on a copy of the area.

    08b gets its config as a path relative to the repository root; from its own folder that
    path only works if scripts resolve paths from the root, not from the working directory.

    Returns:
        The processed area (tests must only read it, or rewrite it with identical content).
    """
    area = study_template.copy_to(tmp_path_factory.mktemp("scripts"))
    before = file_hashes(area.raw)
    train = ok(run_script("08a_process_train_batch.py", config=area.config_path))
    relative_config = os.path.relpath(area.config_path, REPO_ROOT)
    new = ok(run_script("08b_process_new_batch.py", config=relative_config, cwd=SCRIPTS))
    return ProcessedArea(area, train, new, before)


# ---------------------------------------------------------------------- end to end
def test_runs_report_their_steps(processed: ProcessedArea) -> None:
    for date in TRAINING_DATES:
        assert f"== {date} L1C TRAIN" in processed.train_stdout
    assert f"== {NEW_DATES[0]} L1C NEW" in processed.new_stdout
    assert "offset removed: True" in processed.new_stdout
    assert "NDWI >=  0.0:     1536 of 1632 water pixels kept" in processed.train_stdout


def test_scenes_are_uint16_eurosat_stacks(processed: ProcessedArea) -> None:
    config = processed.area.config()
    for index, date in enumerate(processed.area.dates):
        stack, profile, descriptions = read_all(config.scene_path(date, "L1C"))
        assert profile["dtype"] == "uint16" and descriptions == L1C_BANDS
        assert profile["transform"] == GRID_TRANSFORM and profile["crs"].to_epsg() == 32633
        np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, index), err_msg=date)


def test_ground_truth_products(processed: ProcessedArea) -> None:
    config = processed.area.config()
    gt_dir = config.gt_dir
    expected_names = {f"gt_water_masked_{t}.tif" for t in ("-0.6", "-0.4", "-0.2", "0.0", "0.2", "0.4", "0.6")}
    assert expected_names | {"gt.tif", "gt_rasterized.tif", "area.tif", "water_mask_summary.json"} == {
        p.name for p in gt_dir.iterdir()}
    for threshold in config.water_thresholds:
        masked, profile, _ = read_all(config.gt_masked_path(threshold))
        assert profile["transform"] == GRID_TRANSFORM
        np.testing.assert_array_equal(masked[0], expected_masked_gt(threshold), err_msg=str(threshold))
    np.testing.assert_array_equal(read_all(config.gt_path)[0][0], expected_masked_gt(0.0))
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)
    area = read_all(config.area_path)[0][0]
    # classification_area = "aoi" (default): the whole AOI where the scene has data, GT hole included
    np.testing.assert_array_equal(area, inside.astype(np.uint8))
    assert (area[54:63, 0:9] == 1).all() and (expected_gt()[54:63, 0:9] == 0).all()
    aoi_pixels = int(inside.sum())
    assert (f'[03] create area mask (classification_area = "aoi": where the reference scene has data inside the '
            f'AOI)\n  wrote area.tif: {aoi_pixels:,} px in the area (100.0 % of the AOI\'s {aoi_pixels:,} px)'
            in processed.train_stdout)


def test_merged_stacks(processed: ProcessedArea) -> None:
    config = processed.area.config()
    for index, date in enumerate(processed.area.dates):
        use = "NEW" if date in NEW_DATES else "TRAIN"
        stack, profile, descriptions = read_all(config.merged_path(date, "L1C", use))
        assert profile["dtype"] == "uint16" and profile["count"] == 14
        assert descriptions == (*L1C_BANDS, "gt" if use == "TRAIN" else "area")
        np.testing.assert_array_equal(stack[:13], expected_scene(L1C_BANDS, index))
        last = read_all(config.gt_path if use == "TRAIN" else config.area_path)[0][0]
        np.testing.assert_array_equal(stack[13], last)


def test_tile_list_and_split(processed: ProcessedArea) -> None:
    config = processed.area.config()
    kept, _ = expected_kept_tiles()
    assert len(kept) == 77
    assert config.tile_endings_path.read_text().split() == sorted(kept)
    split = json.loads(config.split_path.read_text())
    assert split["method"] == "random" and split["reference"] == REFERENCE
    assert [len(split[s]) for s in SPLITS] == [15, 46, 16]
    assert sorted(split["valid"] + split["train"] + split["test"]) == sorted(kept)


def test_tiles_are_named_georeferenced_and_split_alike_on_every_date(processed: ProcessedArea) -> None:
    config = processed.area.config()
    split = json.loads(config.split_path.read_text())
    training_data = config.processed_dir / "training_data"
    assert sorted(p.name for p in training_data.iterdir()) == [f"{d}_data" for d in TRAINING_DATES]
    for index, date in enumerate(TRAINING_DATES):
        expected_stack = np.concatenate([expected_scene(L1C_BANDS, index), expected_masked_gt(0.0)[None]])
        folders = sorted(p.name for p in (training_data / f"{date}_data").iterdir() if p.is_dir())
        assert folders == sorted(f"{date}_L1C_{s}_tiles_(8x8)" for s in SPLITS)
        for subset in SPLITS:
            folder = training_data / f"{date}_data" / f"{date}_L1C_{subset}_tiles_(8x8)"
            assert folder == config.tiles_dir(date, "L1C", subset)
            endings = []
            for path in sorted(folder.iterdir()):
                match = TILE_NAME.match(path.name)
                assert match and match.group(1) == date, path.name
                endings.append(match.group(2))
                row, col = (int(v) for v in match.group(2).split("_")[1:])
                tile, profile, _ = read_all(path)
                assert profile["crs"].to_epsg() == 32633 and profile["dtype"] == "uint16"
                assert profile["transform"] == GRID_TRANSFORM @ Affine.translation(col * STRIDE, row * STRIDE)
                window = np.s_[:, row * STRIDE:row * STRIDE + SIZE, col * STRIDE:col * STRIDE + SIZE]
                np.testing.assert_array_equal(tile, expected_stack[window], err_msg=path.name)
            assert endings == split[subset], f"{date} {subset} differs from tile_split.json"


def test_tiles_summary_reports_the_unclassifiable_share(processed: ProcessedArea) -> None:
    config = processed.area.config()
    kept, with_unclassifiable = expected_kept_tiles()
    assert len(with_unclassifiable) == 6, "the class-8 square and five tiles on shoreline A"
    for date in TRAINING_DATES:
        summary = json.loads(config.tiles_summary_path(date, "L1C").read_text())
        assert summary["candidates"] == 81 and summary["kept_on_date"] == len(kept)
        assert summary["written"] == {"valid": 15, "train": 46, "test": 16} and summary["total_written"] == 77
        assert summary["with_unclassifiable"] == 6
        assert summary["unclassifiable_share"] == round(6 / 77, 4)
        assert "6 (7.8 %) contain unclassifiable pixels" in processed.train_stdout


def test_prediction_windows_of_the_new_date(processed: ProcessedArea) -> None:
    config = processed.area.config()
    (date,) = NEW_DATES
    assert not config.date_dir(date, "TRAIN").exists()
    with config.prediction_windows_path(date, "L1C").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    area = read_all(config.area_path)[0][0]
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)
    expected = []
    n = (GRID_PX - SIZE) // PREDICTION_STRIDE + 1
    for r in range(n):
        for c in range(n):
            y0, x0 = r * PREDICTION_STRIDE, c * PREDICTION_STRIDE
            centre = area[y0 + 2:y0 + 6, x0 + 2:x0 + 6]
            if inside[y0:y0 + SIZE, x0:x0 + SIZE].all() and centre.any():
                expected.append({"ending": f"tile_{r:03d}_{c:03d}", "row": str(r), "col": str(c),
                                 "y0": str(y0), "x0": str(x0)})
    assert rows == expected
    assert 0 < len(rows) < n * n


def test_summary_script(processed: ProcessedArea) -> None:
    out = ok(run_script("preprocessing_summary.py", config=processed.area.config_path))
    assert ("training tiles (8x8, stride 9, labelled on >= 100 % of their pixels): valid 30, train 92, test 32 "
            "(all dates, total 154)") in out
    assert 'classification area: "aoi"' in out and "warning" not in out
    assert "unclassifiable class: 12 of 154 (7.8 %" in out


def test_rerun_skips_everything(processed: ProcessedArea) -> None:
    processed_dir = processed.area.processed
    before = mtimes(processed_dir)
    train = ok(run_script("08a_process_train_batch.py", config=processed.area.config_path))
    new = ok(run_script("08b_process_new_batch.py", config=processed.area.config_path))
    for date in TRAINING_DATES:
        assert f"== {date} L1C TRAIN: complete, skipped" in train
    assert f"== {NEW_DATES[0]} L1C NEW: complete, skipped" in new
    assert "wrote" not in train + new
    assert mtimes(processed_dir) == before


def test_force_redoes_with_identical_outputs(processed: ProcessedArea) -> None:
    processed_dir = processed.area.processed
    times, hashes = mtimes(processed_dir), output_hashes(processed_dir)
    log = ok(run_script("08a_process_train_batch.py", "--force", config=processed.area.config_path))
    assert output_hashes(processed_dir) == hashes, "re-running gives identical outputs"
    for date in TRAINING_DATES:
        assert log.count(f"wrote {date}_L1C_all_bands.tif") == 1, "each scene is clipped once per run"
    after = mtimes(processed_dir)
    redone = {name for name in times if after[name] != times[name]}
    assert "ground_truth/gt.tif" in redone and "all_tile_endings.txt" in redone
    for date in TRAINING_DATES:
        assert f"sentinel/{date}_L1C_all_bands.tif" in redone
        assert f"training_data/{date}_data/{date}_L1C_tiles_summary.json" in redone
    assert f"sentinel/{NEW_DATES[0]}_L1C_all_bands.tif" not in redone, "08a leaves the new dates alone"


def test_force_on_new_dates_leaves_the_training_side_alone(processed: ProcessedArea) -> None:
    processed_dir = processed.area.processed
    times = mtimes(processed_dir)
    ok(run_script("08b_process_new_batch.py", "--force", config=processed.area.config_path))
    after = mtimes(processed_dir)
    redone = {name for name in times if after[name] != times[name]}
    assert f"sentinel/{NEW_DATES[0]}_L1C_all_bands.tif" in redone
    assert not {name for name in redone if name.startswith(("ground_truth/", "training_data/"))}


def test_block_split_needs_force_on_a_random_split(processed: ProcessedArea) -> None:
    before = file_hashes(processed.area.processed)
    result = run_script("08a_process_train_batch.py", "--split", "block", config=processed.area.config_path)
    assert_clean_failure(result, "tile_split.json", "'random'", "--force")
    assert file_hashes(processed.area.processed) == before


def test_raw_inputs_are_byte_identical_after_all_runs(processed: ProcessedArea) -> None:
    assert file_hashes(processed.area.raw) == processed.raw_before
    assert len(processed.raw_before) > 50


def test_block_split_end_to_end(study_area: StudyArea) -> None:
    ok(run_script("08a_process_train_batch.py", "--split", "block", config=study_area.config_path))
    config = study_area.config()
    split = json.loads(config.split_path.read_text())
    assert split["method"] == "block" and split["block_size"] == config.block_size == 4
    owner: dict[tuple[int, int], str] = {}
    for subset in SPLITS:
        on_disk = {d: sorted(TILE_NAME.match(p.name).group(2) for p in config.tiles_dir(d, "L1C", subset).iterdir())
                   for d in TRAINING_DATES}
        assert on_disk[TRAINING_DATES[0]] == on_disk[TRAINING_DATES[1]] == split[subset]
        for ending in split[subset]:
            row, col = (int(v) for v in ending.split("_")[1:])
            assert owner.setdefault((row // 4, col // 4), subset) == subset
    assert set(owner.values()) == set(SPLITS)
    assert sum(len(split[s]) for s in SPLITS) == 77


def test_every_script_has_help() -> None:
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert len(scripts) >= 12
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    running = {s.name: subprocess.Popen([sys.executable, str(s), "--help"], cwd=REPO_ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in scripts}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err}"
        assert out.startswith("usage:") and "--help" in out, name


# ---------------------------------------------------------------------- bad input
def assert_clean_failure(result: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit status 2, exactly one ``error:`` line on stderr naming every given string, no traceback."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"


Setup = Callable[[StudyArea], tuple[list[str], Path, list[str]]]
"""Breaks a study area; returns (script and arguments, config to pass, strings the error must name)."""


def missing_band(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.band_file(REFERENCE, "B05").unlink()
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [area.product(REFERENCE).name, "B05"]


def product_not_found(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    return ["01_clip_sentinel.py", "2017-01-01"], area.config_path, [str(area.l1c_dir), "20170101"]


def aoi_not_overlapping(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    write_aoi(area.aoi_file, box(*scene_xy(500, 600), *scene_xy(600, 500)))
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [area.product(REFERENCE).name, "AOI"]


def gt_without_attribute(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    write_gt(area.gt_file, attribute="landuse")
    return ["02_rasterize_shapefile.py"], area.config_path, [str(area.gt_file), "'ATKIS_mod'"]


def gt_ids_not_in_config(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    write_gt(area.gt_file, [1, 2, 3, 4, 5, 6, 7, 42])
    return ["02_rasterize_shapefile.py"], area.config_path, [str(area.gt_file), "42"]


def gt_points(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    write_vector(area.gt_file, [Point(scene_xy(20, 20)), Point(scene_xy(40, 40))], ATKIS_mod=[1, 2])
    return ["02_rasterize_shapefile.py"], area.config_path, [str(area.gt_file), "non-polygon"]


def gt_crs_missing(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.gt_file.with_suffix(".prj").unlink()
    return ["02_rasterize_shapefile.py"], area.config_path, [str(area.gt_file), "no CRS"]


def aoi_crs_missing(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.aoi_file.with_suffix(".prj").unlink()
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [str(area.aoi_file), "no CRS"]


def corrupt_raster(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    band = area.band_file(REFERENCE, "B04")
    band.write_bytes(bytes(range(256)) * 16)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [str(band), "not a readable raster"]


def truncated_raster(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """The header survives, so the file opens; decoding fails half-way through the output stack."""
    band = area.band_file(REFERENCE, "B08")
    content = band.read_bytes()
    band.write_bytes(content[: len(content) - 3000])
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [str(band), "corrupt raster data"]


def bad_toml(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.config_path.write_text(area.config_path.read_text().replace("[tiling]", "[tiling"))
    return ["08a_process_train_batch.py"], area.config_path, [str(area.config_path), "TOML"]


def missing_key(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.write_config({"ground_truth.attribute": DELETE})
    return ["08a_process_train_batch.py"], area.config_path, [str(area.config_path), "'ground_truth.attribute'"]


def bad_config_value(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.write_config({"dates.reference": "20220419"})
    return ["08b_process_new_batch.py"], area.config_path, [str(area.config_path), "'dates.reference'"]


def unknown_level_argument(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    return ["01_clip_sentinel.py", REFERENCE, "L3A"], area.config_path, ["L3A"]


def unknown_level_in_config(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.write_config({"sentinel.level": "L1B"})
    return ["08a_process_train_batch.py"], area.config_path, [str(area.config_path), "'sentinel.level'"]


def bad_date_argument(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    return ["01_clip_sentinel.py", "2016-13-01"], area.config_path, ["argument DATE: '2016-13-01'"]


def merge_before_clip(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    config = area.config()
    return (["04_merge_tifs.py", REFERENCE, "L1C", "TRAIN"], area.config_path,
            [str(config.scene_path(REFERENCE, "L1C")), "01_clip_sentinel.py"])


def empty_tile_set(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """GT covering a 6 x 6 square only: steps 01..03 succeed, no 8 x 8 tile is fully labelled."""
    write_gt(area.gt_file, [3], geometries=[grid_box(20, 20, 26, 26)])
    config = area.config()
    for date in config.training_pool:
        pipeline.clip_sentinel(config, date, say=lambda message: None)
    pipeline.rasterize_shapefile(config, say=lambda message: None)
    pipeline.restrict_water_area(config, say=lambda message: None)
    pipeline.create_area_tif(config, say=lambda message: None)
    return ["05b_save_all_tile_filenames.py"], area.config_path, [
        str(config.gt_path), "labelled on at least 100 % of its pixels", "empty tile set",
        f"lower [tiling] min_labelled_fraction in {area.config_path}"]


def without_ground_truth(area: StudyArea) -> Path:
    """Make the area classification-only: no GT file, no training dates (the reference is the new date)."""
    keys = ("ground_truth.file", "ground_truth.attribute", "dates.training_pool", "dates.fcn_training",
            "dates.fixed_sequence", "dates.evaluation", "dates.reference")
    return area.write_config(dict.fromkeys(keys, DELETE))


def needs_ground_truth(script: str, *args: str, step: str) -> Setup:
    """A step that needs GT, run on a classification-only config."""

    def setup(area: StudyArea) -> tuple[list[str], Path, list[str]]:
        return [script, *args], without_ground_truth(area), [
            str(area.config_path), f"{step} needs ground truth", "no ground_truth.file"]

    return setup


def gt_area_without_ground_truth(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    without_ground_truth(area)
    area.write_config({"ground_truth.classification_area": "gt"})
    return ["03_create_area_tif.py"], area.config_path, [str(area.config_path), "'ground_truth.classification_area'"]


BAD_INPUTS: dict[str, Setup] = {
    "missing band file": missing_band,
    "product for a date not found": product_not_found,
    "AOI not overlapping the scene": aoi_not_overlapping,
    "GT without the class attribute": gt_without_attribute,
    "GT class ids not in the config": gt_ids_not_in_config,
    "non-polygon GT": gt_points,
    "GT CRS missing": gt_crs_missing,
    "AOI CRS missing": aoi_crs_missing,
    "corrupt raster": corrupt_raster,
    "truncated raster": truncated_raster,
    "empty tile set": empty_tile_set,
    "bad TOML": bad_toml,
    "missing config key": missing_key,
    "invalid config value": bad_config_value,
    "unknown level argument": unknown_level_argument,
    "unknown level in the config": unknown_level_in_config,
    "invalid DATE argument": bad_date_argument,
    "step run before its input exists": merge_before_clip,
    "no GT: 08a": needs_ground_truth("08a_process_train_batch.py", step="step 08a"),
    "no GT: 07 TRAIN": needs_ground_truth("07_full_pipeline.py", NEW_DATES[0], "L1C", "TRAIN", step="step 07 TRAIN"),
    "no GT: 02": needs_ground_truth("02_rasterize_shapefile.py", step="step 02"),
    "no GT: 02b": needs_ground_truth("02b_restrict_water_area.py", step="step 02b"),
    "no GT: 04 TRAIN": needs_ground_truth("04_merge_tifs.py", NEW_DATES[0], "L1C", "TRAIN", step="step 04 TRAIN"),
    "no GT: 05b": needs_ground_truth("05b_save_all_tile_filenames.py", step="step 05b"),
    "no GT: split": needs_ground_truth("subset_split.py", step="the subset split"),
    "no GT: 05 TRAIN": needs_ground_truth("05_split_into_tiles.py", NEW_DATES[0], "L1C", "TRAIN",
                                          step="step 05 TRAIN"),
    "no GT: area from the GT": gt_area_without_ground_truth,
}


def check_fails_cleanly(setup: Setup, study_area: StudyArea) -> None:
    """Break the area, run the command: one error line naming the inputs, nothing written, raw unchanged."""
    command, config, names = setup(study_area)
    raw_before = file_hashes(study_area.raw)
    processed_before = file_hashes(study_area.processed)
    result = run_script(*command, config=config)
    assert_clean_failure(result, *names)
    assert file_hashes(study_area.processed) == processed_before, "the failing step wrote something"
    assert file_hashes(study_area.raw) == raw_before


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_cleanly(case: str, study_area: StudyArea) -> None:
    check_fails_cleanly(BAD_INPUTS[case], study_area)


# ---------------------------------------------------------------------- classification-only study area
def test_classification_only_area_end_to_end(study_area: StudyArea) -> None:
    """No GT file: 08b makes the reference scene, the AOI area mask, the NEW stack and its windows."""
    without_ground_truth(study_area)
    config = study_area.config()
    assert not config.has_ground_truth and config.reference == NEW_DATES[0]
    out = ok(run_script("08b_process_new_batch.py", config=study_area.config_path))
    (date,) = NEW_DATES
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)
    assert sorted(p.name for p in config.gt_dir.iterdir()) == ["area.tif"]
    np.testing.assert_array_equal(read_all(config.area_path)[0][0], inside.astype(np.uint8))
    assert sorted(p.name for p in (config.processed_dir / "sentinel").iterdir()) == [f"{date}_L1C_all_bands.tif"]
    stack, _, descriptions = read_all(config.merged_path(date, "L1C", "NEW"))
    assert descriptions == (*L1C_BANDS, "area")
    np.testing.assert_array_equal(stack[:13], expected_scene(L1C_BANDS, study_area.date_index(date)))
    assert config.prediction_windows_path(date, "L1C").read_text().count("\n") > 1
    assert not (config.processed_dir / "training_data").exists() and not config.split_path.exists()
    assert '(classification_area = "aoi": where the reference scene has data inside the AOI)' in out
    assert f"{int(inside.sum()):,} px in the area (100.0 % of the AOI" in out
    assert "[02]" not in out and "[05b]" not in out
    again = ok(run_script("08b_process_new_batch.py", config=study_area.config_path))
    assert f"== {date} L1C NEW: complete, skipped" in again and "wrote" not in again
    summary = ok(run_script("preprocessing_summary.py", config=study_area.config_path))
    assert "no ground truth (classification-only study area)" in summary


def test_classification_only_force_rebuilds_the_area_once(study_area: StudyArea) -> None:
    """Without a training side, 08b --force also redoes the shared products, clipping each date once."""
    without_ground_truth(study_area)
    ok(run_script("08b_process_new_batch.py", config=study_area.config_path))
    outputs = ("sentinel/", "ground_truth/", "classification_data/")
    before = {name: time for name, time in mtimes(study_area.processed).items() if name.startswith(outputs)}
    assert len(before) == 4
    log = ok(run_script("08b_process_new_batch.py", "--force", config=study_area.config_path))
    after = mtimes(study_area.processed)
    assert all(after[name] != time for name, time in before.items()), "scene, area, stack and windows are redone"
    assert log.count(f"wrote {NEW_DATES[0]}_L1C_all_bands.tif") == 1
    again = ok(run_script("08b_process_new_batch.py", config=study_area.config_path))
    assert "wrote" not in again and "out of date" not in again
