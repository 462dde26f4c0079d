"""Map figures a person can read: categorical rasters with legend, title, coordinates and scale.

A class map, a change map or a cloud mask saved as a bare palette PNG cannot be read without
the README: which colour is which class, where it lies, how large it is. The figures here are
drawn with matplotlib's Agg canvas (no display, no pyplot state, so they can be drawn from any
thread or script) and show:

* the map in the category colours, decimated by whole pixels (nearest, no blending of classes)
  to at most ``max_size`` pixels along its longer side, so that a full Sentinel-2 scene takes
  well under a second;
* a legend of the categories present in the map (counted on every pixel, not on the
  decimated view), in the order of the category table;
* a title (model, dates or combination, as the caller words it);
* easting/northing in the map CRS on the axes, a scale bar (projected CRS) and a north arrow.

The builder returns the :class:`matplotlib.figure.Figure` before saving, so that tests can
inspect its artists (legend texts, axis labels) instead of pixels.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from helpers.core.io import Categories, atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from rasterio.crs import CRS

MAX_SIZE = 1500
"""Longest side, in map pixels, of the view drawn (the figure is about 1200 px wide at 150 dpi)."""

CLOUD_MASK_CATEGORIES: dict[int, tuple[str, str]] = {
    0: ("clear", "#cfe3c2"),
    1: ("cloud", "#3a7bd5"),
    2: ("cloud shadow", "#404040"),
    255: ("no data", "#ffffff"),
}
"""Values of the cloud masks (``processed/clouds/<DATE>_<LEVEL>_clouds.tif``) and their colours."""

MAP_INCHES = 6.5
"""Longer side of the map in the figure."""

LEGEND_CHAR_INCHES = 0.056
"""Width of one legend character at 8 pt (DejaVu Sans averages about 0.55 em), to size the legend column."""

UNKNOWN_COLOUR = "#000000"
"""Colour of values missing from the category table (named ``value N`` in the legend)."""


def category_colours(categories: Categories) -> np.ndarray:
    """(256, 4) uint8 RGBA lookup table of ``categories``; values without a category are black."""
    table = np.zeros((256, 4), dtype=np.uint8)
    table[:] = [*(int(UNKNOWN_COLOUR[i:i + 2], 16) for i in (1, 3, 5)), 255]
    for value, (_, colour) in categories.items():
        table[int(value)] = [*(int(colour[i:i + 2], 16) for i in (1, 3, 5)), 255]
    return table


def present_values(values: np.ndarray) -> np.ndarray:
    """The distinct values of a uint8 map, counted on every pixel (``bincount``, no sort)."""
    counts = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256)
    return np.flatnonzero(counts)


def legend_entries(categories: Categories, present: np.ndarray) -> list[tuple[str, str]]:
    """(name, colour) of the values present: the table's in table order, then unknown values by value."""
    here = {int(v) for v in present}
    entries = [(name, colour) for value, (name, colour) in categories.items() if int(value) in here]
    entries += [(f"value {v}", UNKNOWN_COLOUR) for v in sorted(here - {int(v) for v in categories})]
    return entries


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) of about a fifth of ``span``."""
    target = span / 5
    if target <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def format_length(metres: float) -> str:
    """``500 m`` or ``2 km``."""
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def map_figure(values: np.ndarray, transform: Affine, crs: CRS | None, categories: Categories, title: str,
               max_size: int = MAX_SIZE) -> Figure:
    """Draw a categorical map as a figure with legend, title, coordinates, scale bar and north arrow.

    Args:
        values: The map (rows, cols), uint8.
        transform: Its affine transform (north-up; a rotated grid is drawn in pixel coordinates).
        crs: Its CRS (None: pixel coordinates, no scale bar).
        categories: ``{value: (name, "#rrggbb")}`` in legend order.
        title: The figure title (wrapped to a few lines).
        max_size: Longest side, in map pixels, of the view drawn.

    Returns:
        The figure (Agg canvas), not yet saved.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    values = np.asarray(values, dtype=np.uint8)
    rows, cols = values.shape
    step = max(1, math.ceil(max(rows, cols) / max_size))
    view = category_colours(categories)[values[::step, ::step]]
    north_up = transform.b == 0 and transform.d == 0 and transform.e < 0 < transform.a
    geographic = crs is not None and crs.is_geographic
    if north_up and crs is not None:
        left, top = transform.c, transform.f
        right, bottom = left + cols * transform.a, top + rows * transform.e
    else:
        left, right, bottom, top = 0.0, float(cols), float(rows), 0.0

    entries = legend_entries(categories, present_values(values))
    # A fixed layout in inches (no tight bounding box: that would draw the figure twice): the map
    # at most MAP_INCHES on its longer side, axis labels left and below, title above, legend right.
    aspect = rows / cols if cols else 1.0
    map_w, map_h = (MAP_INCHES, MAP_INCHES * aspect) if aspect <= 1 else (MAP_INCHES / aspect, MAP_INCHES)
    title_lines = textwrap.wrap(title, max(30, int(map_w / 0.085))) or [""]  # about 0.085 in a character at 10 pt
    legend_w = 0.5 + LEGEND_CHAR_INCHES * max((len(name) for name, _ in entries), default=0) if entries else 0.0
    left_m, bottom_m, top_m = 1.0, 0.75, 0.25 + 0.2 * len(title_lines)
    width, height = left_m + map_w + 0.3 + legend_w, bottom_m + max(map_h, 0.35 * len(entries) + 0.4) + top_m
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    ax = figure.add_axes((left_m / width, bottom_m / height, map_w / width, map_h / height))
    ax.imshow(view, extent=(left, right, bottom, top), interpolation="nearest", origin="upper", aspect="auto")
    ax.set_title("\n".join(title_lines), fontsize=10)
    _label_axes(ax, crs if north_up else None, geographic, (map_w, map_h))
    if north_up and crs is not None and crs.is_projected:
        _scale_bar(ax, right - left, crs)
    _north_arrow(ax)
    handles = [Patch(facecolor=colour, edgecolor="0.4", linewidth=0.5, label=name) for name, colour in entries]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0 + 0.15 / map_w, 1.0), borderaxespad=0.0,
                  fontsize=8, frameon=False, title="legend", title_fontsize=8, alignment="left")
    return figure


