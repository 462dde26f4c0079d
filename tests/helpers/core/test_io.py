"""Atomic outputs and guarded raster reading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from gdal_pam import category_names

from helpers.core.errors import InputError
from helpers.core.faults import final_of_partial
from helpers.core.io import (
    atomic_path,
    aux_path,
    create_cog,
    create_raster,
    open_raster,
    overview_count,
    read_raster,
    write_json_atomic,
    write_raster,
    write_text_atomic,
)

PROFILE = {"crs": "EPSG:32633", "transform": Affine(10.0, 0.0, 400020.0, 0.0, -10.0, 5639940.0)}


class StepInterruptedError(RuntimeError):
    """Stands for anything that stops a step half-way."""


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_atomic_write_appears_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out" / "result.txt"
    with atomic_path(final) as partial:
        assert partial.parent == final.parent and partial.name.startswith(".result.txt.")
        partial.write_text("done")
        assert not final.exists()
    assert final.read_text() == "done"
    assert listing(tmp_path) == ["out", "out/result.txt"]


def test_failed_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "result.txt"
    with pytest.raises(StepInterruptedError), atomic_path(final) as partial:
        partial.write_text("half")
        raise StepInterruptedError
    assert listing(tmp_path) == []


def test_failed_atomic_write_keeps_the_previous_file(tmp_path: Path) -> None:
    final = tmp_path / "result.json"
    write_json_atomic(final, {"run": 1})
    with pytest.raises(StepInterruptedError), atomic_path(final) as partial:
        partial.write_text("{trunc")
        raise StepInterruptedError
    assert json.loads(final.read_text()) == {"run": 1}
    assert listing(tmp_path) == ["result.json"]


def test_atomic_folder_replaces_or_vanishes(tmp_path: Path) -> None:
    final = tmp_path / "tiles"
    final.mkdir()
    (final / "old.tif").write_text("old")
    with pytest.raises(StepInterruptedError), atomic_path(final) as partial:
        partial.mkdir()
        (partial / "new.tif").write_text("new")
        raise StepInterruptedError
    assert listing(tmp_path) == ["tiles", "tiles/old.tif"]
    with atomic_path(final) as partial:
        partial.mkdir()
        (partial / "new.tif").write_text("new")
    assert listing(tmp_path) == ["tiles", "tiles/new.tif"]


def test_write_raster_failing_half_way_leaves_nothing(tmp_path: Path) -> None:
    data = np.ones((2, 5, 5), dtype=np.uint16)
    with pytest.raises(IndexError, match="band index: 3"):
        write_raster(tmp_path / "stack.tif", data, PROFILE, descriptions=["a", "b", "c"])  # band 3 does not exist
    assert listing(tmp_path) == []


def test_text_and_json_round_trip(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.txt", "tile_000_001\n")
    write_json_atomic(tmp_path / "b.json", {"written": {"train": 3}, "share": 0.25})
    assert (tmp_path / "a.txt").read_text() == "tile_000_001\n"
    assert json.loads((tmp_path / "b.json").read_text()) == {"written": {"train": 3}, "share": 0.25}


@pytest.mark.parametrize("shape", [(5, 7), (3, 300, 260)])
def test_write_raster_is_lossless_and_georeferenced(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.random.default_rng(3).integers(0, 65535, size=shape, dtype=np.uint16)
    bands = 1 if data.ndim == 2 else shape[0]
    write_raster(tmp_path / "r.tif", data, PROFILE, descriptions=[f"L{i}" for i in range(1, bands + 1)],
                 tags={"DATE": 20160403})
    read, profile = read_raster(tmp_path / "r.tif")
    np.testing.assert_array_equal(read, data.reshape((-1, *shape[-2:])))
    assert profile["transform"] == PROFILE["transform"] and profile["crs"].to_epsg() == 32633
    assert profile["dtype"] == "uint16"
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.tags()["DATE"] == "20160403"
        assert src.descriptions == tuple(f"L{i}" for i in range(1, bands + 1))
    first, _ = read_raster(tmp_path / "r.tif", 1)
    np.testing.assert_array_equal(first, read[0])


def test_missing_raster_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.tif'}: file not found")):
        read_raster(tmp_path / "nope.tif")


def test_junk_raster_is_named(tmp_path: Path) -> None:
    path = tmp_path / "T33UVS_20160403T101022_B04.jp2"
    path.write_bytes(b"\xff\x4f\xff\x51 definitely not JPEG 2000" * 10)
    with pytest.raises(InputError, match=re.escape(f"{path}: not a readable raster")):
        read_raster(path)
    with pytest.raises(InputError, match=re.escape(str(path))), open_raster(path):
        pass


def test_truncated_raster_is_named(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    write_raster(path, np.random.default_rng(0).integers(0, 60000, (3, 300, 300), dtype=np.uint16), PROFILE)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(InputError, match=re.escape(f"{path}: ") + "(corrupt raster data|not a readable raster)"):
        read_raster(path)


def test_damaged_intermediate_names_the_step_that_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "processed" / "sentinel" / "20160403_L1C_all_bands.tif"
    write_raster(path, np.random.default_rng(0).integers(0, 60000, (4, 600, 600), dtype=np.uint16), PROFILE)
    content = bytearray(path.read_bytes())  # 20 KB overwritten inside the stack, as in the audit
    content[len(content) // 2:len(content) // 2 + 20_000] = np.random.default_rng(7).bytes(20_000)
    path.write_bytes(bytes(content))
    with pytest.raises(InputError, match=re.escape(f"{path}: corrupt raster data (") + r".*"
                       + re.escape("); rebuild it with 01_clip_sentinel.py 20160403 L1C --force")):
        read_raster(path)


def test_partial_names_map_back_to_the_destination(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "gt.tif") as partial:
        assert final_of_partial(partial) == tmp_path / "gt.tif"
        assert final_of_partial(partial.with_name(partial.name + ".aux.xml")) == tmp_path / "gt.tif"
        partial.write_text("x")
    assert final_of_partial(tmp_path / "gt.tif") is None
    assert final_of_partial(tmp_path / ".gt.tif.1234.partial") == tmp_path / "gt.tif"  # the older form


CATEGORIES = {0: ("outside the area", "#ffffff"), 1: ("Buildings", "#d62728"), 3: ("Forest & <Wood>", "#2ca02c")}


def test_class_map_carries_colour_table_and_category_names_gdal_reads(tmp_path: Path) -> None:
    path = tmp_path / "m_class.tif"
    values = np.array([[0, 1], [3, 1]], dtype=np.uint8)
    write_raster(path, values, PROFILE, ["class"], None, CATEGORIES)
    with rasterio.open(path) as src:
        colours = src.colormap(1)
        np.testing.assert_array_equal(src.read(1), values)
    assert (colours[0], colours[1], colours[3]) == ((255, 255, 255, 255), (214, 39, 40, 255), (44, 160, 44, 255))
    assert category_names(path) == ["outside the area", "Buildings", "", "Forest & <Wood>"]
    assert listing(tmp_path) == ["m_class.tif", "m_class.tif.aux.xml"]  # no partial left behind


def test_colour_table_needs_one_integer_band(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a colour table needs one uint8 or uint16 band, not 1 x float32"):
        write_raster(tmp_path / "c.tif", np.zeros((4, 4), dtype=np.float32), PROFILE, categories=CATEGORIES)
    assert listing(tmp_path) == []


def test_interrupted_class_map_leaves_neither_map_nor_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "m_class.tif"
    with pytest.raises(StepInterruptedError), create_raster(path, (4, 4), 1, "uint8", PROFILE, categories=CATEGORIES):
        raise StepInterruptedError
    assert listing(tmp_path) == []
    assert not aux_path(path).exists()


@pytest.mark.parametrize(("shape", "levels"), [((40, 50), 1), ((600, 300), 2), ((2828, 3500), 4)])
def test_overviews_reach_one_tile(shape: tuple[int, int], levels: int) -> None:
    assert overview_count(shape) == levels


def test_probability_map_is_a_cloud_optimized_geotiff_with_overviews(tmp_path: Path) -> None:
    path = tmp_path / "m_probabilities.tif"
    data = np.random.default_rng(0).random((3, 300, 520), dtype=np.float32)
    with create_cog(path, (300, 520), 3, "float32", PROFILE, ["a", "b", "c"], {"MODEL": "m"}) as dst:
        dst.write(data[:, :150], window=rasterio.windows.Window(0, 0, 520, 150))
        dst.write(data[:, 150:], window=rasterio.windows.Window(0, 150, 520, 150))
        assert not path.exists()
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
        assert src.overviews(1) == [2, 4]
        assert (src.crs.to_epsg(), src.transform) == (32633, PROFILE["transform"])
        assert src.descriptions == ("a", "b", "c") and src.tags()["MODEL"] == "m"
        np.testing.assert_array_equal(src.read(), data)
    assert listing(tmp_path) == ["m_probabilities.tif"]  # the staging GeoTIFF is gone


def test_interrupted_cog_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(StepInterruptedError), create_cog(tmp_path / "m_confidence.tif", (10, 10), 1, "float32",
                                                          PROFILE):
        raise StepInterruptedError
    assert listing(tmp_path) == []
