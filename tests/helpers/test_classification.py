"""Sliding-window stitching of full-scene classification, with stand-in models of known output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from helpers.classification import agreement, class_and_confidence, classify_scene
from helpers.errors import InputError
from helpers.generators import Normaliser
from helpers.previews import write_class_png
from helpers.sliding_windows import plan_axis, read_area, window_geometry

N_BANDS = 13
N_CLASSES = 8
SHAPE = (100, 90)
TRANSFORM = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5600000.0)
IDENTITY = Normaliser.from_values([0.0] * N_BANDS, [1.0] * N_BANDS)


def write_stack(path: Path, bands: np.ndarray, area: np.ndarray) -> Path:
    """A NEW merged stack: 13 uint16 bands and one area layer."""
    data = np.concatenate([bands, area[np.newaxis]]).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint16", crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(data)
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


@pytest.mark.parametrize("length, window, margin", [(100, 32, 8), (90, 32, 8), (32, 32, 8), (47, 32, 8),
                                                    (700, 320, 32), (320, 320, 32)])
def test_plan_covers_every_pixel_once_from_window_cores(length: int, window: int, margin: int) -> None:
    plan = plan_axis(length, window, margin)
    covered = np.zeros(length, dtype=int)
    for start, lo, hi in zip(plan.starts, plan.lo, plan.hi, strict=True):
        assert start >= 0 and start + window <= length
        assert start <= lo < hi <= start + window
        assert lo == 0 or lo >= start + margin  # only the first window writes its outer part ...
        assert hi == length or hi <= start + window - margin  # ... and only the last
        covered[lo:hi] += 1
    assert (covered == 1).all()


def test_faithful_plan_is_the_original_grid_inside() -> None:
    plan = plan_axis(2828, 32, 8)
    assert list(plan.starts[:3]) == [0, 16, 32]
    assert list(plan.lo[1:3]) == [24, 40] and plan.hi[0] == 24  # centre rows r*16+8 ... r*16+24


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_fcn_class_map_is_the_mean_over_dates_everywhere(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=3)
    window, margin = window_geometry(mode, shape=SHAPE)
    probabilities = classify_scene(fcn_stand_in, stacks, N_BANDS, N_CLASSES, window, margin, IDENTITY,
                                   sequence=False, batch_size=5)
    expected = np.moveaxis(one_hot(bands[:, 0].astype(np.int64)).mean(axis=0), -1, 0)
    classes, confidence = class_and_confidence(probabilities, area)
    want = np.where(area, np.argmax(expected, axis=0) + 1, 0)
    np.testing.assert_array_equal(classes, want)  # the border included
    np.testing.assert_allclose(probabilities, expected * area, atol=1e-6)
    np.testing.assert_allclose(confidence, np.where(area, expected.max(axis=0), 0), atol=1e-6)
    assert classes.dtype == np.uint8 and probabilities.dtype == np.float32


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_sequence_class_map_and_renormalised_probabilities(tmp_path: Path, mode: str) -> None:
    stacks, bands, area = make_stacks(tmp_path, dates=4)
    window, margin = window_geometry(mode, shape=SHAPE)
    probabilities = classify_scene(sequence_stand_in, stacks, N_BANDS, N_CLASSES, window, margin, IDENTITY,
                                   sequence=True, batch_size=3)
    codes = bands[:, 0].astype(np.int64).sum(axis=0)
    classes, _ = class_and_confidence(probabilities, area)
    np.testing.assert_array_equal(classes, np.where(area, codes % N_CLASSES + 1, 0))
    np.testing.assert_allclose(probabilities.sum(axis=0), area.astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_only_window_centres_are_kept_except_at_the_scene_edges(tmp_path: Path, mode: str) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=1)
    full = np.ones(SHAPE, dtype=np.uint16)
    with rasterio.open(stacks[0], "r+") as dst:
        dst.write(full, N_BANDS + 1)
    window, margin = window_geometry(mode, shape=SHAPE)

    def position_coded(batch: np.ndarray) -> np.ndarray:  # class 1 in a window's core, class 2 in its margin
        codes = np.ones(batch.shape[:3], dtype=np.int64)
        codes[:, :margin] = codes[:, -margin:] = codes[:, :, :margin] = codes[:, :, -margin:] = 2
        return one_hot(codes - 1)

    probabilities = classify_scene(position_coded, stacks, N_BANDS, N_CLASSES, window, margin, IDENTITY,
                                   sequence=False)
    classes, _ = class_and_confidence(probabilities, full.astype(bool))
    want = np.full(SHAPE, 1, dtype=np.uint8)
    want[:margin] = want[-margin:] = want[:, :margin] = want[:, -margin:] = 2
    np.testing.assert_array_equal(classes, want)


def test_windows_outside_the_area_are_not_predicted(tmp_path: Path) -> None:
    stacks, _, _ = make_stacks(tmp_path, dates=1)
    area = np.zeros(SHAPE, dtype=np.uint16)
    area[60:70, 60:70] = 1
    with rasterio.open(stacks[0], "r+") as dst:
        dst.write(area, N_BANDS + 1)
    calls = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return fcn_stand_in(batch)

    probabilities = classify_scene(counting, stacks, N_BANDS, N_CLASSES, 32, 8, IDENTITY, sequence=False,
                                   batch_size=1)
    assert len(calls) <= 4  # 10x10 px reach at most 2x2 window cores
    assert probabilities[:, ~area.astype(bool)].max() == 0
    np.testing.assert_array_equal(read_area(stacks[0], N_BANDS), area.astype(bool))


def test_scene_smaller_than_a_window_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="smaller than one"):
        window_geometry("faithful", shape=(20, 90))
    assert window_geometry("fast", shape=SHAPE) == (64, 16)  # fast windows shrink to the scene


def test_agreement_and_preview(tmp_path: Path) -> None:
    a = np.array([[1, 2], [3, 0]], dtype=np.uint8)
    b = np.array([[1, 3], [3, 0]], dtype=np.uint8)
    inside = np.array([[True, True], [True, False]])
    assert agreement(a, b, inside) == pytest.approx(2 / 3)
    png = tmp_path / "preview.png"
    write_class_png(png, a, {1: "#ff0000", 2: "#00ff00", 3: "#0000ff"})
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB"))
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[1, 1].tolist() == [0, 0, 0]
