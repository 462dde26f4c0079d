"""Scene stacks for the cloud-mask tests: written as step 01 writes them, an SCL layer, a drawn cloud."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from scipy import ndimage

from helpers.core.config import Config


def drawn_scene(size: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 10 m TOA scene of vegetation and soil parcels with one textured cloud and its shadow.

    Returns:
        uint16 DN of B02, B03, B04, B08, B11, B12; the cloud (opacity > 0.5) and the shadow
        (shade > 0.5 outside any cloud) as boolean images.
    """
    rng = np.random.default_rng(seed)
    vegetation = np.array([0.075, 0.065, 0.045, 0.30, 0.17, 0.08])
    soil = np.array([0.10, 0.10, 0.12, 0.22, 0.28, 0.20])
    parcels = ndimage.zoom(rng.random((8, 8)), size / 8, order=0) > 0.5
    ground = np.where(parcels, vegetation[:, None, None], soil[:, None, None])
    ground *= 1 + 0.05 * rng.standard_normal((1, size, size))
    rows, cols = np.indices((size, size))
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 30)
    distance = np.hypot(rows - size / 3, cols - size / 3) / (0.15 * size) + 0.3 * texture / texture.std()
    opacity = np.clip((1.6 - distance) / 0.5, 0, 1)
    shade = ndimage.shift(opacity, (0.2 * size, 0.15 * size), order=1)
    cloud_toa = np.array([0.45, 0.42, 0.41, 0.43, 0.30, 0.20])
    toa = (1 - opacity) * ground * (1 - 0.65 * shade) + opacity * cloud_toa[:, None, None]
    return np.clip(np.rint(toa * 10000), 1, 65535).astype(np.uint16), opacity > 0.5, (shade > 0.5) & (opacity < 0.1)


DATE = "20220419"
TRANSFORM = Affine(10.0, 0.0, 400060.0, 0.0, -10.0, 5639900.0)
CRS = "EPSG:32633"


def write_scene(config: Config, level: str, layers: dict[str, np.ndarray], shape: tuple[int, int],
                names: tuple[str, ...] | None = None) -> Path:
    """A scene stack as step 01 writes it: every layer of the level (named), those not given = 500."""
    names = names or config.bands(level)
    data = np.full((len(names), *shape), 500, dtype=np.uint16)
    for band, values in layers.items():
        data[names.index(band)] = values
    path = config.scene_path(DATE, level)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=len(names),
                       dtype="uint16", crs=CRS, transform=TRANSFORM) as dst:
        dst.write(data)
        dst.descriptions = names
    return path


def scl_layer() -> np.ndarray:
    """A 6 x 8 SCL: no data (0) in the first column, one row each of shadow (3), cloud (8, 9, 10), snow (11)."""
    scl = np.full((6, 8), 4, dtype=np.uint16)  # vegetation
    scl[1], scl[2, :4], scl[2, 4:], scl[3], scl[4, :2] = 3, 8, 9, 10, 11
    scl[:, 0] = 0
    return scl
