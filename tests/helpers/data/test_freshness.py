"""Fingerprints and records of what an output was made from (helpers/freshness.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.data import freshness


def touch(path: Path, text: str = "x", mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with a product folder, a Shapefile with sidecars, a GeoPackage and an output."""
    touch(tmp_path / "raw" / "p.SAFE" / "MTD_MSIL1C.xml", "<x/>", 10**18)
    touch(tmp_path / "raw" / "p.SAFE" / "GRANULE" / "G" / "IMG_DATA" / "B01.jp2", "b1", 10**18)
    for suffix in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qmd"):
        touch(tmp_path / "raw" / f"aoi{suffix}", suffix, 10**18)
    touch(tmp_path / "raw" / "other.shp", "other", 10**18)
    touch(tmp_path / "raw" / "gt.gpkg", "gpkg", 10**18)
    touch(tmp_path / "processed" / "ground_truth" / "gt.tif", "tif", 10**18)
    return tmp_path


def test_file_states_of_folders_shapefiles_files_and_missing_inputs(root: Path) -> None:
    assert freshness.file_states(root / "raw" / "p.SAFE") == {
        "GRANULE/G/IMG_DATA/B01.jp2": [2, 10**18], "MTD_MSIL1C.xml": [4, 10**18]}
    assert set(freshness.file_states(root / "raw" / "aoi.shp")) == {"aoi.shp", "aoi.shx", "aoi.dbf", "aoi.prj",
                                                                     "aoi.cpg"}
    assert freshness.file_states(root / "raw" / "gt.gpkg") == {"gt.gpkg": [4, 10**18]}
    assert freshness.file_states(root / "raw" / "missing.shp") == {}
    assert freshness.file_states(root / "raw" / "nothing") == {}


def test_fingerprint_names_inputs_relative_to_the_data_root(root: Path,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = touch(tmp_path_factory.mktemp("outside") / "aoi.gpkg", "a", 10**18)
    current = freshness.fingerprint(root, {"tiling.tile_size": 32, "water_mask.dates": ("20160403",)},
                                    [root / "raw" / "aoi.shp", elsewhere])
    assert current.values == {"tiling.tile_size": 32, "water_mask.dates": ["20160403"]}
    assert list(current.inputs) == ["raw/aoi.shp", str(elsewhere)]


def test_record_round_trip_and_reasons(root: Path) -> None:
    processed = root / "processed"
    output = processed / "ground_truth" / "gt.tif"
    inputs = [root / "raw" / "aoi.shp", root / "raw" / "p.SAFE", root / "raw" / "gt.gpkg"]
    current = freshness.fingerprint(root, {"classes": [[1, [1]]], "sentinel.crs": "EPSG:32633"}, inputs)
    assert freshness.stale_reason(processed, processed / "absent.tif", current) == "missing"
    assert freshness.stale_reason(processed, output, current) == "no record of its inputs"
    freshness.write_record(processed, output, current)
    path = processed / ".fingerprints" / "ground_truth" / "gt.tif.json"
    assert freshness.record_path(processed, output) == path
    assert json.loads(path.read_text())["values"]["sentinel.crs"] == "EPSG:32633"
    assert freshness.stale_reason(processed, output, current) is None

    touch(root / "raw" / "aoi.dbf", "changed", 2 * 10**18)
    touch(root / "raw" / "gt.gpkg", "gpkg", 2 * 10**18)
    touch(root / "raw" / "p.SAFE" / "GRANULE" / "G" / "IMG_DATA" / "B02.jp2", "b2")
    touched = freshness.fingerprint(root, {"classes": [[1, [1, 2]]], "sentinel.crs": "EPSG:32633"}, inputs)
    assert freshness.stale_reason(processed, output, touched) == (
        "changed: config classes; input raw/aoi.shp (aoi.dbf), raw/gt.gpkg, raw/p.SAFE (GRANULE/G/IMG_DATA/B02.jp2)")
    (root / "raw" / "gt.gpkg").unlink()
    gone = freshness.fingerprint(root, {"classes": [[1, [1]]], "sentinel.crs": "EPSG:32633"}, inputs[2:])
    assert freshness.stale_reason(processed, output, gone) == (
        "changed: input raw/aoi.shp (missing), raw/gt.gpkg (missing), raw/p.SAFE (missing)")


def test_unchanged_other_files_do_not_count(root: Path) -> None:
    """A sibling Shapefile or a non-Shapefile sidecar (.qmd) is not part of the input."""
    processed = root / "processed"
    output = processed / "ground_truth" / "gt.tif"
    current = freshness.fingerprint(root, {}, [root / "raw" / "aoi.shp"])
    freshness.write_record(processed, output, current)
    touch(root / "raw" / "other.shp", "changed", 3 * 10**18)
    touch(root / "raw" / "aoi.qmd", "changed", 3 * 10**18)
    assert freshness.stale_reason(processed, output, freshness.fingerprint(root, {}, [root / "raw" / "aoi.shp"])) \
        is None


def test_long_change_lists_are_cut(root: Path) -> None:
    record = {"values": {f"k{i}": i for i in range(5)}, "inputs": {}}
    current = freshness.Fingerprint({f"k{i}": i + 1 for i in range(5)}, {})
    assert freshness.changes(record, current) == "config k0, k1, k2 and 2 more"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 99, "values": {}, "inputs": {}}), "[]"])
def test_unreadable_or_foreign_records_count_as_missing(root: Path, content: str) -> None:
    processed = root / "processed"
    output = processed / "ground_truth" / "gt.tif"
    touch(freshness.record_path(processed, output), content)
    assert freshness.read_record(processed, output) is None
    assert freshness.stale_reason(processed, output, freshness.fingerprint(root, {}, [])) == "no record of its inputs"
