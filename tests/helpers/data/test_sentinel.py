"""Sentinel-2 products: discovery, metadata, offset removal, resampling, clipping, warping."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box
from study_area import (
    BAND_RESOLUTION,
    CRS,
    ESA_BANDS,
    GRID_TRANSFORM,
    NEW_DATES,
    ORIGIN_X,
    ORIGIN_Y,
    SCENE_PX,
    TILE_ID,
    WRONG_RESOLUTION_VALUE,
    StudyArea,
    aoi_polygon,
    band_values,
    centres_inside,
    expected_scene,
    l2a_b01,
    metadata_xml,
    scene_xy,
    write_aoi,
    write_band,
    write_band_folder,
    write_foreign_zone_l1c,
    write_l1c_safe,
    write_l2a_safe,
    zip_product,
)

from helpers.data import pipeline
from helpers.core.config import L1C_BANDS, L2A_BANDS
from helpers.core.errors import InputError
from helpers.core.grid import grid_from_bounds
from helpers.data.sentinel import (
    ProductMetadata,
    apply_offset,
    declare_baseline,
    find_product,
    ingest_product,
    metadata_from_name,
    open_product,
    parse_metadata,
    sensing_date,
)
from helpers.data.summary import preprocessing_summary

DATE = "20160403"
"""First training date of the standard area (date index 0, baseline 02.04)."""


def quiet(message: str) -> None:
    """Swallow the pipeline's progress lines."""


def read_stack(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, tuple[str, ...], dict[str, str]]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.descriptions, src.tags()


def clip(area: StudyArea, date: str = DATE, level: str = "L1C") -> tuple[np.ndarray, dict, tuple[str, ...], dict]:
    """Run step 01 on the area and return the written stack, its profile, descriptions and tags."""
    config = area.config()
    result = pipeline.clip_sentinel(config, date, level, say=quiet)
    assert result.output == config.scene_path(date, level)
    return read_stack(result.output)


# ---------------------------------------------------------------------- discovery
def test_safe_band_discovery_takes_img_data_bands_only(study_area: StudyArea) -> None:
    product = open_product(study_area.product(DATE), L1C_BANDS)
    assert product.kind == "safe"
    assert list(product.band_files) == list(L1C_BANDS)
    for band, paths in product.band_files.items():
        assert len(paths) == 1
        path = Path(paths[0])
        assert path.name == f"T33UVS_{DATE}T101022_{band}.jp2"
        assert path.parent.name == "IMG_DATA" and "GRANULE" in path.parts


def test_l2a_discovery_picks_the_finest_resolution_and_the_qi_masks(study_area: StudyArea) -> None:
    safe = write_l2a_safe(study_area.raw / "sentinel" / "level_L2A", DATE, 0)
    product = open_product(safe, L2A_BANDS)
    expected_folder = {"B01": "R20m", "B02": "R10m", "B08": "R10m", "B05": "R20m", "B09": "R60m", "B8A": "R20m",
                       "AOT": "R10m", "WVP": "R10m", "SCL": "R20m", "CLD": "QI_DATA", "SNW": "QI_DATA"}
    for band, folder in expected_folder.items():
        (path,) = product.band_files[band]
        assert Path(path).parent.name == folder, band
    assert Path(product.band_files["CLD"][0]).name == "MSK_CLDPRB_20m.jp2"
    assert Path(product.band_files["SNW"][0]).name == "MSK_SNWPRB_20m.jp2"
    with pytest.raises(InputError, match=re.escape(f"{safe}: band file(s) not found: B10")):
        open_product(safe, L1C_BANDS)


def test_quality_masks_of_new_baselines_are_not_bands(study_area: StudyArea) -> None:
    """``QI_DATA/MSK_DETFOO_B01.jp2`` etc. end in a band name, but only ``IMG_DATA`` holds bands."""
    (date,) = NEW_DATES
    assert (next(study_area.product(date).glob("GRANULE/*/QI_DATA")) / "MSK_DETFOO_B01.jp2").is_file()
    product = open_product(study_area.product(date), L1C_BANDS)
    for band, paths in product.band_files.items():
        assert [Path(p).parent.name for p in paths] == ["IMG_DATA"], band
    stack = clip(study_area, date)[0]
    np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, study_area.date_index(date)))


