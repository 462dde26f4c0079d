"""The faults of the issue-10 audit, each built on a generated study area and run as a user runs it.

Every fault must end with exit status 2 and one ``error:`` line naming the file or key, with
nothing written under ``processed/`` and the raw inputs unchanged (``test_fault_fails_cleanly``);
the cases that are not errors check their result instead.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box
from study_area import (
    NEW_DATES,
    TRAINING_DATES,
    StudyArea,
    band_values,
    damage_zip_member,
    expected_scene,
    scene_xy,
    write_aoi,
    write_band,
    write_gt,
    write_vector,
    zero_bytes,
    zip_product,
    zip_product_stored,
)
from test_pipeline_scripts import Setup, assert_clean_failure, check_fails_cleanly, file_hashes, ok, run_script

from helpers.core.config import L1C_BANDS, SPLITS
from helpers.data import freshness, pipeline

REFERENCE = TRAINING_DATES[-1]
LOCAL_CRS = 'LOCAL_CS["arbitrary",UNIT["metre",1]]'
"""A local (engineering) CRS: coordinates in metres with no link to the Earth."""


def quiet(message: str) -> None:
    """Swallow the pipeline's progress lines."""


def halve(path: Path) -> None:
    """Truncate a file to half its size."""
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


# ---------------------------------------------------------------------- 1. vector files
def truncated_gt(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """The audit's case: gt.shp cut to half its size; GDAL returns the features past the cut without geometry."""
    config = area.config()
    pipeline.clip_sentinel(config, REFERENCE, say=quiet)
    pipeline.rasterize_shapefile(config, say=quiet)  # outputs exist: --force must keep them
    halve(area.gt_file)
    return (["02_rasterize_shapefile.py", "--force"], area.config_path,
            [f"{area.gt_file}: damaged ground truth Shapefile: 626 bytes, its header says 1,252 (the file is "
             f"truncated); replace it with an intact copy"])


def gt_index_truncated(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    shx = area.gt_file.with_suffix(".shx")
    shx.write_bytes(shx.read_bytes()[:-8])
    return ["02_rasterize_shapefile.py"], area.config_path, [f"{shx}: damaged ground truth Shapefile index"]


def gt_dbf_of_another_layer(area: StudyArea, tmp: Path) -> tuple[list[str], Path, list[str]]:
    """The .dbf of a 7-feature layer beside an 8-feature .shp: the attribute rows would be shifted."""
    other = write_gt(tmp / "other" / "gt.shp", values=[1, 2, 3, 4, 5, 6, 7],
                     geometries=[box(0, 0, 1, 1)] * 7)
    shutil.copyfile(other.with_suffix(".dbf"), area.gt_file.with_suffix(".dbf"))
    dbf = area.gt_file.with_suffix(".dbf")
    return ["02_rasterize_shapefile.py"], area.config_path, [
        f"{dbf}: ground truth attribute table has 7 records, the Shapefile 8 features"]


def gt_feature_without_geometry(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """An intact file holding a null geometry: it cannot be burnt, and dropping it would lose a class."""
    from study_area import gt_geometries

    write_vector(area.gt_file, [*gt_geometries(), None], ATKIS_mod=[1, 2, 3, 4, 5, 6, 7, 8, 3])
    return ["02_rasterize_shapefile.py"], area.config_path, [
        f"{area.gt_file}: ground truth has 1 of 9 features without a geometry (feature 9)"]


def truncated_aoi(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    halve(area.aoi_file)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{area.aoi_file}: damaged AOI Shapefile", "(the file is truncated)"]


def aoi_in_local_crs(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    area.aoi_file.with_suffix(".prj").write_text(LOCAL_CRS, encoding="utf-8")
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{area.aoi_file}: AOI CRS 'arbitrary' cannot be transformed to EPSG:32633"]


# ---------------------------------------------------------------------- 2. damaged band data
def damaged_stored_zip_member(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """3,000 zeroed bytes inside B03 of a zipped .SAFE: GDAL's /vsizip/ decodes them without an error."""
    intact = rasterio.open(area.band_file(REFERENCE, "B03")).read(1)
    archive = zip_product_stored(area.product(REFERENCE))
    member = damage_zip_member(archive, "_B03.jp2")
    with rasterio.open(f"/vsizip/{archive}/{member}") as src:  # the fault: read without complaint, wrong pixels
        assert (src.read(1) != intact).sum() > 1000
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{archive}: damaged zip member {member} (bad CRC-32); the product is corrupt: replace it with an intact copy"]


def damaged_deflated_zip_member(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    archive = zip_product(area.product(REFERENCE))
    member = damage_zip_member(archive, "_B08.jp2", count=200)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [f"{archive}: damaged zip member {member} ("]


def damaged_jp2_code_stream(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """The last 1,000 bytes of a plain .jp2 zeroed: OpenJPEG warns and returns made-up pixels."""
    band = area.band_file(REFERENCE, "B03")
    zero_bytes(band, band.stat().st_size - 1000, 1000)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{band}: damaged band data, GDAL reported while decoding it: Stream does not end with EOC; replace the "
        f"product with an intact copy"]


# ---------------------------------------------------------------------- 3. drivers check first
def driver_date_without_product(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """The audit's case: 07 for a date without a product used to write the shared products first."""
    return ["07_full_pipeline.py", "20190101"], area.config_path, [
        f"{area.l1c_dir}: no product for date 20190101"]


def batch_reference_without_product(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """08a: the reference (last pool date) is missing; the first pool date used to be clipped first."""
    shutil.rmtree(area.product(REFERENCE))
    return ["08a_process_train_batch.py"], area.config_path, [f"{area.l1c_dir}: no product for date {REFERENCE}"]


def new_batch_date_without_product(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """08b: a new date is missing; the shared products (01, 02, 02b, 03, 05b, split) used to be written first."""
    shutil.rmtree(area.product(NEW_DATES[0]))
    return ["08b_process_new_batch.py"], area.config_path, [f"{area.l1c_dir}: no product for date {NEW_DATES[0]}"]


def driver_band_missing_on_new_date(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    (band,) = area.product(NEW_DATES[0]).glob("GRANULE/*/IMG_DATA/*_B11.jp2")
    band.unlink()
    return ["07_full_pipeline.py", NEW_DATES[0], "L1C", "NEW"], area.config_path, [
        area.product(NEW_DATES[0]).name, "band file(s) not found: B11"]


def driver_with_truncated_gt(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    halve(area.gt_file)
    return ["08a_process_train_batch.py"], area.config_path, [f"{area.gt_file}: damaged ground truth Shapefile"]


# ---------------------------------------------------------------------- 4. tiles larger than the scene
def tile_larger_than_scene(script: str) -> Setup:
    def setup(area: StudyArea) -> tuple[list[str], Path, list[str]]:
        area.write_config({"tiling.tile_size": 640, "tiling.prediction_stride": 16})
        return [script], area.config_path, [
            f"{area.config_path}: config key 'tiling.tile_size': a 640x640 px tile does not fit the scene of 84x84 px "
            f"(the 10 m grid of the AOI {area.aoi_file}); lower tiling.tile_size or use a larger AOI"]

    return setup


def aoi_smaller_than_a_tile(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    write_aoi(area.aoi_file, box(*scene_xy(20, 25), *scene_xy(25, 20)))
    return ["07_full_pipeline.py", REFERENCE], area.config_path, [
        "'tiling.tile_size': a 8x8 px tile does not fit the scene of 5x5 px", str(area.aoi_file)]


def tiles_of_a_scene_smaller_than_a_tile(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """Step 05 NEW run on its own, after the earlier steps succeeded with a small tile size."""
    config = area.config()
    pipeline.full_pipeline(config, NEW_DATES[0], "L1C", "NEW", say=quiet)
    area.write_config({"tiling.tile_size": 100, "tiling.prediction_stride": 50})
    return ["05_split_into_tiles.py", NEW_DATES[0], "L1C", "NEW"], area.config_path, [
        "'tiling.tile_size': a 100x100 px tile does not fit the scene of 84x84 px"]


# ---------------------------------------------------------------------- 5. and 7. band CRS and extent
def band_in_local_crs(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    jp2 = area.band_file(REFERENCE, "B03")
    jp2.unlink()
    tif = write_band(jp2.with_suffix(".tif"), band_values("B03", area.date_index(REFERENCE)), 10.0, crs=LOCAL_CRS)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{tif}: band file has the CRS Engineering CRS 'arbitrary', which cannot be transformed to the study "
        f"area's EPSG:32633"]


def band_with_a_smaller_extent(area: StudyArea) -> tuple[list[str], Path, list[str]]:
    """B05 (20 m) cut to the left half of the scene: the AOI's right half would be 0 in B05 only."""
    band = area.band_file(REFERENCE, "B05")
    write_band(band, band_values("B05", area.date_index(REFERENCE))[:, :24], 20.0)
    return ["01_clip_sentinel.py", REFERENCE], area.config_path, [
        f"{band}: band B05 does not cover 5", "% of the AOI that the product's other bands cover",
        "the bands of one product must share one extent"]


FAULTS: dict[str, Setup] = {
    "1 truncated GT (02 --force)": truncated_gt,
    "1 GT index truncated": gt_index_truncated,
    "1 GT feature without geometry": gt_feature_without_geometry,
    "1 truncated AOI": truncated_aoi,
    "1 AOI in a local CRS": aoi_in_local_crs,
    "2 damaged member of a stored zip": damaged_stored_zip_member,
    "2 damaged member of a deflated zip": damaged_deflated_zip_member,
    "2 damaged JP2 code stream": damaged_jp2_code_stream,
    "3 07 date without product": driver_date_without_product,
    "3 08a reference without product": batch_reference_without_product,
    "3 08b new date without product": new_batch_date_without_product,
    "3 07 NEW band missing": driver_band_missing_on_new_date,
    "3 08a truncated GT": driver_with_truncated_gt,
    "4 tile size 640 (08a)": tile_larger_than_scene("08a_process_train_batch.py"),
    "4 tile size 640 (08b)": tile_larger_than_scene("08b_process_new_batch.py"),
    "4 AOI smaller than a tile (07)": aoi_smaller_than_a_tile,
    "4 tile larger than the scene (05 NEW)": tiles_of_a_scene_smaller_than_a_tile,
    "5 band in a local CRS": band_in_local_crs,
    "7 band with a smaller extent": band_with_a_smaller_extent,
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_fault_fails_cleanly(case: str, study_area: StudyArea) -> None:
    check_fails_cleanly(FAULTS[case], study_area)


def test_dbf_of_another_layer_fails_cleanly(study_area: StudyArea, tmp_path: Path) -> None:
    command, config, names = gt_dbf_of_another_layer(study_area, tmp_path)
    raw_before = file_hashes(study_area.raw)
    assert_clean_failure(run_script(*command, config=config), *names)
    assert not study_area.processed.exists()
    assert file_hashes(study_area.raw) == raw_before


# ---------------------------------------------------------------------- 7. an AOI partly outside the product
def test_aoi_partly_outside_the_product_is_reported_as_no_data(study_area: StudyArea) -> None:
    """Not an error (an AOI may reach beyond a tile), but the uncovered share is said and tagged."""
    write_aoi(study_area.aoi_file, box(*scene_xy(48, 90), *scene_xy(144, 6)))
    raw_before = file_hashes(study_area.raw)
    out = ok(run_script("01_clip_sentinel.py", REFERENCE, config=study_area.config_path))
    assert "; the product covers 50.0 % of the AOI, the rest is no data (0)" in out
    config = study_area.config()
    with rasterio.open(config.scene_path(REFERENCE, "L1C")) as src:
        stack, tags = src.read(), src.tags()
    assert tags["AOI_COVERED"] == "0.5000"
    assert stack.shape == (13, 84, 96)
    assert (stack[:, :, 48:] == 0).all()
    np.testing.assert_array_equal(stack[:, :, :48], expected_scene(L1C_BANDS, study_area.date_index(REFERENCE),
                                                                   aoi=box(*scene_xy(48, 90), *scene_xy(144, 6)),
                                                                   window=(48, 6, 48, 84)))
    assert file_hashes(study_area.raw) == raw_before


def test_a_product_covering_the_aoi_says_nothing_about_coverage(study_area: StudyArea) -> None:
    out = ok(run_script("01_clip_sentinel.py", REFERENCE, config=study_area.config_path))
    assert "of the AOI, the rest is no data" not in out
    with rasterio.open(study_area.config().scene_path(REFERENCE, "L1C")) as src:
        assert src.tags()["AOI_COVERED"] == "1.0000"


# ---------------------------------------------------------------------- 6. tile staging and replacement
def processed_date(area: StudyArea) -> tuple:
    config = area.config()
    pipeline.full_pipeline(config, REFERENCE, "L1C", "TRAIN", say=quiet)
    return config, config.date_dir(REFERENCE, "TRAIN")


def tile_folders(config, date: str) -> dict[str, list[str]]:
    return {s: sorted(p.name for p in config.tiles_dir(date, "L1C", s).iterdir()) for s in SPLITS}


def test_tiles_are_staged_under_unique_names_and_leave_nothing_behind(study_area: StudyArea,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config, date_dir = processed_date(study_area)
    seen: list[Path] = []
    real = pipeline.split_into_tiles.__globals__["write_tiles"]

    def spy(stack, grid, positions, folders, *args, **kwargs):
        seen.extend(folders.values())
        return real(stack, grid, positions, folders, *args, **kwargs)

    monkeypatch.setitem(pipeline.split_into_tiles.__globals__, "write_tiles", spy)
    pipeline.split_into_tiles(config, REFERENCE, "L1C", "TRAIN", force=True, say=quiet)
    assert len(seen) == 3
    for folder, subset in zip(seen, SPLITS, strict=True):
        assert folder.parent == date_dir
        assert re.fullmatch(rf"\.{re.escape(config.tiles_dir(REFERENCE, 'L1C', subset).name)}\.\d+-[0-9a-f]+"
                            rf"\.partial", folder.name), folder.name
        assert not folder.exists()
    assert not [p for p in date_dir.iterdir() if p.name.startswith(".")]


def test_a_failing_tile_writer_keeps_the_old_tiles_and_their_summary(study_area: StudyArea,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config, date_dir = processed_date(study_area)
    before = tile_folders(config, REFERENCE)
    summary = config.tiles_summary_path(REFERENCE, "L1C")
    summary_text = summary.read_text()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(date_dir / "tile.tif"))

    monkeypatch.setitem(pipeline.split_into_tiles.__globals__, "write_tiles", broken)
    with pytest.raises(OSError, match="No space left"):
        pipeline.split_into_tiles(config, REFERENCE, "L1C", "TRAIN", force=True, say=quiet)
    assert tile_folders(config, REFERENCE) == before
    assert summary.read_text() == summary_text
    assert not [p for p in date_dir.iterdir() if p.name.startswith(".")]


def test_an_interrupted_folder_swap_leaves_no_summary_and_is_rebuilt(study_area: StudyArea,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between two subset folders: the summary and its record are gone, so the next run rebuilds."""
    config, date_dir = processed_date(study_area)
    before = tile_folders(config, REFERENCE)
    summary = config.tiles_summary_path(REFERENCE, "L1C")
    import helpers.core.io

    real_replace = helpers.core.io.os.replace
    calls = []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(helpers.core.io.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        pipeline.split_into_tiles(config, REFERENCE, "L1C", "TRAIN", force=True, say=quiet)
    monkeypatch.setattr(helpers.core.io.os, "replace", real_replace)
    assert not summary.exists()
    assert not freshness.record_path(config.processed_dir, summary).exists()
    assert not [p for p in date_dir.iterdir() if p.name.startswith(".")]
    result = pipeline.split_into_tiles(config, REFERENCE, "L1C", "TRAIN", say=quiet)
    assert not result.skipped
    assert tile_folders(config, REFERENCE) == before
    assert json.loads(summary.read_text())["total_written"] == sum(len(v) for v in before.values())