def _label_axes(ax: Axes, crs: CRS | None, geographic: bool, inches: tuple[float, float]) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=max(2, int(inches[0] / 1.1))))  # labels never overlap
    ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, int(inches[1] / 1.1))))

    if crs is None:
        ax.set_xlabel("column (px)", fontsize=8)
        ax.set_ylabel("row (px)", fontsize=8)
    elif geographic:
        ax.set_xlabel(f"longitude (°, {crs.to_string()})", fontsize=8)
        ax.set_ylabel(f"latitude (°, {crs.to_string()})", fontsize=8)
    else:
        units = crs.linear_units or "m"
        unit = "m" if units.lower() in ("metre", "meter", "m") else units
        ax.set_xlabel(f"easting ({unit}, {crs.to_string()})", fontsize=8)
        ax.set_ylabel(f"northing ({unit}, {crs.to_string()})", fontsize=8)
    if crs is not None and not geographic:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="y", labelrotation=90)


def _scale_bar(ax: Axes, span: float, crs: CRS) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = nice_length(span)
    if length <= 0:
        return
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    label = format_length(length * factor) if abs(factor - 1.0) < 1e-9 else f"{length:g} {crs.linear_units}"
    bar = AnchoredSizeBar(ax.transData, length, label, loc="lower left", pad=0.4, borderpad=0.6, sep=3,
                          frameon=True, size_vertical=span / 150, fontproperties={"size": 7})
    bar.patch.set_alpha(0.8)
    ax.add_artist(bar)


def _north_arrow(ax: Axes) -> None:
    ax.annotate("N", xy=(0.95, 0.96), xytext=(0.95, 0.84), xycoords="axes fraction", ha="center", va="center",
                fontsize=9, fontweight="bold",
                bbox={"boxstyle": "circle,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
                arrowprops={"arrowstyle": "-|>", "color": "black", "linewidth": 1.5})


def save_figure(figure: Figure, path: str | Path, dpi: int = 150) -> None:
    """Save a figure (format from the suffix), atomically, and free it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    finally:
        figure.clear()


def write_map_figure(path: str | Path, values: np.ndarray, profile: Mapping[str, Any], categories: Categories,
                     title: str) -> None:
    """Draw a categorical map (see :func:`map_figure`) and save it, atomically.

    Args:
        path: The PNG (or PDF, SVG) to write.
        values: The map (rows, cols), uint8.
        profile: Rasterio profile (or any mapping) with the map's ``transform`` and ``crs``.
        categories: ``{value: (name, "#rrggbb")}`` in legend order.
        title: The figure title.
    """
    figure = map_figure(values, profile.get("transform") or Affine.identity(), profile.get("crs"), categories,
                        title)
    save_figure(figure, path)


def write_mask_figure(path: str | Path, mask: np.ndarray, profile: Mapping[str, Any], title: str,
                      categories: Categories = CLOUD_MASK_CATEGORIES) -> None:
    """Draw a cloud mask (0 clear, 1 cloud, 2 shadow, 255 no data) as a readable map and save it.

    Args:
        path: The PNG to write.
        mask: The mask (rows, cols), uint8.
        profile: Rasterio profile with the mask's ``transform`` and ``crs``.
        title: The figure title (e.g. date, level and detector).
        categories: Another value table, if the mask uses other values.
    """
    write_map_figure(path, mask, profile, categories, title)