def test_zip_discovery_reads_in_place(study_area: StudyArea) -> None:
    archive = zip_product(study_area.product(DATE))
    assert find_product(study_area.l1c_dir, DATE) == archive
    product = open_product(archive, L1C_BANDS)
    assert product.kind == "zip"
    assert product.metadata.sensing_time == "2016-04-03T10:10:22.026Z"
    (b8a,) = product.band_files["B8A"]
    assert b8a.startswith(f"/vsizip/{archive}/") and b8a.endswith("IMG_DATA/T33UVS_20160403T101022_B8A.jp2")


def test_unreadable_zip_is_named(study_area: StudyArea) -> None:
    archive = zip_product(study_area.product(DATE))
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(InputError, match=re.escape(f"{archive}: not a readable zip file")):
        open_product(find_product(study_area.l1c_dir, DATE), L1C_BANDS)


def test_flat_folder_discovery(study_area: StudyArea) -> None:
    folder = write_band_folder(study_area.l1c_dir.parent / "level_flat", DATE, 0)
    product = open_product(folder, L1C_BANDS)
    assert product.kind == "folder"
    assert {band: Path(paths[0]).name for band, paths in product.band_files.items()} == {
        band: f"T33UVS_{DATE}T101022_{band}.tif" for band in L1C_BANDS}
    assert product.metadata.processing_baseline is None and product.metadata.source == "none"


def test_missing_band_is_named(study_area: StudyArea) -> None:
    study_area.band_file(DATE, "B05").unlink()
    study_area.band_file(DATE, "B11").unlink()
    with pytest.raises(InputError, match=r"\.SAFE: band file\(s\) not found: B05, B11$"):
        open_product(study_area.product(DATE), L1C_BANDS)


def test_find_product_errors_and_choices(study_area: StudyArea) -> None:
    folder = study_area.l1c_dir
    with pytest.raises(InputError, match=re.escape(f"{folder}: no product for date 20170101")):
        find_product(folder, "20170101")
    with pytest.raises(InputError, match="Sentinel-2 folder not found"):
        find_product(folder.parent / "level_L2A", DATE)
    safe = study_area.product(DATE)
    shutil.make_archive(str(safe.with_suffix("")), "zip", root_dir=folder, base_dir=safe.name)
    (folder / f".{safe.name}.partial").mkdir()
    assert find_product(folder, DATE) == safe, "an unpacked SAFE beside its own zip is used; hidden names ignored"
    write_band_folder(folder, DATE, 0)
    with pytest.raises(InputError, match=f"several products match date {DATE}"):
        find_product(folder, DATE)


# ---------------------------------------------------------------------- metadata
def test_l1c_metadata_is_parsed() -> None:
    offsets = dict.fromkeys(range(13), -1000) | {8: -900}
    meta = parse_metadata(metadata_xml("L1C", "20220419", "04.00", offsets).encode(), "S2B_MSIL1C_x.SAFE")
    assert meta.sensing_time == "2022-04-19T10:10:22.026Z"
    assert meta.processing_baseline == 4.0
    assert meta.offsets == {band: (-900 if band == "B8A" else -1000) for band in ESA_BANDS}
    assert meta.offset_for("B8A") == -900 and meta.offset_for("B09") == -1000
    assert meta.offset_for("SCL") == 0


def test_l2a_boa_offsets_are_parsed() -> None:
    meta = parse_metadata(metadata_xml("L2A", "20220419", "04.00", {0: -1000, 12: -1000}).encode())
    assert meta.offsets == {"B01": -1000, "B12": -1000}
    assert meta.offset_for("B02") == -1000, "a baseline >= 04.00 without a listed value uses the ESA default"


def test_old_baseline_has_no_offset() -> None:
    meta = parse_metadata(metadata_xml("L1C", "20160403", "02.04", dict.fromkeys(range(13), -1000)).encode())
    assert meta.processing_baseline == pytest.approx(2.04)
    assert all(meta.offset_for(band) == 0 for band in ESA_BANDS)


