"""Cloud and cloud-shadow detectors behind one small interface (used by step 03b).

A detector reads a few named layers of a scene stack (uint16 as step 01 writes them: DN =
reflectance x 10000 with the radiometric offset already removed, 0 = no data) and returns one
uint8 mask on the same grid: :data:`CLEAR`, :data:`CLOUD`, :data:`SHADOW` or :data:`NODATA`.
Three are available (:data:`DETECTORS`), each chosen per level in ``[clouds]`` of the config:

* ``scl`` (Level-2A): the product's own scene classification layer, already in the L2A stacks.
* ``ukis-csmask`` (Level-1C and Level-2A): a CNN for clouds and shadows (Wieland et al. 2019)
  whose ONNX models ship inside the PyPI wheel, so nothing is downloaded at run time.
* ``s2cloudless`` (Level-1C): Sentinel Hub's pixel-wise LightGBM model; clouds only, and not
  installed by ``requirements.txt`` (it pulls in ``sentinelhub`` and OpenCV); kept so that it
  can be compared (``benchmarks/clouds.py``) and chosen where it is installed.

Another detector is added by writing a class with ``name``, ``levels``, ``bands`` and
``predict`` and listing it in :data:`DETECTORS` and in
:data:`helpers.core.config_schema.CLOUD_DETECTORS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import ClassVar, Protocol

import numpy as np

from helpers.core.config_schema import CloudSettings
from helpers.core.errors import InputError

CLEAR, CLOUD, SHADOW, NODATA = 0, 1, 2, 255
"""Values of a cloud mask."""
MASK_CLASSES: dict[int, str] = {CLEAR: "clear", CLOUD: "cloud", SHADOW: "shadow", NODATA: "no data"}
"""Mask value -> name, in legend order."""
REFLECTANCE_SCALE = 10000.0
"""DN per unit reflectance in the stacks (Level-1C TOA and Level-2A BOA alike)."""

SCL_SHADOW: tuple[int, ...] = (3,)
"""SCL classes that are cloud shadow."""
SCL_CLOUD: tuple[int, ...] = (8, 9, 10)
"""SCL classes that are cloud: medium and high probability, thin cirrus."""
SCL_SNOW: tuple[int, ...] = (11,)
"""SCL snow/ice: cloud (not usable) only with ``[clouds] mask_snow = true``."""
SCL_NODATA: tuple[int, ...] = (0, 1)
"""SCL no data and saturated/defective pixels."""


class CloudDetector(Protocol):
    """What step 03b needs of a detector.

    Attributes:
        name: The ``[clouds]`` config value that selects it.
        levels: Processing levels it works on.
        bands: Stack layers it reads, in the order :meth:`predict` receives them.
    """

    name: str
    levels: tuple[str, ...]
    bands: tuple[str, ...]

    def predict(self, layers: np.ndarray, pixel_size: float) -> np.ndarray:
        """The mask of one scene.

        Args:
            layers: uint16 (len(bands), rows, cols) as stored in the stack (0 = no data).
            pixel_size: Grid resolution in metres (detectors that work at a coarser one resample).

        Returns:
            uint8 (rows, cols): 0 clear, 1 cloud, 2 shadow, 255 where a needed layer has no data.
        """
        ...


# ---------------------------------------------------------------------- resampling
def on_image(layers: np.ndarray) -> np.ndarray:
    """True where every layer has data (0 is the stacks' no-data value)."""
    return np.all(layers > 0, axis=0)


def block_mean(layers: np.ndarray, valid: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance averaged over ``factor`` x ``factor`` blocks of valid pixels (edges padded).

    A coarse pixel averages only the fine pixels that have data, so the AOI's edge does not
    darken it; one without any is 0 and reported invalid.

    Args:
        layers: uint16 DN (bands, rows, cols).
        valid: Boolean (rows, cols), True where the pixel has data.
        factor: Block side in pixels (1 returns the reflectance as it is).

    Returns:
        float32 reflectance (bands, ceil(rows/f), ceil(cols/f)) and its boolean validity.
    """
    n, rows, cols = layers.shape
    coarse_rows, coarse_cols = -(-rows // factor), -(-cols // factor)
    weight = np.zeros((coarse_rows * factor, coarse_cols * factor), dtype=np.float32)
    weight[:rows, :cols] = valid
    counts = weight.reshape(coarse_rows, factor, coarse_cols, factor).sum(axis=(1, 3))
    out = np.zeros((n, coarse_rows, coarse_cols), dtype=np.float32)
    padded = np.zeros_like(weight)
    for band in range(n):  # one band at a time: memory stays one float32 image
        padded[:rows, :cols] = layers[band]
        padded *= weight
        sums = padded.reshape(coarse_rows, factor, coarse_cols, factor).sum(axis=(1, 3))
        np.divide(sums, counts * REFLECTANCE_SCALE, out=out[band], where=counts > 0)
    return out, counts > 0


def block_expand(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """A coarse mask back on the fine grid (each coarse pixel repeated, the padding cut off)."""
    return np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)[:shape[0], :shape[1]]


def shadows_near_clouds(mask: np.ndarray, pixel_size: float, distance: float) -> np.ndarray:
    """The mask with every shadow pixel farther than ``distance`` metres from a cloud pixel set clear.

    A cloud shadow is cast by a cloud of the same date, so a "shadow" with no cloud anywhere near
    it is a dark surface: a conifer stand, a lake, a north slope. Detectors that judge each pixel
    by its own spectrum (ukis-csmask, also ESA's SCL) call many such surfaces shadow, and whole
    cloud-free dates would lose them. The distance is measured on blocks of about a twentieth
    of it (rounded up in the shadows' favour), so the rule costs little on a full scene.

    Args:
        mask: uint8 cloud mask (:data:`CLEAR`, :data:`CLOUD`, :data:`SHADOW`, :data:`NODATA`).
        pixel_size: Grid resolution in metres.
        distance: Largest cloud-to-shadow distance in metres (cloud height / tan(sun elevation));
            0 or less keeps every shadow.

    Returns:
        A new mask (the input is not changed).
    """
    out = mask.copy()
    shadow = mask == SHADOW
    if distance <= 0 or not shadow.any():
        return out
    cloud = mask == CLOUD
    if not cloud.any():
        out[shadow] = CLEAR
        return out
    from scipy import ndimage

    factor = max(1, int(distance / pixel_size / 20))
    rows, cols = mask.shape
    coarse_rows, coarse_cols = -(-rows // factor), -(-cols // factor)
    padded = np.zeros((coarse_rows * factor, coarse_cols * factor), dtype=bool)
    padded[:rows, :cols] = cloud
    coarse_cloud = padded.reshape(coarse_rows, factor, coarse_cols, factor).any(axis=(1, 3))
    block = factor * pixel_size
    reach = ndimage.distance_transform_edt(~coarse_cloud) * block <= distance + block * np.sqrt(2)
    out[shadow & ~block_expand(reach, factor, mask.shape)] = CLEAR
    return out


def working_factor(pixel_size: float, resolution: float) -> int:
    """Block side that brings ``pixel_size`` closest to a detector's working ``resolution`` (>= 1)."""
    return max(1, round(resolution / pixel_size))


# ---------------------------------------------------------------------- detectors
class SclDetector:
    """Level-2A: the scene classification layer (SCL) of the product, mapped to the mask classes.

    Args:
        mask_snow: Count snow/ice (SCL 11) as cloud.
    """

    name = "scl"
    levels: ClassVar[tuple[str, ...]] = ("L2A",)
    bands: ClassVar[tuple[str, ...]] = ("SCL",)

    def __init__(self, mask_snow: bool = False) -> None:
        lookup = np.full(65536, CLEAR, dtype=np.uint8)
        lookup[list(SCL_SHADOW)] = SHADOW
        lookup[list(SCL_CLOUD)] = CLOUD
        if mask_snow:
            lookup[list(SCL_SNOW)] = CLOUD
        lookup[list(SCL_NODATA)] = NODATA
        self.lookup = lookup

    def predict(self, layers: np.ndarray, pixel_size: float) -> np.ndarray:
        """The SCL codes through the lookup table (no resampling: SCL is on the grid already)."""
        del pixel_size
        return self.lookup[layers[0]]


class UkisCsmaskDetector:
    """ukis-csmask's 6-band CNN (blue, green, red, nir, swir16, swir22 reflectance) at about 30 m.

    The package's documentation asks for reflectance and recommends about 30 m, so the 10 m
    stack is averaged over 3 x 3 blocks of valid pixels, the model runs on that, and its mask is
    repeated back onto the 10 m grid.

    Args:
        level: ``L1C`` (TOA model) or ``L2A`` (BOA model).
    """

    name = "ukis-csmask"
    levels: ClassVar[tuple[str, ...]] = ("L1C", "L2A")
    bands: ClassVar[tuple[str, ...]] = ("B02", "B03", "B04", "B08", "B11", "B12")
    band_order: ClassVar[list[str]] = ["blue", "green", "red", "nir", "swir16", "swir22"]
    resolution = 30.0

    def __init__(self, level: str = "L1C") -> None:
        self.level = level
        try:
            from ukis_csmask.mask import CSmask
        except ImportError as error:
            raise InputError(f"cloud detector '{self.name}' is not installed ({error}); run "
                             f"pip install -r requirements.txt") from None
        self._csmask = CSmask

    def predict(self, layers: np.ndarray, pixel_size: float) -> np.ndarray:
        """Clouds and shadows from the CNN, resampled to and from its working resolution."""
        valid = on_image(layers)
        factor = working_factor(pixel_size, self.resolution)
        reflectance, coarse_valid = block_mean(layers, valid, factor)
        with warnings.catch_warnings():  # "smaller than the internal tiling size": it pads, as intended
            warnings.simplefilter("ignore", UserWarning)
            result = self._csmask(img=np.ascontiguousarray(np.moveaxis(reflectance, 0, -1)),
                                  band_order=self.band_order, product_level=self.level.lower())
        coarse = result.csm[..., 0].astype(np.uint8)
        coarse[~coarse_valid] = NODATA
        mask = block_expand(coarse, factor, valid.shape)
        mask[~valid] = NODATA
        return mask


class S2cloudlessDetector:
    """s2cloudless (Level-1C, clouds only) on 10 bands averaged to 60 m, the resolution of its B01/B09/B10.

    Uses the package's documented example settings (threshold 0.4, averaging over a disk of 4
    and dilation by 2 pixels at the working resolution).
    """

    name = "s2cloudless"
    levels: ClassVar[tuple[str, ...]] = ("L1C",)
    bands: ClassVar[tuple[str, ...]] = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
    resolution = 60.0

    def __init__(self, level: str = "L1C") -> None:
        del level
        try:
            from s2cloudless import S2PixelCloudDetector
        except ImportError as error:
            raise InputError(f"cloud detector '{self.name}' is not installed ({error}); run "
                             f"pip install s2cloudless, or set [clouds] detector_l1c = \"ukis-csmask\"") from None
        self._detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)

    def predict(self, layers: np.ndarray, pixel_size: float) -> np.ndarray:
        """Clouds from the LightGBM model's probabilities, resampled to and from 60 m."""
        valid = on_image(layers)
        factor = working_factor(pixel_size, self.resolution)
        reflectance, coarse_valid = block_mean(layers, valid, factor)
        coarse = self._detector.get_cloud_masks(np.moveaxis(reflectance, 0, -1)[np.newaxis])[0].astype(np.uint8)
        coarse[~coarse_valid] = NODATA
        mask = block_expand(coarse, factor, valid.shape)
        mask[~valid] = NODATA
        return mask


DETECTORS: dict[str, Callable[[str, CloudSettings], CloudDetector]] = {
    "scl": lambda level, settings: SclDetector(settings.mask_snow),
    "ukis-csmask": lambda level, settings: UkisCsmaskDetector(level),
    "s2cloudless": lambda level, settings: S2cloudlessDetector(level),
}
"""Detector name -> factory (level, ``[clouds]`` settings)."""
DETECTOR_LEVELS: dict[str, tuple[str, ...]] = {
    "scl": SclDetector.levels, "ukis-csmask": UkisCsmaskDetector.levels, "s2cloudless": S2cloudlessDetector.levels,
}
"""Detector name -> the levels it works on."""


def make_detector(name: str, level: str, settings: CloudSettings | None = None) -> CloudDetector:
    """The detector called ``name`` for a level.

    Raises:
        InputError: If the name is unknown, the detector does not work on the level, or its
            package is not installed.
    """
    if name not in DETECTORS:
        raise InputError(f"unknown cloud detector '{name}' (use one of {', '.join(sorted(DETECTORS))})")
    if level not in DETECTOR_LEVELS[name]:
        raise InputError(f"cloud detector '{name}' does not work on {level} scenes "
                         f"(it works on {', '.join(DETECTOR_LEVELS[name])})")
    return DETECTORS[name](level, settings or CloudSettings())
