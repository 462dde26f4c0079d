"""Step 03b on hand-made scene stacks: the mask's grid, values, summary, freshness and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from cloud_scenes import DATE, drawn_scene, scl_layer, write_scene

from helpers.core.config import L1C_BANDS, L2A_BANDS, Config, load_config
from helpers.core.errors import InputError
from helpers.data.cloud_detectors import CLEAR, CLOUD, NODATA, SHADOW
from helpers.data.clouds import (
    class_counts,
    class_shares,
    cloud_masks,
    mask_figure_path,
    mask_summary_path,
    shares_line,
)


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    return load_config(write_config())


def test_l2a_mask_from_scl_on_the_scene_grid(config: Config) -> None:
    scene = write_scene(config, "L2A", {"SCL": scl_layer()}, (6, 8))
    lines: list[str] = []
    result = cloud_masks(config, DATE, "L2A", say=lines.append)
    assert result.output == config.cloud_mask_path(DATE, "L2A") == config.processed_dir / "clouds" / (
        f"{DATE}_L2A_clouds.tif")
    with rasterio.open(result.output) as mask_file, rasterio.open(scene) as scene_file:
        assert (mask_file.crs, mask_file.transform, mask_file.shape) == (scene_file.crs, scene_file.transform,
                                                                         scene_file.shape)
        assert mask_file.dtypes == ("uint8",) and mask_file.nodata == NODATA
        mask = mask_file.read(1)
        assert mask_file.tags()["DETECTOR"] == "scl"
    expected = np.full((6, 8), CLEAR)
    expected[1], expected[2], expected[3] = SHADOW, CLOUD, CLOUD
    expected[:, 0] = NODATA
    assert mask.tolist() == expected.tolist()
    assert mask_figure_path(config, DATE, "L2A").stat().st_size > 0  # the map (drawn by helpers.core.figures)
    assert "<Category>cloud</Category>" in Path(f"{result.output}.aux.xml").read_text()  # names for a GIS
    summary = json.loads(mask_summary_path(config, DATE, "L2A").read_text())
    assert summary["pixels"] == {"clear": 21, "cloud": 14, "shadow": 7, "no data": 6}
    assert summary["shares"]["cloud"] == pytest.approx(14 / 42, abs=1e-6)
    assert lines[-1].startswith(f"  wrote {DATE}_L2A_clouds.tif: clear 50.0 %, cloud 33.3 %, shadow 16.7 %")


def test_snow_is_cloud_when_asked(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config({"clouds.mask_snow": True}))
    write_scene(config, "L2A", {"SCL": scl_layer()}, (6, 8))
    with rasterio.open(cloud_masks(config, DATE, "L2A", say=lambda _: None).output) as src:
        assert (src.read(1)[4, 1:2] == CLOUD).all() and (src.read(1)[4, 2:] == CLEAR).all()


def test_the_mask_is_rebuilt_only_when_its_scene_or_detector_changes(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config())
    write_scene(config, "L2A", {"SCL": scl_layer()}, (6, 8))
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    assert not cloud_masks(config, DATE, "L2A", say=quiet).skipped
    assert cloud_masks(config, DATE, "L2A", say=quiet).skipped
    assert not cloud_masks(config, DATE, "L2A", force=True, say=quiet).skipped
    snow = load_config(write_config({"clouds.mask_snow": True}))
    lines: list[str] = []
    assert not cloud_masks(snow, DATE, "L2A", say=lines.append).skipped
    assert any("changed: config clouds.mask_snow" in line for line in lines)


def test_l1c_mask_with_the_cnn(config: Config) -> None:
    layers, cloud, shadow = drawn_scene()
    write_scene(config, "L1C", dict(zip(("B02", "B03", "B04", "B08", "B11", "B12"), layers, strict=True)),
                cloud.shape)
    with rasterio.open(cloud_masks(config, DATE, "L1C", say=lambda _: None).output) as src:
        mask = src.read(1)
        assert src.tags()["DETECTOR"] == "ukis-csmask"
    assert np.sum((mask == CLOUD) & cloud) / cloud.sum() >= 0.8
    assert np.sum((mask == SHADOW) & shadow) / shadow.sum() >= 0.8


def test_class_shares_by_hand() -> None:
    mask = np.array([[CLEAR, CLEAR, CLOUD, SHADOW], [NODATA, NODATA, CLEAR, CLOUD]], dtype=np.uint8)
    assert class_counts(mask) == {"clear": 3, "cloud": 2, "shadow": 1, "no data": 2}
    assert class_shares(mask) == pytest.approx({"clear": 0.5, "cloud": 1 / 3, "shadow": 1 / 6, "no data": 0.25})
    assert shares_line(class_shares(mask)) == ("clear 50.0 %, cloud 33.3 %, shadow 16.7 % of the pixels with data; "
                                               "no data 25.0 %")
    assert class_shares(np.full((2, 2), NODATA, dtype=np.uint8)) == {"clear": 0.0, "cloud": 0.0, "shadow": 0.0,
                                                                     "no data": 1.0}


# ---------------------------------------------------------------------- bad input
def test_a_stack_without_a_needed_layer_is_refused_and_nothing_written(config: Config) -> None:
    names = tuple(b for b in L1C_BANDS if b != "B11")
    scene = write_scene(config, "L1C", {}, (4, 4), names=names)
    with pytest.raises(InputError, match=rf"^{scene}: no layer B11 \(the ukis-csmask cloud detector needs B02, .*"):
        cloud_masks(config, DATE, "L1C", say=lambda _: None)
    assert not (config.processed_dir / "clouds").exists()


def test_a_stack_with_the_wrong_layer_count_is_refused(config: Config) -> None:
    scene = write_scene(config, "L2A", {"SCL": np.full((4, 4), 4)}, (4, 4), names=(*L2A_BANDS, "EXTRA"))
    with pytest.raises(InputError, match=rf"^{scene}: has 18 layers, level needs 17"):
        cloud_masks(config, DATE, "L2A", say=lambda _: None)


def test_a_missing_scene_names_step_01(config: Config) -> None:
    with pytest.raises(InputError, match=rf"_L1C_all_bands.tif: missing input \(run 01_clip_sentinel.py {DATE} L1C"):
        cloud_masks(config, DATE, "L1C", say=lambda _: None)


def test_an_unknown_detector_is_a_config_error(write_config: Callable[..., Path]) -> None:
    with pytest.raises(InputError, match=r"config key 'clouds.detector_l1c': 'scl' is not a L1C detector"):
        load_config(write_config({"clouds.detector_l1c": "scl"}))
    with pytest.raises(InputError, match=r"config key 'clouds.mask_snow': expected bool"):
        load_config(write_config({"clouds.mask_snow": "yes"}))
