"""The cloud detectors: SCL mapping, resampling, the registry, and the CNN on known clouds (real and drawn)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from cloud_scenes import drawn_scene
from scipy import ndimage
from sklearn.metrics import cohen_kappa_score

from helpers.core.config_schema import CLOUD_DETECTORS, CloudSettings
from helpers.core.errors import InputError
from helpers.core.paths import REPO_ROOT
from helpers.data.cloud_detectors import (
    CLEAR,
    CLOUD,
    DETECTOR_LEVELS,
    DETECTORS,
    NODATA,
    SHADOW,
    SclDetector,
    block_expand,
    block_mean,
    make_detector,
    shadows_near_clouds,
    working_factor,
)

REFERENCE = REPO_ROOT.parent / "shared" / "realdata" / "cloudmask-s2" / "sentinel2.npz"
"""The real Sentinel-2 cut with a hand-made cloud/shadow mask (``../shared/realdata``, never in the repo)."""


# ---------------------------------------------------------------------- SCL
def test_scl_codes_map_to_the_mask_classes() -> None:
    scl = np.arange(12, dtype=np.uint16)[np.newaxis, np.newaxis]  # every SCL class once
    expected = [NODATA, NODATA, CLEAR, SHADOW, CLEAR, CLEAR, CLEAR, CLEAR, CLOUD, CLOUD, CLOUD, CLEAR]
    assert SclDetector().predict(scl, 20.0)[0].tolist() == expected
    with_snow = SclDetector(mask_snow=True).predict(scl, 20.0)[0]
    assert with_snow[11] == CLOUD and with_snow[:11].tolist() == expected[:11]


def test_scl_detector_is_what_the_settings_ask_for() -> None:
    detector = make_detector("scl", "L2A", CloudSettings(mask_snow=True))
    assert detector.predict(np.array([[[11]]], dtype=np.uint16), 10.0)[0, 0] == CLOUD


# ---------------------------------------------------------------------- resampling
def test_block_mean_averages_only_pixels_with_data() -> None:
    layers = np.array([[[10000, 20000, 5000], [0, 40000, 5000]]], dtype=np.uint16)  # 1 band, 2 x 3
    valid = layers[0] > 0
    mean, coarse_valid = block_mean(layers, valid, 2)
    # block (0,0): 1.0, 2.0, 4.0 (the 0 is no data) -> 7/3; block (0,1): 0.5, 0.5 (the rest is padding)
    np.testing.assert_allclose(mean[0], [[7 / 3, 0.5]], rtol=1e-6)
    assert coarse_valid.tolist() == [[True, True]]
    empty, empty_valid = block_mean(np.zeros((2, 3, 3), dtype=np.uint16), np.zeros((3, 3), bool), 3)
    assert empty.shape == (2, 1, 1) and not empty_valid.any() and not empty.any()


def test_block_expand_restores_the_fine_grid() -> None:
    coarse = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert block_expand(coarse, 3, (5, 4)).tolist() == [[1, 1, 1, 2]] * 3 + [[3, 3, 3, 4]] * 2


@pytest.mark.parametrize(("pixel", "resolution", "factor"), [(10, 30, 3), (20, 30, 2), (30, 30, 1), (60, 30, 1),
                                                           (10, 60, 6)])
def test_working_factor(pixel: float, resolution: float, factor: int) -> None:
    assert working_factor(pixel, resolution) == factor


# ---------------------------------------------------------------------- registry
def test_registry_and_config_schema_agree() -> None:
    """The config accepts exactly the detectors that exist, per level (first: the default)."""
    for level, names in CLOUD_DETECTORS.items():
        assert set(names) == {name for name, levels in DETECTOR_LEVELS.items() if level in levels}
    assert set(DETECTORS) == set(DETECTOR_LEVELS)


@pytest.mark.parametrize(("name", "level", "message"), [
    ("fmask", "L1C", "unknown cloud detector 'fmask'"),
    ("scl", "L1C", "cloud detector 'scl' does not work on L1C scenes"),
    ("s2cloudless", "L2A", "cloud detector 's2cloudless' does not work on L2A scenes"),
])
def test_make_detector_refuses(name: str, level: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_detector(name, level)


def test_a_missing_detector_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # import fails as if not installed
    with pytest.raises(InputError, match=r"cloud detector 's2cloudless' is not installed .*pip install s2cloudless"):
        make_detector("s2cloudless", "L1C")


# ---------------------------------------------------------------------- the CNN on known clouds
def _precision_recall(mask: np.ndarray, truth: np.ndarray, value: int) -> tuple[float, float]:
    hits = np.sum((mask == value) & truth)
    return hits / max(1, np.sum(mask == value)), hits / truth.sum()


def test_ukis_csmask_finds_a_drawn_cloud_and_its_shadow() -> None:
    layers, cloud, shadow = drawn_scene()
    layers[:, :, :12] = 0  # a strip without data (outside the AOI)
    mask = make_detector("ukis-csmask", "L1C").predict(layers, 10.0)
    assert mask.shape == cloud.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {CLEAR, CLOUD, SHADOW, NODATA}
    assert (mask[:, :12] == NODATA).all() and not (mask[:, 12:] == NODATA).any()
    for truth, value in ((cloud, CLOUD), (shadow, SHADOW)):
        precision, recall = _precision_recall(mask, truth, value)
        assert recall >= 0.8 and precision >= 0.7, (value, precision, recall)
    far = ~ndimage.binary_dilation(cloud | shadow, iterations=30)
    far[:, :12] = False
    assert np.mean(mask[far] == CLEAR) >= 0.95


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"real reference {REFERENCE} is absent (../shared/realdata)")
def test_ukis_csmask_kappa_on_the_real_reference() -> None:
    """Cohen's kappa of clear/cloud/shadow against the hand-made mask of a real L1C cut (>= 0.75).

    The cut is 6-band TOA reflectance at about 30 m; as DN at 30 m it is used without resampling.
    Reference classes: 4 cloud, 0 shadow, 1-3 clear.
    """
    data = np.load(REFERENCE)
    layers = np.clip(np.rint(np.moveaxis(data["img"], -1, 0) * 10000), 1, 65535).astype(np.uint16)
    reference = np.select([data["msk"][..., 0] == 4, data["msk"][..., 0] == 0], [CLOUD, SHADOW], CLEAR)
    mask = make_detector("ukis-csmask", "L1C").predict(layers, 30.0)
    kappa = cohen_kappa_score(reference.ravel(), mask.ravel())
    assert kappa >= 0.75, kappa
    near = shadows_near_clouds(mask, 30.0, CloudSettings().shadow_distance)  # as step 03b writes it
    assert cohen_kappa_score(reference.ravel(), near.ravel()) >= 0.75


def test_shadows_far_from_every_cloud_become_clear() -> None:
    mask = np.zeros((300, 300), dtype=np.uint8)
    mask[:20, :20] = CLOUD
    mask[30:40, 30:40] = SHADOW  # about 150 m from the cloud
    mask[250:260, 250:260] = SHADOW  # about 3.3 km away
    mask[290:, :] = NODATA
    kept = shadows_near_clouds(mask, 10.0, 1000.0)
    assert (kept[30:40, 30:40] == SHADOW).all() and (kept[250:260, 250:260] == CLEAR).all()
    assert (kept[:20, :20] == CLOUD).all() and (kept[290:] == NODATA).all()
    assert (shadows_near_clouds(mask, 10.0, 0.0) == mask).all(), "0 keeps every shadow"
    no_cloud = np.where(mask == CLOUD, CLEAR, mask).astype(np.uint8)
    assert not (shadows_near_clouds(no_cloud, 10.0, 5000.0) == SHADOW).any(), "a cloud-free date has no shadow"
    # the distance is exact to within one block and the rule errs in the shadows' favour
    edge = np.zeros((400, 400), dtype=np.uint8)
    edge[0, 0] = CLOUD
    edge[0, 1:] = SHADOW
    kept = shadows_near_clouds(edge, 10.0, 2000.0)
    reach = np.flatnonzero(kept[0] == SHADOW).max() * 10.0
    assert 2000.0 <= reach <= 2000.0 + 2 * 100 * np.sqrt(2) + 100
