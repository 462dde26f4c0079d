"""PNG previews of class maps in the class colours."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from helpers.core.io import atomic_path


def colour_table(colours: Mapping[int, str]) -> np.ndarray:
    """(256, 3) uint8 lookup table from ``{class id: "#rrggbb"}``; unknown ids are black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    for class_id, colour in colours.items():
        table[int(class_id)] = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return table


def write_class_png(path: Path, classes: np.ndarray, colours: Mapping[int, str]) -> None:
    """Write a class map (uint8 ids; 0 and unknown ids black) as a palette PNG, atomically."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(classes, dtype=np.uint8), mode="P")
    image.putpalette(colour_table(colours).ravel().tolist())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
