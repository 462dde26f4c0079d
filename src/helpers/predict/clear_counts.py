"""How the pixels of one map were classified with cloud masks: from all dates, from fewer, or not at all.

The scene pass (:mod:`helpers.predict.clear_dates`) gives, per pixel of a combination's map, the
number of dates it used; :func:`helpers.predict.classification.classify_model` counts them per
map for its summary JSON and printed line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ClearCounts:
    """How the pixels of one map were classified.

    Attributes:
        all_dates: Area pixels classified from every date of the combination.
        fewer_dates: Area pixels classified from some of its dates (the others cloudy, shadowed or
            without data).
        not_classified: Area pixels with fewer clear dates than needed (class 0 in the map).
    """

    all_dates: int = 0
    fewer_dates: int = 0
    not_classified: int = 0
    by_count: dict[int, int] = field(default_factory=dict)

    def add(self, used: np.ndarray, area: np.ndarray, n_dates: int) -> None:
        """Count one block: ``used`` dates per pixel (0 = not classified), inside ``area``."""
        inside = used[area]
        histogram = np.bincount(inside, minlength=n_dates + 1)
        self.not_classified += int(histogram[0])
        self.all_dates += int(histogram[n_dates])
        self.fewer_dates += int(histogram[1:n_dates].sum())
        for count, pixels in enumerate(histogram.tolist()):
            if pixels:
                self.by_count[count] = self.by_count.get(count, 0) + int(pixels)

    @property
    def total(self) -> int:
        """Area pixels counted."""
        return self.all_dates + self.fewer_dates + self.not_classified

    def shares(self) -> dict[str, float]:
        """The three counts as shares of the area (0 when the area is empty)."""
        total = max(1, self.total)
        return {"all_dates": self.all_dates / total, "fewer_dates": self.fewer_dates / total,
                "not_classified": self.not_classified / total}

    def as_dict(self) -> dict[str, object]:
        """Counts, shares and the pixels per number of dates used, for the classification summary."""
        return {"pixels_all_dates": self.all_dates, "pixels_fewer_dates": self.fewer_dates,
                "pixels_not_classified": self.not_classified,
                **{f"share_{key}": round(value, 6) for key, value in self.shares().items()},
                "pixels_by_dates_used": {str(k): v for k, v in sorted(self.by_count.items())}}

    def line(self) -> str:
        """``clear: 93.1 % from all dates, 6.2 % from fewer, 0.7 % not classified``."""
        shares = self.shares()
        return (f"{100 * shares['all_dates']:.1f} % from all dates, {100 * shares['fewer_dates']:.1f} % from fewer, "
                f"{100 * shares['not_classified']:.1f} % not classified (clouds, shadows, no data)")
