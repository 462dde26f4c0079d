"""No stale outputs: a batch rebuilds exactly the outputs whose config values or inputs changed.

Each test runs the TRAIN batch (08a) in-process on a private copy of the standard study area,
changes one thing, runs it again and compares the outputs' modification times: an output is
rebuilt when its mtime changed. The freshness records themselves are left out of the
comparison (they are rewritten with every output).
"""

from __future__ import annotations

import json
import os

import pytest
from shapely.geometry import Polygon
from study_area import GRID_OFFSET, GRID_PX, NEW_DATES, TRAINING_DATES, StudyArea, scene_xy, write_aoi

from helpers.core.config import Config
from helpers.data import freshness, pipeline

RECORDS = ".fingerprints"
NEW = NEW_DATES[0]


def outputs(area: StudyArea) -> dict[str, int]:
    """Relative path -> mtime_ns of every output file (records excluded)."""
    return {str(p.relative_to(area.processed)): p.stat().st_mtime_ns for p in area.processed.rglob("*")
            if p.is_file() and p.relative_to(area.processed).parts[0] != RECORDS}


def run(area: StudyArea, use: str = "TRAIN") -> str:
    """The batch of one side (08a or 08b) in-process; returns what it printed."""
    config = area.config()
    lines: list[str] = []
    dates = config.training_pool if use == "TRAIN" else config.new
    pipeline.process_batch(config, dates, "L1C", use, say=lines.append)
    return "\n".join(lines)