def test_baseline_falls_back_to_the_product_name() -> None:
    xml = metadata_xml("L1C", "20220419", "04.00").replace("<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>", "")
    meta = parse_metadata(xml.encode(), "S2A_MSIL1C_20220419T101022_N0400_R022_T33UVS_20220419T120000.SAFE")
    assert meta.processing_baseline == 4.0 and meta.offset_for("B04") == -1000
    assert metadata_from_name("S2A_MSIL1C_20160403T101022_N0204_R022_T33UVS").processing_baseline == 2.04
    assert metadata_from_name("T33UVS_20160403_bands").processing_baseline is None


@pytest.mark.parametrize(("xml", "message"), [
    (b"<root><unclosed></root>", "product metadata XML is malformed"),
    (b"<r><PROCESSING_BASELINE>four</PROCESSING_BASELINE></r>", "PROCESSING_BASELINE 'four' is not a number"),
])
def test_bad_metadata_is_an_input_error(xml: bytes, message: str) -> None:
    with pytest.raises(InputError, match=f"^P.SAFE: {message}"):
        parse_metadata(xml, "P.SAFE")


# ---------------------------------------------------------------------- offset removal
def test_apply_offset_rules() -> None:
    dn = np.array([0, 1, 500, 999, 1000, 1001, 1005, 3456, 65535], dtype=np.uint16)
    out = apply_offset(dn, -1000)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [0, 1, 1, 1, 1, 1, 5, 2456, 64535])
    assert apply_offset(dn, 0) is dn


def test_baseline_04_offset_is_removed_on_ingestion(study_area: StudyArea) -> None:
    """DN 1000 + x -> x, 0 stays 0 (no data), DN <= 1000 -> 1 (data, never mistaken for no data)."""
    special = {(20, 30): 0, (20, 31): 700, (20, 32): 1000, (20, 33): 1001}  # scene (row, col) of B02 -> raw DN

    def values(band: str, index: int) -> np.ndarray:
        array = band_values(band, index) + 1000
        if band == "B02":
            for (row, col), dn in special.items():
                array[row, col] = dn
        return array.astype(np.uint16)

    shutil.rmtree(study_area.product(DATE))
    write_l1c_safe(study_area.l1c_dir, DATE, 0, baseline="04.00", offset=True, values=values)
    stack, _, _, tags = clip(study_area)
    assert tags["RADIOMETRIC_OFFSET_REMOVED"] == "True" and tags["PROCESSING_BASELINE"] == "04.00"
    expected = expected_scene(L1C_BANDS, 0)  # the plain reflectance DNs
    b02 = L1C_BANDS.index("B02")
    for (row, col), dn in special.items():
        expected[b02, row - 6, col - 6] = {0: 0, 700: 1, 1000: 1, 1001: 1}[dn]
    np.testing.assert_array_equal(stack, expected)


def test_l2a_offset_only_touches_spectral_bands(study_area: StudyArea) -> None:
    write_l2a_safe(study_area.raw / "sentinel" / "level_L2A", DATE, 0, baseline="04.00", offset=True)
    stack, profile, descriptions, _ = clip(study_area, level="L2A")
    assert descriptions == L2A_BANDS and profile["count"] == 17 and profile["dtype"] == "uint16"
    expected = expected_scene(L2A_BANDS, 0, natives={"B01": l2a_b01(0)})
    np.testing.assert_array_equal(stack, expected)
    assert not (stack == WRONG_RESOLUTION_VALUE).any()


# ---------------------------------------------------------------------- resampling, clipping, grid
def test_l1c_stack_is_eurosat_ordered_uint16_with_repeated_coarse_pixels(study_area: StudyArea) -> None:
    stack, profile, descriptions, tags = clip(study_area)
    assert descriptions == L1C_BANDS == (*[b for b in ESA_BANDS if b != "B8A"], "B8A")
    assert (profile["count"], profile["dtype"], profile["width"], profile["height"]) == (13, "uint16", 84, 84)
    assert profile["crs"].to_epsg() == 32633
    assert profile["transform"] == GRID_TRANSFORM
    assert tags["SENSING_TIME"] == "2016-04-03T10:10:22.026Z" and tags["RADIOMETRIC_OFFSET_REMOVED"] == "False"
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, 84, 84)
    for index, band in enumerate(L1C_BANDS):
        factor = BAND_RESOLUTION[band] // 10
        repeated = np.repeat(np.repeat(band_values(band, 0), factor, axis=0), factor, axis=1)[6:90, 6:90]
        np.testing.assert_array_equal(stack[index][inside], repeated[inside], err_msg=band)
    assert (stack[:, ~inside] == 0).all()


