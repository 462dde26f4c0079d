"""The demo's own cloud and shadow layers: the reference for cloud masks and cloud benchmarks.

The demo generator knows where its clouds and shadows are; nothing else does. This module
rebuilds them for a generated demo from its completion marker (seed and size) the way the
generator drew them, so a benchmark or a test can score a cloud mask, or count change under
clouds, against the truth:

* the date plans come from ``random_streams(seed)[4]`` (:func:`~helpers.demo.radiometry.plan_dates`);
* every date renders from its own stream, ``random_streams(seed)[5].spawn(len(plans))`` in plan
  order (as :func:`helpers.demo.demo_data.generate_demo` hands them out);
* :func:`~helpers.demo.radiometry.render_date` draws a cloudy date's clouds first from that stream
  (:func:`~helpers.demo.radiometry.cloud_fields`), so a fresh copy of the stream gives the same clouds.

Whether this still matches the rendered products is tested against the bands themselves (clouds
brighten the blue band, shadows darken the near infrared), so a change to the generator's draw
order shows up as a failing test instead of a silently wrong reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.demo.demo_data import MARKER_NAME, read_marker
from helpers.demo.landscape import random_streams
from helpers.demo.layout import ORIGIN_X, ORIGIN_Y, PIXEL_SIZE
from helpers.demo.radiometry import cloud_fields, plan_dates

__all__ = ["LAYER_THRESHOLD", "CloudLayers", "demo_window", "reference_cloud_layers"]

LAYER_THRESHOLD = 0.3
"""Opacity (cloud) or shadow strength above which a pixel counts as cloud or shadow.

The generator's own cloud cover (``CLOUDY_PIXEL_PERCENTAGE`` of a product) counts opacity above 0.3 too.
"""

_ALIGNMENT_TOLERANCE = 1e-3
"""Largest offset (in pixels) of a grid from the demo's 10 m pixel edges that still counts as aligned."""


@dataclass(frozen=True)
class CloudLayers:
    """The generated clouds and shadows of one cloudy demo date, on one grid.

    Attributes:
        date: The date (YYYYMMDD).
        opacity: Cloud opacity, 0 (none) to 1 (opaque), float32.
        shadow_strength: Cloud-shadow strength, 0 to 1 (the surface is darkened by 0.7 times it), float32.
        cloud: Where the opacity is above the threshold.
        shadow: Where the shadow strength is above the threshold and there is no cloud (a cloud
            hides its own shadow, as in the step-03b masks, which label such a pixel cloud).
        threshold: The threshold the boolean layers were made with.
        size: Side of the demo's full grid in pixels.
        origin: Row and column of the layers' first pixel on the demo's full grid ((0, 0) until cut).
    """

    date: str
    opacity: np.ndarray
    shadow_strength: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    threshold: float
    size: int
    origin: tuple[int, int] = (0, 0)

    @property
    def covered(self) -> np.ndarray:
        """Where there is a cloud or a shadow."""
        return self.cloud | self.shadow

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the layers' grid."""
        return self.cloud.shape

    def cut(self, transform: Affine, shape: tuple[int, int]) -> CloudLayers:
        """The layers on the grid of a processed stack (a scene, a merged NEW stack, a cloud mask).

        The pipeline clips the demo's full grid to the AOI; this takes the matching window
        (views, not copies), found by :func:`demo_window`.

        Args:
            transform: The stack's affine transform.
            shape: The stack's rows and columns.

        Returns:
            The same layers, cut to the stack's grid.

        Raises:
            InputError: If the stack's grid is not a window of the demo's grid, or of these
                layers' grid (when they were cut already).
        """
        rows, cols = demo_window(transform, shape, self.size)
        top, left = rows.start - self.origin[0], cols.start - self.origin[1]
        if top < 0 or left < 0 or top + shape[0] > self.shape[0] or left + shape[1] > self.shape[1]:
            raise InputError(f"a {shape[0]} x {shape[1]} grid at row {rows.start}, column {cols.start} of the "
                             f"demo's grid reaches outside these layers ({self.shape[0]} x {self.shape[1]} "
                             f"at row {self.origin[0]}, column {self.origin[1]})")
        here = (slice(top, top + shape[0]), slice(left, left + shape[1]))
        return dataclasses.replace(
            self, opacity=self.opacity[here], shadow_strength=self.shadow_strength[here],
            cloud=self.cloud[here], shadow=self.shadow[here], origin=(rows.start, cols.start))


