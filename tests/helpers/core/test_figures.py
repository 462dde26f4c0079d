"""Map figures: legend, title, coordinates, scale bar and north arrow, checked on the figure's artists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from rasterio.crs import CRS

from helpers.core.figures import (
    CLOUD_MASK_CATEGORIES,
    format_length,
    legend_entries,
    map_figure,
    nice_length,
    present_values,
    write_map_figure,
    write_mask_figure,
)

TRANSFORM = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5640000.0)
UTM = CRS.from_epsg(32633)
CATEGORIES = {0: ("outside the area", "#ffffff"), 1: ("Buildings", "#d62728"), 2: ("Grassland", "#98df8a"),
              3: ("Forest / Wood", "#2ca02c")}


def class_map() -> np.ndarray:
    """40 x 60 px: outside in the first rows, Buildings and Forest, no Grassland."""
    values = np.full((40, 60), 3, dtype=np.uint8)
    values[:5] = 0
    values[10:20, 10:30] = 1
    return values


def legend_texts(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_legend_names_the_classes_present_in_table_order() -> None:
    figure = map_figure(class_map(), TRANSFORM, UTM, CATEGORIES, "m_01: combination 0 (20180406, 20180719)")
    assert legend_texts(figure) == ["outside the area", "Buildings", "Forest / Wood"]  # no Grassland in the map
    colours = [tuple(handle.get_facecolor()) for handle in figure.axes[0].get_legend().legend_handles]
    assert colours[1] == pytest.approx((214 / 255, 39 / 255, 40 / 255, 1.0))


def test_values_missing_from_the_table_are_named_by_value() -> None:
    values = class_map()
    values[0, 0] = 7
    assert legend_entries(CATEGORIES, present_values(values))[-1] == ("value 7", "#000000")


def test_title_and_map_coordinates_on_the_axes() -> None:
    figure = map_figure(class_map(), TRANSFORM, UTM, CATEGORIES, "m_01: combination 0 (20180406, 20180719)")
    ax = figure.axes[0]
    assert ax.get_title() == "m_01: combination 0 (20180406, 20180719)"
    assert ax.get_xlabel() == "easting (m, EPSG:32633)" and ax.get_ylabel() == "northing (m, EPSG:32633)"
    assert ax.get_xlim() == (400000.0, 400600.0) and ax.get_ylim() == (5639600.0, 5640000.0)
    figure.canvas.draw()
    labels = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
    assert "400,300" in labels  # plain easting in metres, not an offset or scientific notation


def test_scale_bar_and_north_arrow() -> None:
    figure = map_figure(class_map(), TRANSFORM, UTM, CATEGORIES, "t")
    ax = figure.axes[0]
    bars = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].txt_label.get_text() == "100 m"  # a fifth of 600 m, rounded down
    assert [t.get_text() for t in ax.texts] == ["N"]


def test_large_map_is_drawn_decimated_by_whole_pixels_in_the_category_colours() -> None:
    values = np.zeros((3000, 2000), dtype=np.uint8)
    values[:, 1000:] = 1
    figure = map_figure(values, TRANSFORM, UTM, CATEGORIES, "t", max_size=1000)
    image = next(a for a in figure.axes[0].get_children() if isinstance(a, AxesImage)).get_array()
    assert image.shape == (1000, 667, 4)
    np.testing.assert_array_equal(np.unique(image.reshape(-1, 4), axis=0), [[214, 39, 40, 255], [255, 255, 255, 255]])


def test_map_without_crs_has_pixel_axes_and_no_scale_bar() -> None:
    figure = map_figure(class_map(), Affine.identity(), None, CATEGORIES, "t")
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("column (px)", "row (px)")
    assert not [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]


def test_geographic_map_is_labelled_in_degrees() -> None:
    figure = map_figure(class_map(), Affine(0.001, 0.0, 13.0, 0.0, -0.001, 51.0), CRS.from_epsg(4326), CATEGORIES,
                        "t")
    assert figure.axes[0].get_xlabel() == "longitude (°, EPSG:4326)"


@pytest.mark.parametrize(("span", "length", "text"), [(600.0, 100.0, "100 m"), (35000.0, 5000.0, "5 km"),
                                                       (1300.0, 200.0, "200 m"), (12.0, 2.0, "2 m")])
def test_scale_bar_length_is_round(span: float, length: float, text: str) -> None:
    assert nice_length(span) == length and format_length(length) == text


def test_figure_is_written_atomically_as_png(tmp_path: Path) -> None:
    path = tmp_path / "m_01_combination_0_class.png"
    write_map_figure(path, class_map(), {"transform": TRANSFORM, "crs": UTM}, CATEGORIES, "t")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_cloud_mask_figure_names_clear_cloud_shadow_and_no_data(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    figure = map_figure(mask, TRANSFORM, UTM, CLOUD_MASK_CATEGORIES, "20180406 L1C clouds")
    assert legend_texts(figure) == ["clear", "cloud", "cloud shadow", "no data"]
    path = tmp_path / "20180406_L1C_clouds.png"
    write_mask_figure(path, mask, {"transform": TRANSFORM, "crs": UTM}, "20180406 L1C clouds")
    assert path.read_bytes()[:4] == b"\x89PNG"