def test_unaligned_aoi_window_crops_coarse_pixels_correctly(study_area: StudyArea) -> None:
    """A grid starting at scene col 7, row 5 cuts through 20 m and 60 m pixels."""
    aoi = box(*scene_xy(7, 83), *scene_xy(89, 5))
    write_aoi(study_area.aoi_file, aoi)
    stack, profile, _, _ = clip(study_area)
    assert profile["transform"] == Affine(10, 0, ORIGIN_X + 70, 0, -10, ORIGIN_Y - 50)
    np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, 0, aoi, (7, 5, 82, 78)))


def test_aoi_clip_uses_the_pixel_centre_rule(study_area: StudyArea) -> None:
    """Edges cut pixels at arbitrary fractions; only pixels whose centre is inside keep data."""
    corners = [(10.3, 20.7), (40.05, 8.2), (75.6, 30.45), (60.2, 70.9), (22.8, 55.35)]
    aoi = Polygon([scene_xy(c, r) for c, r in corners])
    write_aoi(study_area.aoi_file, aoi)
    stack, profile, _, _ = clip(study_area)
    # bounds snapped outwards to 10 m: cols 10..76, rows 8..71
    assert (profile["width"], profile["height"]) == (66, 63)
    assert profile["transform"] == Affine(10, 0, ORIGIN_X + 100, 0, -10, ORIGIN_Y - 80)
    expected = expected_scene(L1C_BANDS, 0, aoi, (10, 8, 66, 63))
    np.testing.assert_array_equal(stack, expected)
    inside = centres_inside(aoi, profile["transform"], 63, 66)
    assert 0 < inside.sum() < inside.size and (stack[:, inside] > 0).all()


def test_aoi_in_another_crs_is_reprojected(study_area: StudyArea) -> None:
    # edges 2.5 m inside pixel borders, so the reprojection round trip cannot move a pixel centre across
    aoi = box(*scene_xy(12.25, 80.75), *scene_xy(70.75, 9.25))
    write_aoi(study_area.aoi_file, aoi, crs="EPSG:4326")
    stack, profile, _, _ = clip(study_area)
    assert profile["crs"].to_epsg() == 32633
    assert profile["transform"] == Affine(10, 0, ORIGIN_X + 120, 0, -10, ORIGIN_Y - 90)
    np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, 0, aoi, (12, 9, 59, 72)))


def test_scene_in_another_utm_zone_is_warped(study_area: StudyArea) -> None:
    """A product in EPSG:32632 lands on the config's EPSG:32633 grid (nearest neighbour)."""
    shutil.rmtree(study_area.product(DATE))
    foreign = write_foreign_zone_l1c(study_area.l1c_dir, DATE)
    stack, profile, _, _ = clip(study_area)
    assert profile["crs"].to_epsg() == 32633 and profile["transform"] == GRID_TRANSFORM
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, 84, 84)
    rows, cols = np.nonzero(inside)
    to_foreign = Transformer.from_crs(CRS, foreign.crs, always_xy=True)
    x, y = to_foreign.transform(GRID_TRANSFORM.c + 10 * (cols + 0.5), GRID_TRANSFORM.f - 10 * (rows + 0.5))
    for index, band in enumerate(L1C_BANDS):
        agreement = np.mean(stack[index][inside] == foreign.value_at(band, x, y))
        assert agreement > 0.99, f"{band}: {agreement:.3f} of the pixels match the nearest source pixel"
    assert (stack[:, ~inside] == 0).all()


def test_new_baseline_area_has_the_old_scale(make_study_area: Callable[..., StudyArea]) -> None:
    """Every date of an all-baseline-04.00 area ingests to the same DNs as a pre-2022 product would."""
    dates = ("20220419", "20220519")
    area = make_study_area("offset", training=dates, new=(), offset_dates=dates)
    for index, date in enumerate(dates):
        stack, _, _, tags = clip(area, date)
        assert tags["RADIOMETRIC_OFFSET_REMOVED"] == "True"
        np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, index))