def demo_window(transform: Affine, shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """Where a stack's grid lies on the demo's full grid (the one place that knows the offset).

    The demo grid starts at (:data:`~helpers.demo.layout.ORIGIN_X`,
    :data:`~helpers.demo.layout.ORIGIN_Y`) with 10 m pixels; a processed stack is a window of it
    when it has the same pixels, north up, and lies inside it.

    Args:
        transform: The stack's affine transform.
        shape: The stack's rows and columns.
        size: Side of the demo's full grid in pixels (the marker's ``size``).

    Returns:
        Row and column slices of the window on the full grid.

    Raises:
        InputError: If the stack has other pixels, is rotated, is not aligned to the demo's
            pixel edges or reaches outside the demo's grid.
    """
    height, width = (int(n) for n in shape)
    if (abs(transform.a - PIXEL_SIZE) > 1e-6 or abs(transform.e + PIXEL_SIZE) > 1e-6
            or transform.b != 0 or transform.d != 0):
        raise InputError(f"a grid with transform {tuple(transform)[:6]} is not the demo's north-up "
                         f"{PIXEL_SIZE:g} m grid")
    rows_off, cols_off = (ORIGIN_Y - transform.f) / PIXEL_SIZE, (transform.c - ORIGIN_X) / PIXEL_SIZE
    row0, col0 = round(rows_off), round(cols_off)
    if max(abs(rows_off - row0), abs(cols_off - col0)) > _ALIGNMENT_TOLERANCE:
        raise InputError(f"a grid with origin ({transform.c}, {transform.f}) is not aligned to the demo's "
                         f"pixels (origin ({ORIGIN_X}, {ORIGIN_Y}), {PIXEL_SIZE:g} m)")
    if row0 < 0 or col0 < 0 or row0 + height > size or col0 + width > size:
        raise InputError(f"a {height} x {width} grid at row {row0}, column {col0} of the demo's grid reaches "
                         f"outside its {size} x {size} pixels")
    return slice(row0, row0 + height), slice(col0, col0 + width)


def _marker_value(marker: dict[str, Any], key: str, where: str) -> int:
    """An integer entry of the completion marker, or an InputError that names the marker."""
    try:
        return int(marker[key])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}: no valid '{key}'; regenerate the demo (00_make_demo_data.py)") from None


def reference_cloud_layers(config: Config, dates: Iterable[str] | None = None,
                           threshold: float = LAYER_THRESHOLD) -> dict[str, CloudLayers]:
    """The generated cloud and shadow layers of the demo's cloudy dates, on the demo's full grid.

    Only cloudy dates are returned: a requested date of the demo that is missing from the result
    is clear (no clouds, no shadows). Each date costs about as much as rendering its clouds
    (a fraction of a second at the demo's 648 x 648 pixels).

    Args:
        config: The demo's configuration (the dates it was generated with).
        dates: Dates to rebuild (YYYYMMDD); None for every date of the demo.
        threshold: Opacity or shadow strength above which a pixel is cloud or shadow.

    Returns:
        Date -> its layers, for the requested dates that are cloudy, in date order. Cut them to a
        processed stack's grid with :meth:`CloudLayers.cut`.

    Raises:
        InputError: If ``config.raw_dir`` holds no complete demo (no readable completion marker),
            the config's dates are not the ones the demo was generated with, or a requested date
            is not a date of the demo.
    """
    marker_path = config.raw_dir / MARKER_NAME
    marker = read_marker(config)
    if not isinstance(marker, dict):
        raise InputError(f"{marker_path} is missing or unreadable: {config.raw_dir} holds no complete demo written "
                         "by the demo generator, so there are no generated clouds to compare with")
    seed, size = _marker_value(marker, "seed", str(marker_path)), _marker_value(marker, "size", str(marker_path))
    streams = random_streams(seed)
    plans = plan_dates(config, streams[4])
    recorded = marker.get("summary")
    recorded = recorded if isinstance(recorded, dict) else {}
    labels, cloudy = [p.label for p in plans], [p.label for p in plans if p.cloudy]
    if "dates" in recorded and (list(recorded["dates"]) != labels
                                or list(recorded.get("cloudy_dates", cloudy)) != cloudy):
        raise InputError(f"{marker_path}: the demo was generated with other dates than {config.source} names "
                         f"(demo: {', '.join(recorded['dates'])}); use the config it was generated with")
    wanted = set(labels) if dates is None else set(dates)
    unknown = sorted(wanted - set(labels))
    if unknown:
        raise InputError(f"{', '.join(unknown)}: not a date of the demo in {config.raw_dir} "
                         f"(its dates: {', '.join(labels)})")
    layers: dict[str, CloudLayers] = {}
    # One stream per date in plan order, each fresh: render_date draws a cloudy date's clouds first.
    for plan, date_rng in zip(plans, streams[5].spawn(len(plans)), strict=True):
        if plan.label in wanted and plan.cloudy:
            opacity, shadow_strength, _ = cloud_fields(date_rng, size, plan)
            cloud = opacity > threshold
            layers[plan.label] = CloudLayers(plan.label, opacity, shadow_strength, cloud,
                                             (shadow_strength > threshold) & ~cloud, threshold, size)
    return layers
