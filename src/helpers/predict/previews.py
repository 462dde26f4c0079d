"""Category tables and titles of the prediction maps (GeoTIFF colour tables, PNG figures).

One table per kind of map (``{value: (name, "#rrggbb")}``, see :data:`helpers.core.io.Categories`)
gives both the GeoTIFF's colour table and category names (what a GIS shows) and the PNG
figure's colours and legend (:mod:`helpers.core.figures`), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from helpers.predict.change_detection import CHANGE_COLOUR, CHANGE_ID, UNSTABLE_COLOUR, UNSTABLE_ID

NO_DATA_COLOUR = "#ffffff"
"""Colour of value 0 (outside the area, not classified, not evaluated)."""


class NamedClass(Protocol):
    """A class of a class table (the config's or a run record's)."""

    id: int
    name: str
    colour: str


def class_categories(classes: Iterable[NamedClass], no_data: str = "outside the area") -> dict[int, tuple[str, str]]:
    """The values of a class map: 0 (``no_data``), then the class table in its order."""
    return {0: (no_data, NO_DATA_COLOUR), **{int(c.id): (c.name, c.colour) for c in classes}}


def change_categories(classes: Iterable[NamedClass]) -> dict[int, tuple[str, str]]:
    """The values of the change map of :func:`helpers.predict.change_detection.change_map`.

    Stable pixels keep their ground-truth class (and its colour), so the legend names each as
    ``stable: <class>``; robust change and unstable have their own values.
    """
    categories = {int(c.id): (f"stable: {c.name}", c.colour) for c in classes
                  if int(c.id) not in (CHANGE_ID, UNSTABLE_ID)}
    categories[CHANGE_ID] = ("robust change (all maps agree on another class than the GT)", CHANGE_COLOUR)
    categories[UNSTABLE_ID] = ("unstable (the maps disagree)", UNSTABLE_COLOUR)
    categories[0] = ("not evaluated (no GT, unclassifiable or not classified)", NO_DATA_COLOUR)
    return categories


def class_map_title(model: str, label: str, dates: Sequence[str]) -> str:
    """Title of a class map figure: the model, which map (``combination 3``) and its dates."""
    return f"{model}: {label} ({', '.join(dates)})"

