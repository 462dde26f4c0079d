"""Which training tiles the pipeline keeps: sparse ground truth and bands that miss part of the AOI.

The expected tile sets are computed tile by tile with numpy from the generator's design
(GT boxes, AOI polygon), not with the code under test.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
from study_area import (
    GRID_PX,
    GRID_TRANSFORM,
    GT_BOXES,
    TRAINING_DATES,
    StudyArea,
    aoi_polygon,
    band_values,
    centres_inside,
    expected_gt,
    grid_box,
    gt_geometries,
    write_band,
    write_gt,
)

from helpers.core.config import SPLITS
from helpers.core.errors import InputError
from helpers.data import pipeline

SIZE, STRIDE = 8, 9
REFERENCE = TRAINING_DATES[-1]
FARMLAND = 5
FARMLAND_BOX = dict(GT_BOXES)[FARMLAND]


def quiet(message: str) -> None:
    """Swallow the pipeline's progress lines."""


def kept_tiles(labelled: np.ndarray, on_image: np.ndarray, fraction: float) -> set[str]:
    """Endings of the tiles with >= fraction labelled pixels and every pixel on the image."""
    n = (GRID_PX - SIZE) // STRIDE + 1
    kept = set()
    for r in range(n):
        for c in range(n):
            window = np.s_[r * STRIDE:r * STRIDE + SIZE, c * STRIDE:c * STRIDE + SIZE]
            if labelled[window].sum() >= fraction * SIZE * SIZE and on_image[window].all():
                kept.add(f"tile_{r:03d}_{c:03d}")
    return kept


def inside_aoi() -> np.ndarray:
    return centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)


def without_farmland(area: StudyArea) -> np.ndarray:
    """Write the GT without the farmland polygon (a 20 x 48 px gap); returns the labelled pixels."""
    keep = [i for i, (value, _) in enumerate(GT_BOXES) if value != FARMLAND]
    write_gt(area.gt_file, [GT_BOXES[i][0] for i in keep], geometries=[gt_geometries()[i] for i in keep])
    labelled = expected_gt() != 0
    c0, r0, c1, r1 = FARMLAND_BOX
    labelled[r0:r1, c0:c1] = False
    return labelled


def test_sparse_ground_truth_keeps_partly_labelled_tiles(study_area: StudyArea) -> None:
    labelled = without_farmland(study_area)
    fully = kept_tiles(labelled, inside_aoi(), 1.0)
    half = kept_tiles(labelled, inside_aoi(), 0.5)
    assert len(half) == len(fully) + 5, "the tiles half on farmland (column 4) join"
    study_area.write_config({"tiling.min_labelled_fraction": 0.5})
    config = study_area.config()
    lines: list[str] = []
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=lines.append)
    assert set(config.tile_endings_path.read_text().split()) == half
    assert not any("warning" in line for line in lines)
    summary = json.loads(config.tiles_summary_path(REFERENCE, "L1C").read_text())
    assert summary["min_labelled_fraction"] == 0.5 and summary["total_written"] == len(half)
    split = json.loads(config.split_path.read_text())
    partly = [(s, e) for s in SPLITS for e in split[s] if e not in fully]
    subset, ending = partly[0]
    with rasterio.open(config.tiles_dir(REFERENCE, "L1C", subset) / f"{REFERENCE}_L1C_{ending}.tif") as src:
        gt = src.read(src.count)
    assert 0 < (gt == 0).sum() <= SIZE * SIZE // 2, "the unlabelled pixels stay 0 (no loss)"


def test_few_surviving_tiles_are_a_warning_naming_the_setting(study_area: StudyArea) -> None:
    """GT on a 6 x 6 square only: at 50 % one tile of 81 survives (1.2 % < 25 %)."""
    write_gt(study_area.gt_file, [3], geometries=[grid_box(20, 20, 26, 26)])
    study_area.write_config({"tiling.min_labelled_fraction": 0.5})
    config = study_area.config()
    for date in config.training_pool:
        pipeline.clip_sentinel(config, date, say=quiet)
    pipeline.rasterize_shapefile(config, say=quiet)
    pipeline.restrict_water_area(config, say=quiet)
    lines: list[str] = []
    pipeline.save_all_tile_filenames(config, say=lines.append)
    assert config.tile_endings_path.read_text().split() == ["tile_002_002"]
    assert (f"  warning: only 1 of 81 tile positions (1.2 %) are labelled on at least 50 % of their pixels and on "
            f"the image; for sparse ground truth lower [tiling] min_labelled_fraction in {study_area.config_path}"
            in lines)


def test_no_tile_at_the_original_rule_names_the_setting(study_area: StudyArea) -> None:
    write_gt(study_area.gt_file, [3], geometries=[grid_box(20, 20, 26, 26)])
    config = study_area.config()
    for date in config.training_pool:
        pipeline.clip_sentinel(config, date, say=quiet)
    pipeline.rasterize_shapefile(config, say=quiet)
    pipeline.restrict_water_area(config, say=quiet)
    with pytest.raises(InputError, match=re.escape(
            f"{config.gt_path}: no 8x8 tile of the reference date {REFERENCE} is labelled on at least 100 % of its "
            f"pixels and on the image (empty tile set); for sparse ground truth lower [tiling] min_labelled_fraction "
            f"in {study_area.config_path}")):
        pipeline.save_all_tile_filenames(config, say=quiet)
    assert not config.tile_endings_path.exists()


def half_b05(area: StudyArea, date: str) -> None:
    """Rewrite a date's B05 (20 m) with no data left of scene column 48 (grid column 42)."""
    values = band_values("B05", area.date_index(date))
    values[:, :24] = 0
    write_band(area.band_file(date, "B05"), values, 20.0)


def test_a_band_missing_on_part_of_the_reference_removes_its_tiles(study_area: StudyArea) -> None:
    half_b05(study_area, REFERENCE)
    config = study_area.config()
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=quiet)
    labelled = expected_gt() != 0
    on_image = inside_aoi()
    on_image[:, :42] = False
    expected = kept_tiles(labelled, on_image, 1.0)
    assert expected and all(int(e[-3:]) >= 5 for e in expected)
    assert set(config.tile_endings_path.read_text().split()) == expected
    with rasterio.open(config.scene_path(REFERENCE, "L1C")) as src:
        assert (src.read(1)[:, :42] != 0).any(), "band 1 alone would have kept these tiles"


def test_a_band_missing_on_part_of_another_date_drops_its_tiles_there(study_area: StudyArea) -> None:
    other = TRAINING_DATES[0]
    half_b05(study_area, other)
    config = study_area.config()
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=quiet)
    reference = set(config.tile_endings_path.read_text().split())
    assert len(reference) == 77
    summary = json.loads(config.tiles_summary_path(other, "L1C").read_text())
    written = {p.name[len(other) + 5:-4] for s in SPLITS for p in config.tiles_dir(other, "L1C", s).iterdir()}
    assert written == {e for e in reference if int(e[-3:]) >= 5}
    assert summary["kept_on_date"] == summary["total_written"] == len(written) < 77
    for subset in SPLITS:
        for path in config.tiles_dir(other, "L1C", subset).iterdir():
            with rasterio.open(path) as src:
                assert (src.read()[:13] != 0).all(), path.name