# ---------------------------------------------------------------------- declared baselines
def offset_band_folder(area: StudyArea, date: str) -> Path:
    """A flat band folder of a 2022+ product: DN = reflectance + 1000, no metadata, no baseline in the name."""
    shutil.rmtree(area.product(date))
    folder = area.l1c_dir / f"{TILE_ID}_{date}_bands"
    for band in ESA_BANDS:
        values = band_values(band, area.date_index(date)).astype(np.int32) + 1000
        write_band(folder / f"{TILE_ID}_{date}T101022_{band}.tif", values.astype(np.uint16), BAND_RESOLUTION[band])
    return folder


def test_unknown_baseline_after_2022_is_a_warning_saying_how_to_declare_it(study_area: StudyArea) -> None:
    (date,) = NEW_DATES
    folder = offset_band_folder(study_area, date)
    config = study_area.config()
    lines: list[str] = []
    result = pipeline.clip_sentinel(config, date, "L1C", say=lines.append)
    warning = (f"warning: {folder.name}: processing baseline unknown for a product sensed on or after 2022-01-25; "
               f"its +1000 radiometric offset is NOT removed. Declare it in {study_area.config_path} as "
               f'[sentinel.baselines] "{date}" = "05.09" (the value from the product\'s metadata)')
    assert f"  {warning}" in lines
    stack, _, _, tags = read_stack(result.output)
    assert tags["PROCESSING_BASELINE"] == "unknown" and tags["RADIOMETRIC_OFFSET_REMOVED"] == "False"
    assert tags["BASELINE_WARNING"] == warning
    assert "+1000 offset kept" in result.summary
    expected = expected_scene(L1C_BANDS, study_area.date_index(date))
    np.testing.assert_array_equal(stack, np.where(expected != 0, expected + 1000, 0))
    assert f"{date}_L1C_all_bands.tif: {warning}" in preprocessing_summary(config)


def test_a_declared_baseline_removes_the_offset(study_area: StudyArea) -> None:
    (date,) = NEW_DATES
    offset_band_folder(study_area, date)
    pipeline.clip_sentinel(study_area.config(), date, "L1C", say=quiet)
    study_area.write_config({f"sentinel.baselines.{date}": "05.09"})
    config = study_area.config()
    lines: list[str] = []
    result = pipeline.clip_sentinel(config, date, "L1C", say=lines.append)
    assert not result.skipped, "declaring the baseline makes the scene out of date"
    assert f"  out of date, rebuilding {date}_L1C_all_bands.tif (changed: config sentinel.baselines.{date})" in lines
    assert not any("warning" in line for line in lines)
    stack, _, _, tags = read_stack(result.output)
    assert tags["PROCESSING_BASELINE"] == "05.09" and tags["BASELINE_SOURCE"] == "config [sentinel.baselines]"
    assert tags["RADIOMETRIC_OFFSET_REMOVED"] == "True" and "BASELINE_WARNING" not in tags
    np.testing.assert_array_equal(stack, expected_scene(L1C_BANDS, study_area.date_index(date)))
    assert "warning" not in preprocessing_summary(config)


def test_a_declared_baseline_overrides_the_metadata(study_area: StudyArea) -> None:
    """An old-baseline product declared as 04.00 loses 1000 DN (the declaration wins; clipped at 1)."""
    study_area.write_config({f"sentinel.baselines.{DATE}": "04.00"})
    stack, _, _, tags = clip(study_area)
    assert tags["PROCESSING_BASELINE"] == "04.00" and tags["RADIOMETRIC_OFFSET_REMOVED"] == "True"
    expected = expected_scene(L1C_BANDS, 0).astype(np.int32)
    np.testing.assert_array_equal(stack, np.where(expected != 0, np.maximum(expected - 1000, 1), 0))


def test_old_products_without_a_baseline_are_no_warning(study_area: StudyArea) -> None:
    shutil.rmtree(study_area.product(DATE))
    write_band_folder(study_area.l1c_dir, DATE, 0)
    lines: list[str] = []
    pipeline.clip_sentinel(study_area.config(), DATE, "L1C", say=lines.append)
    assert not any("warning" in line for line in lines)
    assert "baseline unknown (none), offset removed: False" in lines[-1]


