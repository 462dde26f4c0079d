"""Tests of the .SAFE writer (helpers.demo.safe_writer): what it writes is what helpers.data.sentinel reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from helpers.data.sentinel import ESA_BAND_IDS, find_product, metadata_from_name, open_product
from helpers.demo.safe_writer import BAND_RESOLUTION, CRS, ProductId, write_band, write_product

ORIGIN = (399960.0, 5640000.0)
SIDE = 12  # 10 m pixels; the 60 m bands are 2 x 2


def _pixels(band: str, resolution: float) -> np.ndarray:
    side = round(SIDE * 10 / resolution)
    return (100 * (ESA_BAND_IDS.index(band) + 1) + np.arange(side * side).reshape(side, side)).astype(np.uint16)


def test_names_follow_esa_and_parse_back() -> None:
    product = ProductId("20220419", "L1C", "S2B", "04.00")
    assert product.name == "S2B_MSIL1C_20220419T101022_N0400_R022_T33UVS_20220419T120000.SAFE"
    assert product.granule.startswith("L1C_T33UVS_A") and product.granule.endswith("_20220419T101022")
    assert product.metadata_name == "MTD_MSIL1C.xml"
    assert metadata_from_name(product.name).processing_baseline == 4.0
    assert ProductId("20180807", spacecraft="S2B").absolute_orbit < ProductId("20180807").absolute_orbit


def test_l1c_product_is_found_and_read(tmp_path: Path) -> None:
    product = ProductId("20220419", baseline="04.00")
    images = [(band, BAND_RESOLUTION[band], _pixels(band, BAND_RESOLUTION[band])) for band in ESA_BAND_IDS]
    safe = write_product(tmp_path, product, images, ORIGIN, cloud_pct=12.5, offsets=dict.fromkeys(range(13), -1000))
    assert find_product(tmp_path, "20220419") == safe
    opened = open_product(safe, ESA_BAND_IDS)
    assert opened.metadata.processing_baseline == 4.0
    assert opened.metadata.sensing_time == "2022-04-19T10:10:22.026Z"
    assert opened.metadata.offset_for("B8A") == -1000
    for band in ESA_BAND_IDS:
        (path,) = opened.band_files[band]
        assert Path(path).name == f"T33UVS_20220419T101022_{band}.jp2"
        with rasterio.open(path) as src:
            assert src.crs == rasterio.crs.CRS.from_string(CRS)
            assert (src.transform.a, src.transform.c, src.transform.f) == (BAND_RESOLUTION[band], *ORIGIN)
            np.testing.assert_array_equal(src.read(1), _pixels(band, BAND_RESOLUTION[band]))
    assert sorted(p.name for p in safe.iterdir()) == ["GRANULE", "MTD_MSIL1C.xml"]
    xml = (safe / "MTD_MSIL1C.xml").read_text(encoding="utf-8")
    assert xml.count("<IMAGE_FILE>") == 13 and "<Cloud_Coverage_Assessment>12.5000<" in xml


def test_l2a_product_keeps_every_resolution_and_the_finest_is_read(tmp_path: Path) -> None:
    product = ProductId("20220419", "L2A", baseline="04.00")
    images = [("B02", 10.0, _pixels("B02", 10.0)), ("B02", 20.0, np.full((6, 6), 9999, np.uint16)),
              ("SCL", 20.0, np.full((6, 6), 4, np.uint16))]
    safe = write_product(tmp_path, product, images, ORIGIN, offsets={1: -1000})
    assert safe.name.startswith("S2A_MSIL2A_20220419T101022_N0400_")
    opened = open_product(safe, ["B02", "SCL"])
    assert Path(opened.band_files["B02"][0]).parent.name == "R10m"
    assert Path(opened.band_files["SCL"][0]).name == "T33UVS_20220419T101022_SCL_20m.jp2"
    assert opened.metadata.offsets == {"B02": -1000}
    xml = (safe / "MTD_MSIL2A.xml").read_text(encoding="utf-8")
    assert "<PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>" in xml and "BOA_QUANTIFICATION_VALUE" in xml
    assert xml.index("_B02_10m<") < xml.index("_B02_20m<") < xml.index("_SCL_20m<")


@pytest.mark.parametrize("suffix", [".jp2", ".tif"])
def test_band_files_are_written_whole_under_their_final_name(tmp_path: Path, suffix: str) -> None:
    path = write_band(tmp_path / "sub" / f"band{suffix}", _pixels("B04", 10.0), 10.0, ORIGIN)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["band" + suffix, "sub"], "no temporary or aux file"
    if suffix == ".jp2":  # a JP2 file (georeferencing inside), not a bare codestream
        assert path.read_bytes()[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    with rasterio.open(path) as src:
        assert src.crs == rasterio.crs.CRS.from_string(CRS) and src.transform.c == ORIGIN[0]
