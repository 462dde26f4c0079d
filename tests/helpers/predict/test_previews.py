"""Category tables of the class and change maps (one table for the GeoTIFF and the PNG figure)."""

from __future__ import annotations

from helpers.core.config import LandCoverClass
from helpers.predict.change_detection import CHANGE_COLOUR, CHANGE_ID, UNSTABLE_COLOUR, UNSTABLE_ID
from helpers.predict.previews import NO_DATA_COLOUR, change_categories, class_categories, class_map_title

CLASSES = (LandCoverClass(1, "Buildings", "#d62728", 10, (1,)), LandCoverClass(3, "Forest", "#2ca02c", 10, (3,)))


def test_class_map_values_are_no_data_then_the_class_table() -> None:
    assert class_categories(CLASSES) == {0: ("outside the area", NO_DATA_COLOUR), 1: ("Buildings", "#d62728"),
                                         3: ("Forest", "#2ca02c")}
    assert list(class_categories(CLASSES, "not classified")) == [0, 1, 3]


def test_change_map_values_name_the_three_categories_and_the_stable_class() -> None:
    categories = change_categories(CLASSES)
    assert categories[1] == ("stable: Buildings", "#d62728") and categories[3] == ("stable: Forest", "#2ca02c")
    assert categories[CHANGE_ID][0].startswith("robust change") and categories[CHANGE_ID][1] == CHANGE_COLOUR
    assert categories[UNSTABLE_ID][0].startswith("unstable") and categories[UNSTABLE_ID][1] == UNSTABLE_COLOUR
    assert categories[0][0].startswith("not evaluated")


def test_class_map_title_names_model_map_and_dates() -> None:
    assert class_map_title("m_01", "combination 2", ["20180406", "20180719"]) == \
        "m_01: combination 2 (20180406, 20180719)"
