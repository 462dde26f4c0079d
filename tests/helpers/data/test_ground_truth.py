"""GT rasterisation, NDWI shoreline masking and the area mask."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import MultiPolygon, Point, Polygon, box
from study_area import (
    GRID_PX,
    GRID_TRANSFORM,
    GT_BOXES,
    SHORE_A_COLS,
    SHORE_B_COLS,
    TRAINING_DATES,
    StudyArea,
    aoi_polygon,
    centres_inside,
    expected_gt,
    expected_min_ndwi,
    grid_box,
    gt_geometries,
    scene_xy,
    write_gt,
    write_vector,
)

from helpers.data import pipeline
from helpers.core.config import Config, format_threshold
from helpers.core.errors import InputError
from helpers.core.grid import SceneGrid, grid_from_bounds
from helpers.data.ground_truth import (
    area_mask,
    mask_shoreline,
    min_ndwi_at,
    ndwi,
    rasterize_ground_truth,
    scene_area_mask,
)

THRESHOLDS = (-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6)
WATER, UNCLASSIFIABLE = 7, 8


def quiet(message: str) -> None:
    """Swallow the pipeline's progress lines."""


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        assert src.transform == GRID_TRANSFORM and src.crs.to_epsg() == 32633
        return src.read(1)


def prepare(area: StudyArea) -> Config:
    """Steps 01 (training pool), 02, 02b and 03 on an area, in-process."""
    config = area.config()
    for date in config.training_pool:
        pipeline.clip_sentinel(config, date, say=quiet)
    pipeline.rasterize_shapefile(config, say=quiet)
    pipeline.restrict_water_area(config, say=quiet)
    pipeline.create_area_tif(config, say=quiet)
    return config


