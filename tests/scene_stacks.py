"""Small NEW stacks on a real grid and stand-in models whose output is a known function of the input."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from helpers.predict.sliding_windows import SceneBlock, predict_scene
from helpers.predict.window_models import WindowModel
from helpers.train.normalisation import Normaliser

N_BANDS = 13
N_CLASSES = 8
SHAPE = (100, 90)
TRANSFORM = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5600000.0)
IDENTITY = Normaliser.from_values([0.0] * N_BANDS, [1.0] * N_BANDS)


def write_stack(path: Path, bands: np.ndarray, area: np.ndarray, descriptions: Sequence[str] | None = None,
                transform: Affine = TRANSFORM) -> Path:
    """A NEW merged stack: uint16 bands and one area layer (layers named as the pipeline names them, if given)."""
    data = np.concatenate([bands, area[np.newaxis]]).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint16", crs="EPSG:32633", transform=transform) as dst:
        dst.write(data)
        if descriptions is not None:
            dst.descriptions = tuple(descriptions)
    return path


def write_cloud_mask(path: Path, mask: np.ndarray, transform: Affine = TRANSFORM) -> Path:
    """A step-03b cloud mask (uint8: 0 clear, 1 cloud, 2 shadow, 255 no data) on a stack's grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=transform) as dst:
        dst.write(mask.astype(np.uint8), 1)
    return path


def make_stacks(tmp_path: Path, dates: int, seed: int = 3) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Random stacks whose band 1 codes a class per pixel, and an area with holes and a blank edge."""
    rng = np.random.default_rng(seed)
    area = np.ones(SHAPE, dtype=bool)
    area[40:55, 20:35] = False
    area[:, -5:] = False
    bands = rng.integers(0, 200, size=(dates, N_BANDS, *SHAPE)).astype(np.uint16)
    paths = [write_stack(tmp_path / f"stack_{d}.tif", bands[d], area) for d in range(dates)]
    return paths, bands, area


def one_hot(codes: np.ndarray) -> np.ndarray:
    return np.eye(N_CLASSES, dtype=np.float32)[codes % N_CLASSES]


def fcn_stand_in(batch: np.ndarray) -> np.ndarray:
    """(n, w, w, bands) -> one-hot of (band 1 value mod 8), pixel by pixel."""
    assert batch.ndim == 4 and batch.dtype == np.float32
    return one_hot(batch[..., 0].astype(np.int64))


def sequence_stand_in(batch: np.ndarray) -> np.ndarray:
    """(n, t, w, w, bands) -> half a one-hot of (sum over dates of band 1) mod 8 (does not sum to 1)."""
    assert batch.ndim == 5
    return 0.5 * one_hot(batch[..., 0].sum(axis=1).astype(np.int64))


def collect_blocks(blocks: Iterable[SceneBlock]) -> tuple[np.ndarray, np.ndarray]:
    """Join the blocks of a scene pass: ``(combinations, classes, rows, cols)`` and the area."""
    blocks = list(blocks)
    return (np.concatenate([b.probabilities for b in blocks], axis=2),
            np.concatenate([b.area for b in blocks], axis=0))


def collect_class_maps(blocks: Iterable[SceneBlock]) -> tuple[np.ndarray, np.ndarray]:
    """Join the class maps and confidence of a scene pass's blocks: ``(combinations, rows, cols)`` each."""
    blocks = list(blocks)
    return (np.concatenate([b.classes for b in blocks], axis=1),
            np.concatenate([b.confidence for b in blocks], axis=1))


def classify_scene(predict_fn: Callable[[np.ndarray], np.ndarray], stacks: Sequence[Path], window: int, margin: int,
                   normaliser: Normaliser = IDENTITY, sequence: bool = False, batch_size: int | None = None,
                   n_bands: int = N_BANDS, n_classes: int = N_CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One combination of all the stacks through the production scene pass.

    The model is one function (an FCN, its maps averaged over the dates, or a sequence model
    whose scores are renormalised). Returns the probabilities float32 ``(n_classes, rows, cols)``,
    the class map uint8 and the confidence float32 ``(rows, cols)``, all 0 outside the area.
    """
    model = WindowModel.sequence(predict_fn, normaliser) if sequence else WindowModel.fcn(predict_fn, normaliser)
    blocks = list(predict_scene([model], stacks, [list(range(len(stacks)))], n_bands, n_classes, window, margin,
                                batch_size))
    classes, confidence = collect_class_maps(blocks)
    return collect_blocks(blocks)[0][0], classes[0], confidence[0]
