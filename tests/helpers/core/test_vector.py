"""Vector inputs: damaged Shapefiles and features without a geometry are errors, never half-read.

The ground truth, the AOI and the true-change file are all read through
:func:`helpers.core.vector.read_vector`, so one set of fixtures covers the three.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
from pathlib import Path

import pytest
from shapely.geometry import box
from study_area import gt_geometries, write_gt, write_vector

from helpers.core.errors import InputError
from helpers.core.vector import check_shapefile, read_area_of_interest, read_vector

LOCAL_CRS = 'LOCAL_CS["arbitrary",UNIT["metre",1]]'


@pytest.fixture
def gt(tmp_path: Path) -> Path:
    """The standard 8-feature GT Shapefile (1,252-byte .shp)."""
    return write_gt(tmp_path / "gt" / "gt.shp")


def digests(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.iterdir())}


def test_an_intact_shapefile_is_read_whole(gt: Path) -> None:
    assert check_shapefile(gt, "ground truth") == 8
    frame = read_vector(gt, "ground truth")
    assert len(frame) == 8 and frame.geometry.notna().all()


@pytest.mark.parametrize("what", ["ground truth", "AOI", "true-change"])
def test_a_truncated_shapefile_is_an_error(gt: Path, what: str) -> None:
    """The audit's case: half the .shp; GDAL would return the features past the cut without geometry."""
    gt.write_bytes(gt.read_bytes()[:626])
    before = digests(gt)
    with pytest.raises(InputError, match=re.escape(
            f"{gt}: damaged {what} Shapefile: 626 bytes, its header says 1,252 (the file is truncated); replace it "
            f"with an intact copy")):
        read_vector(gt, what)
    assert digests(gt) == before


def test_an_index_pointing_past_the_end_is_an_error(gt: Path) -> None:
    """A .shp cut short whose header was rewritten to match: the index still points past its end."""
    content = bytearray(gt.read_bytes()[:626])
    content[24:28] = struct.pack(">i", 626 // 2)
    gt.write_bytes(bytes(content))
    with pytest.raises(InputError, match=re.escape(
            f"{gt}: damaged ground truth Shapefile: 5 of 8 features lie beyond the end of its 626 bytes (first: "
            f"feature 4)")):
        read_vector(gt, "ground truth")


def test_a_record_that_does_not_match_the_index_is_an_error(gt: Path) -> None:
    content = bytearray(gt.read_bytes())
    index = gt.with_suffix(".shx").read_bytes()
    offset = 2 * struct.unpack(">i", index[100 + 8 * 2:100 + 8 * 2 + 4])[0]  # the third record
    content[offset:offset + 4] = struct.pack(">i", 99)
    gt.write_bytes(bytes(content))
    with pytest.raises(InputError, match=re.escape(
            f"{gt}: damaged ground truth Shapefile: record 3 does not match its entry in gt.shx (1 of 8 records)")):
        read_vector(gt, "ground truth")


def test_a_truncated_index_is_an_error(gt: Path) -> None:
    shx = gt.with_suffix(".shx")
    shx.write_bytes(shx.read_bytes()[:-8])
    with pytest.raises(InputError, match=re.escape(f"{shx}: damaged ground truth Shapefile index: 156 bytes, its "
                                                   f"header says 164")):
        read_vector(gt, "ground truth")


def test_a_missing_index_is_an_error(gt: Path) -> None:
    gt.with_suffix(".shx").unlink()
    with pytest.raises(InputError, match=re.escape(f"{gt}: AOI Shapefile has no .shx index file beside it")):
        read_vector(gt, "AOI")


def test_an_attribute_table_of_another_length_is_an_error(gt: Path, tmp_path: Path) -> None:
    other = write_gt(tmp_path / "other" / "gt.shp", values=[1, 2, 3], geometries=[box(0, 0, 1, 1)] * 3)
    shutil.copyfile(other.with_suffix(".dbf"), gt.with_suffix(".dbf"))
    with pytest.raises(InputError, match=re.escape(
            f"{gt.with_suffix('.dbf')}: ground truth attribute table has 3 records, the Shapefile 8 features; the "
            f"files do not belong together or one is damaged")):
        read_vector(gt, "ground truth")


def test_a_truncated_attribute_table_is_an_error(gt: Path) -> None:
    dbf = gt.with_suffix(".dbf")
    dbf.write_bytes(dbf.read_bytes()[:-40])
    with pytest.raises(InputError, match=re.escape(f"{dbf}: damaged ground truth attribute table: 178 bytes, its 8 "
                                                   f"records need 217 (the file is truncated)")):
        read_vector(gt, "ground truth")


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_features_without_a_geometry_are_an_error(tmp_path: Path, suffix: str) -> None:
    """Both formats allow a feature without a geometry; burning the others silently would lose it."""
    path = write_vector(tmp_path / f"gt{suffix}", [*gt_geometries()[:3], None, None],
                        ATKIS_mod=[1, 2, 3, 4, 5])
    with pytest.raises(InputError, match=re.escape(
            f"{path}: ground truth has 2 of 5 features without a geometry (features 4, 5); a feature without a "
            f"geometry cannot be used: remove it, or replace a damaged file with an intact copy")):
        read_vector(path, "ground truth")


def test_an_aoi_in_a_local_crs_is_an_error(tmp_path: Path) -> None:
    path = write_vector(tmp_path / "aoi.shp", [box(399960, 5639040, 400920, 5640000)], crs=LOCAL_CRS, id=[1])
    with pytest.raises(InputError, match=re.escape(f"{path}: AOI CRS 'arbitrary' cannot be transformed to "
                                                   f"EPSG:32633 (")):
        read_area_of_interest(path, "EPSG:32633")
