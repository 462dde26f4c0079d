"""Step 04 with cloud masks: training labels leave out the cloudy and shadowed pixels (``clouds.mask_training``)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from study_area import StudyArea

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.data import pipeline

DATE = "20160403"


def quiet(message: str) -> None:
    """Swallow the pipeline's progress lines."""


def _prepared(area: StudyArea, mask_training: bool) -> Config:
    area.write_config({"clouds.mask_training": mask_training})
    config = area.config()
    for date in config.training_pool:
        pipeline.clip_sentinel(config, date, say=quiet)
    pipeline.rasterize_shapefile(config, say=quiet)
    pipeline.restrict_water_area(config, say=quiet)
    return config


def _write_mask(config: Config, values: np.ndarray) -> None:
    with rasterio.open(config.scene_path(DATE, "L1C")) as src:
        profile = {"driver": "GTiff", "height": src.height, "width": src.width, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform}
    path = config.cloud_mask_path(DATE, "L1C")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)


def _gt_layer(config: Config) -> np.ndarray:
    with rasterio.open(config.merged_path(DATE, "L1C", "TRAIN")) as src:
        return src.read(src.count)


def test_training_labels_drop_cloudy_and_shadowed_pixels(study_area: StudyArea) -> None:
    config = _prepared(study_area, mask_training=True)
    with rasterio.open(config.gt_path) as src:
        gt = src.read(1)
    mask = np.zeros(gt.shape, dtype=np.uint8)
    mask[10:30, 10:40] = 1  # cloud
    mask[50:60, 20:70] = 2  # shadow
    mask[70:75, :] = 255  # no data
    _write_mask(config, mask)
    pipeline.merge_tifs(config, DATE, "L1C", "TRAIN", say=quiet)
    np.testing.assert_array_equal(_gt_layer(config), np.where(mask == 0, gt, 0))
    assert gt[mask != 0].any(), "the masked parts had labels"
    lines: list[str] = []
    mask[10:30, 10:40] = 0  # a changed mask rebuilds the stack
    _write_mask(config, mask)
    pipeline.merge_tifs(config, DATE, "L1C", "TRAIN", say=lines.append)
    assert not any("up to date" in line for line in lines)
    np.testing.assert_array_equal(_gt_layer(config), np.where(mask == 0, gt, 0))


def test_without_the_option_the_labels_stay_and_no_mask_is_needed(study_area: StudyArea) -> None:
    config = _prepared(study_area, mask_training=False)
    pipeline.merge_tifs(config, DATE, "L1C", "TRAIN", say=quiet)
    with rasterio.open(config.gt_path) as src:
        np.testing.assert_array_equal(_gt_layer(config), src.read(1))


def test_the_option_needs_the_mask(study_area: StudyArea) -> None:
    config = _prepared(study_area, mask_training=True)
    with pytest.raises(InputError, match=r"20160403_L1C_clouds\.tif.*run 03b_cloud_masks\.py 20160403 L1C first"):
        pipeline.merge_tifs(config, DATE, "L1C", "TRAIN", say=quiet)
    assert not config.merged_path(DATE, "L1C", "TRAIN").exists()
