"""Integrity checks of products: zip CRCs, GDAL decoder messages, band CRSs and extents."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from shapely.geometry import box
from study_area import (
    SCENE_PX,
    StudyArea,
    band_values,
    damage_zip_member,
    scene_xy,
    write_band,
    zero_bytes,
    zip_product,
    zip_product_stored,
)

from helpers.core.config import L1C_BANDS
from helpers.core.errors import InputError
from helpers.core.grid import grid_from_bounds
from helpers.data.product_checks import (
    GDAL_LOGGERS,
    band_footprints,
    check_band_extents,
    collect_gdal_messages,
    describe_crs,
    verify_zip_members,
    zip_members,
)
from helpers.data.sentinel import ingest_product, open_product, verify_product

DATE = "20160403"


def test_intact_zip_members_pass_and_are_counted(study_area: StudyArea) -> None:
    archive = zip_product(study_area.product(DATE))
    product = open_product(archive, L1C_BANDS)
    check = verify_product(product, L1C_BANDS)
    assert check.members == 13
    with zipfile.ZipFile(archive) as zipped:
        sizes = {i.filename: i.compress_size for i in zipped.infolist()}
    paths = [path for band in L1C_BANDS for path in product.band_files[band]]
    assert check.compressed_bytes == sum(sizes[member] for member in zip_members(archive, paths))
    assert check.seconds >= 0


@pytest.mark.parametrize("zipper", [zip_product, zip_product_stored])
def test_a_damaged_member_is_named_and_nothing_is_written(study_area: StudyArea, tmp_path: Path, zipper) -> None:
    archive = zipper(study_area.product(DATE))
    member = damage_zip_member(archive, "_B12.jp2", count=300)
    damaged = archive.read_bytes()
    product = open_product(archive, L1C_BANDS)  # the directory is intact: discovery works
    aoi = box(*scene_xy(6, 90), *scene_xy(90, 6))
    out = tmp_path / "out" / "scene.tif"
    with pytest.raises(InputError, match=re.escape(f"{archive}: damaged zip member {member} (")):
        ingest_product(product, L1C_BANDS, grid_from_bounds(aoi.bounds, "EPSG:32633", 10.0), aoi, out)
    assert not out.parent.exists() or not list(out.parent.iterdir())
    assert archive.read_bytes() == damaged


def test_only_the_members_used_are_checked(study_area: StudyArea) -> None:
    """Damage in a member ingestion does not read (the true-colour preview) is no reason to refuse."""
    archive = zip_product_stored(study_area.product(DATE))
    damage_zip_member(archive, "_TCI.jp2", count=100)
    assert verify_product(open_product(archive, L1C_BANDS), L1C_BANDS).members == 13


def test_no_members_is_a_no_op(tmp_path: Path) -> None:
    assert verify_zip_members(tmp_path / "none.zip", []).members == 0


def test_gdal_warnings_are_collected_not_printed(study_area: StudyArea, capfd: pytest.CaptureFixture,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    band = study_area.band_file(DATE, "B03")
    zero_bytes(band, band.stat().st_size - 1000, 1000)
    caplog.set_level(logging.ERROR, logger="rasterio._err")  # a user who silenced rasterio's warnings
    states = [(logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in GDAL_LOGGERS]
    with collect_gdal_messages() as messages, rasterio.open(band) as src:
        src.read(1)
        with pytest.raises(InputError, match=re.escape(f"{band}: damaged band data, GDAL reported while decoding "
                                                       f"it: Stream does not end with EOC; replace the product")):
            messages.raise_for(str(band))
        messages.raise_for(str(band))  # taken: nothing left
    assert capfd.readouterr().err == ""
    assert [(logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in GDAL_LOGGERS] == states


def test_an_intact_band_reads_without_messages(study_area: StudyArea) -> None:
    with collect_gdal_messages() as messages, rasterio.open(study_area.band_file(DATE, "B03")) as src:
        np.testing.assert_array_equal(src.read(1), band_values("B03", 0))
        assert messages.take() == []


def test_describe_crs() -> None:
    assert describe_crs(CRS.from_epsg(32633)) == "EPSG:32633"
    assert describe_crs(CRS.from_wkt('LOCAL_CS["arbitrary",UNIT["metre",1]]')) == "Engineering CRS 'arbitrary'"


def test_band_footprints_and_extents(study_area: StudyArea) -> None:
    crs = CRS.from_epsg(32633)
    product = open_product(study_area.product(DATE), L1C_BANDS)
    footprints = band_footprints(product.band_files, crs)
    assert {round(f.area) for f in footprints.values()} == {(10 * SCENE_PX) ** 2}
    aoi = box(*scene_xy(6, 90), *scene_xy(90, 6))
    assert check_band_extents(footprints, product.band_files, aoi, 10.0) == 1.0
    half = box(*scene_xy(48, 90), *scene_xy(144, 6))
    assert check_band_extents(footprints, product.band_files, half, 10.0) == pytest.approx(0.5)


def test_a_band_short_by_less_than_a_pixel_is_accepted(study_area: StudyArea) -> None:
    """A missing strip narrower than one grid pixel is an edge effect, no extent mismatch."""
    crs = CRS.from_epsg(32633)
    product = open_product(study_area.product(DATE), L1C_BANDS)
    footprints = band_footprints(product.band_files, crs)
    footprints["B05"] = footprints["B05"].difference(box(*scene_xy(95.5, 96), *scene_xy(96, 0)))
    aoi = box(*scene_xy(0, 96), *scene_xy(96, 0))
    assert check_band_extents(footprints, product.band_files, aoi, 10.0) == 1.0
    footprints["B05"] = footprints["B05"].difference(box(*scene_xy(94, 96), *scene_xy(96, 0)))
    with pytest.raises(InputError, match=re.escape(f"{product.band_files['B05'][0]}: band B05 does not cover 2.1 % "
                                                   f"of the AOI that the product's other bands cover")):
        check_band_extents(footprints, product.band_files, aoi, 10.0)


def test_a_band_in_a_local_crs(study_area: StudyArea) -> None:
    jp2 = study_area.band_file(DATE, "B04")
    jp2.unlink()
    tif = write_band(jp2.with_suffix(".tif"), band_values("B04", 0), 10.0, crs='LOCAL_CS["arbitrary",UNIT["metre",1]]')
    product = open_product(study_area.product(DATE), L1C_BANDS)
    with pytest.raises(InputError, match=re.escape(
            f"{tif}: band file has the CRS Engineering CRS 'arbitrary', which cannot be transformed to the study "
            f"area's EPSG:32633 (a local or engineering CRS has no link to map coordinates)")):
        band_footprints(product.band_files, CRS.from_epsg(32633))