def test_declared_baseline_and_sensing_date_helpers() -> None:
    meta = ProductMetadata(sensing_time="2023-03-01T10:10:22.026Z", offsets={"B02": -900})
    declared = declare_baseline(meta, "05.09")
    assert declared.processing_baseline == 5.09 and declared.offset_for("B02") == -900
    assert declared.offset_for("B03") == -1000 and meta.processing_baseline is None
    assert sensing_date(meta, "20220101") == "20230301"
    assert sensing_date(ProductMetadata(), "20220125") == "20220125"


def test_zip_and_flat_folder_give_the_same_stack_as_the_safe(study_area: StudyArea,
                                                              tmp_path: Path) -> None:
    safe_stack = clip(study_area)[0]
    np.testing.assert_array_equal(safe_stack, expected_scene(L1C_BANDS, 0))
    zip_product(study_area.product(DATE))
    zip_stack, _, _, zip_tags = clip_forced(study_area)
    assert zip_tags["PRODUCT"].endswith(".zip")
    np.testing.assert_array_equal(zip_stack, safe_stack)
    study_area.product(DATE).unlink()
    write_band_folder(study_area.l1c_dir, DATE, 0)
    folder_stack, _, _, folder_tags = clip_forced(study_area)
    assert folder_tags["PROCESSING_BASELINE"] == "unknown"
    np.testing.assert_array_equal(folder_stack, safe_stack)


def clip_forced(area: StudyArea) -> tuple[np.ndarray, dict, tuple[str, ...], dict]:
    """Step 01 with --force."""
    config = area.config()
    return read_stack(pipeline.clip_sentinel(config, DATE, "L1C", force=True, say=quiet).output)


def test_block_processing_does_not_change_the_result(study_area: StudyArea, tmp_path: Path) -> None:
    config = study_area.config()
    aoi = aoi_polygon()
    grid = grid_from_bounds(aoi.bounds, CRS, 10.0)
    product = open_product(study_area.product(DATE), L1C_BANDS)
    ingest_product(product, L1C_BANDS, grid, aoi, tmp_path / "one_block.tif")
    ingest_product(product, L1C_BANDS, grid, aoi, tmp_path / "blocks.tif", block_rows=5)
    np.testing.assert_array_equal(read_stack(tmp_path / "blocks.tif")[0], read_stack(tmp_path / "one_block.tif")[0])
    assert not config.processed_dir.exists()


# ---------------------------------------------------------------------- errors
def test_aoi_outside_the_scene(study_area: StudyArea) -> None:
    write_aoi(study_area.aoi_file, box(*scene_xy(300, 400), *scene_xy(400, 300)))
    with pytest.raises(InputError, match=r"\.SAFE: the AOI does not overlap the scene$"):
        clip(study_area)
    assert not study_area.config().scene_path(DATE).exists()


def test_corrupt_band_file_is_named(study_area: StudyArea) -> None:
    band = study_area.band_file(DATE, "B07")
    band.write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"not a codestream" * 20)
    with pytest.raises(InputError, match=re.escape(str(band))):
        clip(study_area)
    assert not study_area.config().scene_path(DATE).exists()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_band_file_without_crs(study_area: StudyArea) -> None:
    band = study_area.band_file(DATE, "B03")
    band.unlink()
    tif = band.with_suffix(".tif")
    with rasterio.open(tif, "w", driver="GTiff", width=SCENE_PX, height=SCENE_PX, count=1, dtype="uint16") as dst:
        dst.write(band_values("B03", 0), 1)
    with pytest.raises(InputError, match=re.escape(f"{tif}: raster has no CRS")):
        clip(study_area)


def test_no_data_band_pixels_stay_zero(study_area: StudyArea) -> None:
    """A band file's own zeros (outside its swath) must not be filled by anything."""
    band = study_area.band_file(DATE, "B04")
    values = band_values("B04", 0)
    values[:, :40] = 0
    write_band(band, values, 10.0)
    stack = clip(study_area)[0][L1C_BANDS.index("B04")]
    assert (stack[:, : 40 - 6] == 0).all() and (stack[6:, 40 - 6:] > 0).all()