def rebuilt(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """Outputs that are new or whose mtime changed."""
    return {name for name, time in after.items() if before.get(name) != time}


def scenes(dates: tuple[str, ...]) -> set[str]:
    return {f"sentinel/{d}_L1C_all_bands.tif" for d in dates}


def training_outputs(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("training_data/")}


@pytest.fixture
def batch(study_area: StudyArea) -> StudyArea:
    """The standard area after one TRAIN batch."""
    log = run(study_area)
    assert "out of date" not in log
    return study_area


def test_every_output_has_a_record_of_its_inputs(batch: StudyArea) -> None:
    config = batch.config()
    processed = config.processed_dir
    expected = [config.scene_path(d, "L1C") for d in TRAINING_DATES] + [
        config.gt_rasterized_path, config.gt_path, config.area_path, config.tile_endings_path, config.split_path,
        *(config.merged_path(d, "L1C", "TRAIN") for d in TRAINING_DATES),
        *(config.tiles_summary_path(d, "L1C") for d in TRAINING_DATES)]
    for output in expected:
        path = processed / RECORDS / f"{output.relative_to(processed).as_posix()}.json"
        data = json.loads(path.read_text())
        assert data["version"] == 1 and set(data) == {"version", "values", "inputs"}, path
    scene = json.loads((processed / RECORDS / "sentinel" / f"{TRAINING_DATES[0]}_L1C_all_bands.tif.json").read_text())
    assert scene["values"] == {"sentinel.level": "L1C", "sentinel.crs": "EPSG:32633", "sentinel.resolution": 10.0,
                               f"sentinel.baselines.{TRAINING_DATES[0]}": None}
    aoi = scene["inputs"]["raw/ground_truth/overallshape/overallshape.shp"]
    assert {"overallshape.shp", "overallshape.shx", "overallshape.dbf", "overallshape.prj"} <= set(aoi)
    assert all(len(state) == 2 for state in aoi.values())
    (product,) = (k for k in scene["inputs"] if k.startswith("raw/sentinel/level_L1C/"))
    assert "MTD_MSIL1C.xml" in scene["inputs"][product] and len(scene["inputs"][product]) > 13


def test_unchanged_inputs_rebuild_nothing(batch: StudyArea) -> None:
    before = outputs(batch)
    batch.write_config({"classes.0.colour": "#123456", "classes.1.name": "Meadow", "training.max_epochs": 3})
    log = run(batch)
    assert rebuilt(before, outputs(batch)) == set()
    assert "wrote" not in log and "out of date" not in log
    for date in TRAINING_DATES:
        assert f"== {date} L1C TRAIN: complete, skipped" in log


def test_a_changed_aoi_rebuilds_everything(batch: StudyArea) -> None:
    before = outputs(batch)
    notch = 20  # a larger notch than the standard 12.3, on the same bounds (the same grid)
    corners = [(notch, 0), (GRID_PX, 0), (GRID_PX, GRID_PX), (0, GRID_PX), (0, notch)]
    write_aoi(batch.aoi_file, Polygon([scene_xy(c + GRID_OFFSET, r + GRID_OFFSET) for c, r in corners]))
    log = run(batch)
    after = outputs(batch)
    assert rebuilt(before, after) == set(after), "every output is rebuilt"
    assert "complete, skipped" not in log
    assert ("  out of date, rebuilding 20160403_L1C_all_bands.tif (changed: input "
            "raw/ground_truth/overallshape/overallshape.shp (") in log
    assert "out of date, rebuilding gt_rasterized.tif (changed: input raw/ground_truth/overallshape/" in log
    assert "out of date, rebuilding gt.tif (changed: input processed/ground_truth/gt_rasterized.tif" in log


def test_a_changed_class_table_entry_rebuilds_step_02_and_what_follows_only(batch: StudyArea) -> None:
    before = outputs(batch)
    batch.write_config({"classes.0.gt_values": [1, 101]})
    log = run(batch)
    after = outputs(batch)
    redone = rebuilt(before, after)
    assert not redone & scenes(TRAINING_DATES), "no step-01 scene is rebuilt"
    assert "ground_truth/area.tif" not in redone, "the AOI area does not depend on the GT"
    expected = {"ground_truth/gt_rasterized.tif", "ground_truth/gt.tif", "ground_truth/water_mask_summary.json",
                "all_tile_endings.txt", "tile_split.json", *training_outputs(set(after))}
    expected |= {n for n in after if n.startswith("ground_truth/gt_water_masked_")}
    assert redone == expected
    assert "  out of date, rebuilding gt_rasterized.tif (changed: config classes)" in log
    assert log.count("_L1C_all_bands.tif  (use --force to redo)") == log.count("clip Sentinel-2") == 4
    assert "_all_bands.tif:" not in log and "ground_truth/area.tif  (use --force to redo)" in log
    # and a third run finds everything up to date
    again = outputs(batch)
    log = run(batch)
    assert rebuilt(again, outputs(batch)) == set() and "wrote" not in log


def test_an_output_without_a_record_is_rebuilt(batch: StudyArea) -> None:
    config = batch.config()
    before = outputs(batch)
    freshness.record_path(config.processed_dir, config.split_path).unlink()
    log = run(batch)
    redone = rebuilt(before, outputs(batch))
    assert "  out of date, rebuilding tile_split.json (no record of its inputs)" in log
    summaries = {f"training_data/{d}_data/{d}_L1C_tiles_summary.json" for d in TRAINING_DATES}
    assert {"tile_split.json", *summaries} <= redone, "the tiles follow their rebuilt split"
    assert not redone & {"all_tile_endings.txt", "ground_truth/gt.tif", *scenes(TRAINING_DATES)}
    assert not {n for n in redone if n.endswith("_merged.tif")}


def test_a_changed_product_rebuilds_its_date_only(batch: StudyArea) -> None:
    run(batch, "NEW")
    before = outputs(batch)
    band = next(batch.product(NEW).rglob("*_B04.jp2"))
    stat = band.stat()
    os.utime(band, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    train = run(batch)
    assert rebuilt(before, outputs(batch)) == set(), "the training side does not use the new date"
    new = run(batch, "NEW")
    redone = rebuilt(before, outputs(batch))
    assert redone == {f"sentinel/{NEW}_L1C_all_bands.tif", f"classification_data/{NEW}_data/{NEW}_L1C_merged.tif",
                      f"classification_data/{NEW}_data/{NEW}_L1C_prediction_windows.csv",
                      *(f"clouds/{NEW}_L1C_clouds.{end}" for end in ("tif", "tif.aux.xml", "json", "png"))}
    assert "wrote" not in train
    assert "GRANULE/" in new and "_B04.jp2)" in new


def test_is_date_complete_uses_the_same_test(batch: StudyArea) -> None:
    config: Config = batch.config()
    date = TRAINING_DATES[0]
    assert pipeline.is_date_complete(config, date, "L1C", "TRAIN")
    changed = batch.write_config({"tiling.min_labelled_fraction": 0.5})
    assert not pipeline.is_date_complete(batch.config(), date, "L1C", "TRAIN")
    assert changed == batch.config_path
    batch.write_config({"tiling.min_labelled_fraction": 1.0})
    assert pipeline.is_date_complete(batch.config(), date, "L1C", "TRAIN")
    freshness.record_path(config.processed_dir, config.merged_path(date, "L1C", "TRAIN")).unlink()
    assert not pipeline.is_date_complete(config, date, "L1C", "TRAIN")
    assert not pipeline.is_date_complete(config, NEW, "L1C", "NEW")


def test_force_still_rebuilds_everything_of_its_side(batch: StudyArea) -> None:
    before = outputs(batch)
    config = batch.config()
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", force=True, say=lambda line: None)
    assert rebuilt(before, outputs(batch)) == set(before)