@pytest.fixture(scope="module")
def prepared(study_template: StudyArea, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The standard area after steps 01, 02, 02b and 03 (read-only for the tests).

    Returns:
        Its config.
    """
    return prepare(study_template.copy_to(tmp_path_factory.mktemp("gt")))


def scene_grid(config: Config) -> SceneGrid:
    return grid_from_bounds(aoi_polygon().bounds, config.crs, config.resolution)


# ---------------------------------------------------------------------- rasterisation
def test_rasterised_class_counts(prepared: Config) -> None:
    gt = read_band(prepared.gt_rasterized_path)
    assert gt.dtype == np.uint8
    np.testing.assert_array_equal(gt, expected_gt())
    counts = np.bincount(gt.ravel(), minlength=9)
    # boxes of GT_BOXES, class 8 painted over class 2, the 9 x 9 hole cut out of class 4
    assert counts.tolist() == [81, 28 * 36, 28 * 36 - 16, 28 * 36, 20 * 48 - 81, 20 * 48, 10 * 48, 34 * 48, 16]


def test_later_polygons_win(study_area: StudyArea) -> None:
    config = study_area.config()
    shapes = gt_geometries()
    values = [value for value, _ in GT_BOXES]
    write_gt(study_area.gt_file, values[-1:] + values[:-1], geometries=shapes[-1:] + shapes[:-1])
    gt = rasterize_ground_truth(config, scene_grid(config))
    assert (gt == UNCLASSIFIABLE).sum() == 0, "drawn first, the unclassifiable square is covered by class 2"
    assert (gt == 2).sum() == 28 * 36


def test_string_attribute_is_mapped_through_gt_values(study_area: StudyArea) -> None:
    names = ["building", "grass", "forest", "settlement", "farm", "industry", "water", "unknown"]
    changes = {f"classes.{i}.gt_values": [name] for i, name in enumerate(names)}
    changes["classes.6.gt_values"] = ["water", "7"]  # digit strings compare as numbers
    changes["ground_truth.attribute"] = "fclass"
    study_area.write_config(changes)
    labels = [*names[:6], "7", names[7]]
    write_gt(study_area.gt_file, labels, attribute="fclass")
    config = study_area.config()
    np.testing.assert_array_equal(rasterize_ground_truth(config, scene_grid(config)), expected_gt())


def test_pixel_centre_rule_and_multipolygons(study_area: StudyArea) -> None:
    config = study_area.config()
    triangle = Polygon([scene_xy(10.4, 12.6), scene_xy(50.7, 20.2), scene_xy(30.3, 60.9)])
    square = box(*scene_xy(70.3, 80.6), *scene_xy(80.6, 70.3))
    write_gt(study_area.gt_file, [3], geometries=[MultiPolygon([triangle, square])])
    gt = rasterize_ground_truth(config, scene_grid(config))
    expected = centres_inside(triangle.union(square), GRID_TRANSFORM, GRID_PX, GRID_PX)
    np.testing.assert_array_equal(gt == 3, expected)
    assert (gt[expected] == 3).all() and (gt[~expected] == 0).all()


def test_gt_in_another_crs_is_reprojected(study_area: StudyArea) -> None:
    config = study_area.config()
    frame_crs = "EPSG:3035"
    shape = grid_box(10.25, 10.25, 40.75, 30.75)
    reprojected = gpd.GeoSeries([shape.segmentize(20)], crs=config.crs).to_crs(frame_crs)
    write_vector(study_area.gt_file, list(reprojected), crs=frame_crs, ATKIS_mod=[5])
    gt = rasterize_ground_truth(config, scene_grid(config))
    expected = np.zeros((GRID_PX, GRID_PX), dtype=bool)
    expected[10:31, 10:41] = True
    np.testing.assert_array_equal(gt == 5, expected)


def test_gt_without_the_attribute(study_area: StudyArea) -> None:
    write_gt(study_area.gt_file, attribute="CLASS")
    config = study_area.config()
    with pytest.raises(InputError, match=re.escape(f"{study_area.gt_file}: ground truth has no attribute "
                                                   "'ATKIS_mod' (attributes: CLASS)")):
        rasterize_ground_truth(config, scene_grid(config))


def test_gt_values_not_in_the_class_table(study_area: StudyArea) -> None:
    write_gt(study_area.gt_file, [1, 2, 3, 4, 12, 6, 7, 9])
    config = study_area.config()
    with pytest.raises(InputError, match=re.escape(f"{study_area.gt_file}: 'ATKIS_mod' values not in the "
                                                   "config's class table: 12, 9")):
        rasterize_ground_truth(config, scene_grid(config))


def test_non_polygon_gt(study_area: StudyArea) -> None:
    points = [Point(scene_xy(20 + i, 20 + i)) for i in range(3)]
    write_vector(study_area.gt_file, points, ATKIS_mod=[1, 2, 3])
    config = study_area.config()
    with pytest.raises(InputError, match=re.escape(f"{study_area.gt_file}: ground truth has non-polygon "
                                                   "geometries (Point)")):
        rasterize_ground_truth(config, scene_grid(config))


def test_gt_without_crs(study_area: StudyArea) -> None:
    study_area.gt_file.with_suffix(".prj").unlink()
    config = study_area.config()
    with pytest.raises(InputError, match=re.escape(f"{study_area.gt_file}: ground truth has no CRS")):
        rasterize_ground_truth(config, scene_grid(config))


# ---------------------------------------------------------------------- NDWI and shoreline masking
def test_ndwi_values_and_zero_sum() -> None:
    green = np.array([0, 1500, 1000, 3000, 7], dtype=np.uint16)
    nir = np.array([0, 1000, 1500, 1000, 0], dtype=np.uint16)
    np.testing.assert_allclose(ndwi(green, nir), [0.0, 0.2, -0.2, 0.5, 1.0])
    assert ndwi(green, nir).dtype == np.float64


def test_mask_shoreline_by_hand() -> None:
    gt = np.array([[7, 7, 7], [2, 7, 8], [7, 0, 7]], dtype=np.uint8)
    minimum = np.array([0.5, -0.2, 0.1, 0.0, -0.5, 0.3])  # the six water pixels in row-major order
    low, zero, high = mask_shoreline(gt, minimum, [-0.2, 0.0, 0.3], WATER, UNCLASSIFIABLE)
    np.testing.assert_array_equal(low.gt, [[7, 7, 7], [2, 7, 8], [8, 0, 7]])
    np.testing.assert_array_equal(zero.gt, [[7, 8, 7], [2, 7, 8], [8, 0, 7]])
    np.testing.assert_array_equal(high.gt, [[7, 8, 8], [2, 8, 8], [8, 0, 7]])
    assert [(r.threshold, r.water_kept, r.water_total) for r in (low, zero, high)] == [
        (-0.2, 5, 6), (0.0, 4, 6), (0.3, 2, 6)]
    assert zero.share_kept == pytest.approx(4 / 6)
    np.testing.assert_array_equal(gt, [[7, 7, 7], [2, 7, 8], [7, 0, 7]], err_msg="the input must not change")


def test_min_ndwi_over_the_scenes(prepared: Config) -> None:
    gt = read_band(prepared.gt_rasterized_path)
    water = gt == WATER
    scenes = [prepared.scene_path(date) for date in prepared.training_pool]
    grid = scene_grid(prepared)
    minimum = min_ndwi_at(water, scenes, 3, 8, grid, block=7)
    np.testing.assert_array_equal(minimum, expected_min_ndwi([0, 1])[water])
    np.testing.assert_array_equal(min_ndwi_at(water, scenes[1:], 3, 8, grid), expected_min_ndwi([1])[water])


def test_water_masks_match_a_hand_computation(prepared: Config) -> None:
    raw = read_band(prepared.gt_rasterized_path)
    minimum = expected_min_ndwi([0, 1])
    # shoreline A: NDWI -0.2 / +0.2, shoreline B: +0.6 / +0.2, lake +0.5 on both dates
    rows = slice(36, None)
    shore_a = (rows, slice(SHORE_A_COLS[0] - 6, SHORE_A_COLS[1] - 6))
    shore_b = (rows, slice(SHORE_B_COLS[0] - 6, SHORE_B_COLS[1] - 6))
    lake = (rows, slice(SHORE_B_COLS[1] - 6, None))
    assert (minimum[shore_a] == -0.2).all() and (minimum[shore_b] == 0.2).all() and (minimum[lake] == 0.5).all()
    water_total = 34 * 48
    kept_by_hand = {-0.6: water_total, -0.4: water_total, -0.2: water_total, 0.0: water_total - 96,
                    0.2: water_total - 96, 0.4: water_total - 192, 0.6: 0}
    summary = json.loads((prepared.gt_dir / "water_mask_summary.json").read_text())
    assert summary["dates"] == list(TRAINING_DATES) and summary["chosen_threshold"] == "0.0"
    for threshold in THRESHOLDS:
        masked = read_band(prepared.gt_masked_path(threshold))
        expected = raw.copy()
        expected[(raw == WATER) & (minimum < threshold)] = UNCLASSIFIABLE
        np.testing.assert_array_equal(masked, expected, err_msg=f"T={threshold}")
        assert (masked == WATER).sum() == kept_by_hand[threshold]
        assert summary["thresholds"][format_threshold(threshold)]["water_kept"] == kept_by_hand[threshold]
        assert summary["thresholds"][format_threshold(threshold)]["water_total"] == water_total
        changed = masked != raw
        assert (raw[changed] == WATER).all() and (masked[changed] == UNCLASSIFIABLE).all()
    np.testing.assert_array_equal(read_band(prepared.gt_path), read_band(prepared.gt_masked_path(0.0)))


def test_every_image_counts(study_area: StudyArea) -> None:
    """With only the second date, shoreline A (-0.2 on the first date) stays water at T = 0."""
    study_area.write_config({"water_mask.dates": [TRAINING_DATES[1]]})
    config = prepare(study_area)
    raw = read_band(config.gt_rasterized_path)
    np.testing.assert_array_equal(read_band(config.gt_path), raw)
    masked = read_band(config.gt_masked_path(0.4))
    assert (masked == WATER).sum() == 34 * 48 - 2 * 96, "shoreline A and B (both +0.2 on that date) drop at 0.4"


def test_threshold_none_keeps_the_rasterised_gt(study_area: StudyArea) -> None:
    study_area.write_config({"water_mask.threshold": "none", "water_mask.thresholds": [0.0, 0.5]})
    config = prepare(study_area)
    np.testing.assert_array_equal(read_band(config.gt_path), read_band(config.gt_rasterized_path))
    assert sorted(p.name for p in config.gt_dir.glob("gt_water_masked_*.tif")) == [
        "gt_water_masked_0.0.tif", "gt_water_masked_0.5.tif"]
    assert (read_band(config.gt_masked_path(0.5)) == WATER).sum() == 30 * 48, "only the lake (0.5) stays"


# ---------------------------------------------------------------------- area mask
def test_area_mask_by_hand() -> None:
    gt = np.array([[0, 1, 8], [7, 0, 2]], dtype=np.uint8)
    band1 = np.array([[5, 0, 9], [1, 1, 0]], dtype=np.uint16)
    mask = area_mask(gt, band1)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 0, 1], [1, 0, 0]])


def test_scene_area_mask_by_hand() -> None:
    band1 = np.array([[5, 0, 9], [1, 1, 0]], dtype=np.uint16)
    mask = scene_area_mask(band1)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[1, 0, 1], [1, 1, 0]])


def test_default_area_is_the_whole_aoi_where_the_scene_has_data(prepared: Config) -> None:
    """classification_area = "aoi" (default): the GT hole is classified too."""
    assert prepared.classification_area == "aoi"
    area = read_band(prepared.area_path)
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)
    np.testing.assert_array_equal(area, inside.astype(np.uint8))
    assert area.sum() == GRID_PX * GRID_PX - int((~inside).sum())


def test_gt_area_rule_is_labelled_and_inside_the_aoi(study_area: StudyArea) -> None:
    """classification_area = "gt" (the original): only where the GT is labelled."""
    study_area.write_config({"ground_truth.classification_area": "gt"})
    lines: list[str] = []
    config = prepare(study_area)
    pipeline.create_area_tif(config, force=True, say=lines.append)
    area = read_band(config.area_path)
    gt = read_band(config.gt_path)
    inside = centres_inside(aoi_polygon(), GRID_TRANSFORM, GRID_PX, GRID_PX)
    np.testing.assert_array_equal(area, ((gt != 0) & inside).astype(np.uint8))
    pixels = GRID_PX * GRID_PX - 81 - int((~inside).sum())
    assert area.sum() == pixels
    assert lines == ['[03] create area mask (classification_area = "gt": where the GT is labelled and the reference '
                     'scene has data)',
                     f"  wrote area.tif: {pixels:,} px in the area ({100 * pixels / inside.sum():.1f} % of the "
                     f"AOI's {int(inside.sum()):,} px)"]


def test_switching_the_area_rule_rebuilds_the_area(study_area: StudyArea) -> None:
    config = prepare(study_area)
    study_area.write_config({"ground_truth.classification_area": "gt"})
    lines: list[str] = []
    result = pipeline.create_area_tif(study_area.config(), say=lines.append)
    assert not result.skipped
    assert "  out of date, rebuilding area.tif (changed: config ground_truth.classification_area; input " \
           "processed/ground_truth/gt.tif (new))" in lines
    assert read_band(config.area_path)[54:63, 0:9].sum() == 0, "the GT hole left the area"


def test_extra_area_is_written_beside_the_area(study_area: StudyArea) -> None:
    extra_file = study_area.raw / "ground_truth" / "extra" / "extra.shp"
    write_vector(extra_file, [grid_box(60, 60, 90, 90)], id=[1])
    study_area.write_config({"ground_truth.extra_aoi_files": [str(extra_file.relative_to(study_area.root))]})
    config = prepare(study_area)
    extra = read_band(config.extra_area_path)
    expected = np.zeros((GRID_PX, GRID_PX), dtype=np.uint8)
    expected[60:, 60:] = 1
    np.testing.assert_array_equal(extra, expected)
