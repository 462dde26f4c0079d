"""Tests of helpers.demo.cloud_reference: the demo's own cloud and shadow layers, checked against the rendered bands."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from study_area import demo_config_copy

from helpers.core.config import Config, load_config
from helpers.core.errors import InputError
from helpers.demo import demo_data
from helpers.demo.cloud_reference import LAYER_THRESHOLD, CloudLayers, demo_window, reference_cloud_layers
from helpers.demo.layout import ORIGIN_X, ORIGIN_Y

SIZE = 168  # large enough for clouds with shadows on most cloudy dates, generated in about 3 s
MARKER = re.escape(demo_data.MARKER_NAME)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, demo_data.DemoSummary]:
    """A small generated demo (seed 0), shared by the module's tests; never modify it."""
    base = tmp_path_factory.mktemp("cloud_reference")
    config = load_config(demo_config_copy(base, base / "root"))
    return config, demo_data.generate_demo(config, seed=0, size=SIZE)


@pytest.fixture(scope="module")
def layers(demo: tuple[Config, demo_data.DemoSummary]) -> dict[str, CloudLayers]:
    return reference_cloud_layers(demo[0])


def _product(config: Config, date: str) -> Path:
    (product,) = config.raw_sentinel_dir("L1C").glob(f"*_{date}T*.SAFE")
    return product


def _band(config: Config, date: str, band: str) -> np.ndarray:
    (path,) = (_product(config, date) / "GRANULE").glob(f"*/IMG_DATA/*_{band}.jp2")
    with rasterio.open(path) as src:
        return src.read(1).astype(np.float64)


def _nearest_clear(summary: demo_data.DemoSummary, date: str) -> str:
    """The clear, fully covered date closest in time (similar season, so similar surface)."""
    clear = [d for d in summary.dates if d not in summary.cloudy_dates and d != summary.partial_date]
    days = {d: np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in (*clear, date)}
    return min(clear, key=lambda d: abs(days[d] - days[date]))


# ---------------------------------------------------------------------- layers against the rendered bands
def test_cloudy_dates_and_layer_types(demo: tuple[Config, demo_data.DemoSummary],
                                      layers: dict[str, CloudLayers]) -> None:
    _, summary = demo
    assert tuple(layers) == summary.cloudy_dates and len(layers) >= 3
    for date, layer in layers.items():
        assert layer.date == date and layer.threshold == LAYER_THRESHOLD
        assert layer.shape == (SIZE, SIZE)
        assert layer.opacity.dtype == layer.shadow_strength.dtype == np.float32
        assert layer.cloud.dtype == layer.shadow.dtype == np.bool_
        np.testing.assert_array_equal(layer.cloud, layer.opacity > LAYER_THRESHOLD)
        np.testing.assert_array_equal(layer.shadow, (layer.shadow_strength > LAYER_THRESHOLD) & ~layer.cloud)
        np.testing.assert_array_equal(layer.covered, layer.cloud | layer.shadow)
        assert layer.cloud.any()


def test_cloud_share_is_the_products_cloud_cover(demo: tuple[Config, demo_data.DemoSummary],
                                                 layers: dict[str, CloudLayers]) -> None:
    """The product metadata records the rendered clouds' share (opacity > 0.3) to 4 decimals."""
    config, _ = demo
    for date, layer in layers.items():
        root = ET.parse(_product(config, date) / "MTD_MSIL1C.xml").getroot()
        (recorded,) = [e.text for e in root.iter() if e.tag.endswith("Cloud_Coverage_Assessment")]
        assert recorded == f"{100 * layer.cloud.mean():.4f}", date


def test_clouds_are_bright_in_blue_and_shadows_dark_in_nir(demo: tuple[Config, demo_data.DemoSummary],
                                                           layers: dict[str, CloudLayers]) -> None:
    """Against the clear date nearest in time: B02 much brighter under clouds, B08 darker in shadows.

    Ratios to the clear date are compared with their median where the date has neither cloud nor
    shadow, so the season's own change in brightness cancels out; a reference drawn from the wrong
    random state puts its layers where the bands show nothing.
    """
    config, summary = demo
    shadow_dates = 0
    for date, layer in layers.items():
        clear = _nearest_clear(summary, date)
        free = (layer.opacity == 0) & (layer.shadow_strength == 0)
        blue = _band(config, date, "B02") / _band(config, clear, "B02")
        base = np.median(blue[free])
        assert np.median(blue[layer.cloud]) > 1.8 * base, date
        assert np.mean(blue[layer.cloud] > 1.2 * base) > 0.95, date
        assert np.mean(blue[free] > 1.2 * base) < 0.05, date
        if layer.shadow.sum() >= 50:
            shadow_dates += 1
            nir = _band(config, date, "B08") / _band(config, clear, "B08")
            base = np.median(nir[free])
            assert np.median(nir[layer.shadow]) < 0.75 * base, date
            assert np.mean(nir[layer.shadow] < 0.9 * base) > 0.75, date
            assert np.mean(nir[free] < 0.9 * base) < 0.35, date
    assert shadow_dates >= 3


def test_clear_dates_are_not_returned(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, summary = demo
    clear = [d for d in summary.dates if d not in summary.cloudy_dates]
    assert clear
    assert reference_cloud_layers(config, clear) == {}
    cloudy = summary.cloudy_dates[1]
    assert list(reference_cloud_layers(config, [clear[0], cloudy])) == [cloudy]


def test_one_date_alone_gives_the_same_layers(demo: tuple[Config, demo_data.DemoSummary],
                                              layers: dict[str, CloudLayers]) -> None:
    date = demo[1].cloudy_dates[-1]
    (alone,) = reference_cloud_layers(demo[0], {date}).values()
    np.testing.assert_array_equal(alone.opacity, layers[date].opacity)
    np.testing.assert_array_equal(alone.shadow_strength, layers[date].shadow_strength)


def test_threshold(demo: tuple[Config, demo_data.DemoSummary], layers: dict[str, CloudLayers]) -> None:
    date = demo[1].cloudy_dates[0]
    low = reference_cloud_layers(demo[0], [date], threshold=0.05)[date]
    assert low.threshold == 0.05
    assert low.cloud.sum() > layers[date].cloud.sum()
    assert np.all(low.cloud[layers[date].cloud])


# ---------------------------------------------------------------------- cut to a stack's grid
def test_cut_takes_the_stacks_window(layers: dict[str, CloudLayers]) -> None:
    layer = next(iter(layers.values()))
    # Origin 50 m east and 110 m south of the demo's: 5 columns and 11 rows in.
    transform = Affine(10.0, 0.0, ORIGIN_X + 50.0, 0.0, -10.0, ORIGIN_Y - 110.0)
    assert transform.c == 400010.0 and transform.f == 5639890.0
    assert demo_window(transform, (20, 30), SIZE) == (slice(11, 31), slice(5, 35))
    cut = layer.cut(transform, (20, 30))
    assert cut.shape == (20, 30) and cut.date == layer.date and cut.threshold == layer.threshold
    for name in ("opacity", "shadow_strength", "cloud", "shadow"):
        np.testing.assert_array_equal(getattr(cut, name), getattr(layer, name)[11:31, 5:35])
    assert layer.origin == (0, 0) and cut.origin == (11, 5) and cut.size == SIZE
    whole = layer.cut(Affine(10.0, 0.0, ORIGIN_X, 0.0, -10.0, ORIGIN_Y), (SIZE, SIZE))
    np.testing.assert_array_equal(whole.opacity, layer.opacity)
    # A cut of a cut: the window is still found on the demo's grid (rows 13..17, columns 8..11).
    inner = cut.cut(Affine(10.0, 0.0, ORIGIN_X + 80.0, 0.0, -10.0, ORIGIN_Y - 130.0), (5, 4))
    np.testing.assert_array_equal(inner.cloud, layer.cloud[13:18, 8:12])
    with pytest.raises(InputError, match="outside these layers"):
        cut.cut(Affine(10.0, 0.0, ORIGIN_X + 40.0, 0.0, -10.0, ORIGIN_Y - 110.0), (20, 30))  # one column west


@pytest.mark.parametrize(("transform", "shape", "message"), [
    (Affine(20.0, 0.0, ORIGIN_X, 0.0, -20.0, ORIGIN_Y), (10, 10), "north-up 10 m grid"),
    (Affine(10.0, 0.0, ORIGIN_X + 5.0, 0.0, -10.0, ORIGIN_Y), (10, 10), "not aligned"),
    (Affine(10.0, 0.0, ORIGIN_X - 10.0, 0.0, -10.0, ORIGIN_Y), (10, 10), "outside"),
    (Affine(10.0, 0.0, ORIGIN_X, 0.0, -10.0, ORIGIN_Y - 100.0), (SIZE - 9, 10), "outside"),
])
def test_cut_refuses_other_grids(layers: dict[str, CloudLayers], transform: Affine, shape: tuple[int, int],
                                 message: str) -> None:
    with pytest.raises(InputError, match=message):
        next(iter(layers.values())).cut(transform, shape)


# ---------------------------------------------------------------------- not a demo
def test_no_marker_is_an_input_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "my_scene.tif").write_bytes(b"not a demo")
    config = load_config(demo_config_copy(tmp_path, root))
    with pytest.raises(InputError, match=MARKER):
        reference_cloud_layers(config)
    empty = load_config(demo_config_copy(tmp_path / "other", tmp_path / "nothing_here"))
    with pytest.raises(InputError, match=MARKER):
        reference_cloud_layers(empty)


def test_marker_without_seed_is_an_input_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / demo_data.MARKER_NAME).write_text(json.dumps({"size": SIZE}), encoding="utf-8")
    with pytest.raises(InputError, match=f"{MARKER}: no valid 'seed'"):
        reference_cloud_layers(load_config(demo_config_copy(tmp_path, root)))


def test_unknown_date_and_other_dates_are_input_errors(demo: tuple[Config, demo_data.DemoSummary],
                                                       tmp_path: Path) -> None:
    config, _ = demo
    with pytest.raises(InputError, match="20190101: not a date of the demo"):
        reference_cloud_layers(config, ["20190101"])
    # A demo generated with other dates than the config names (its marker lists them): refused,
    # since the config's date plans would give other clouds.
    marker = json.loads((config.raw_dir / demo_data.MARKER_NAME).read_text(encoding="utf-8"))
    marker["summary"]["dates"] = marker["summary"]["dates"][:-1]
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / demo_data.MARKER_NAME).write_text(json.dumps(marker), encoding="utf-8")
    with pytest.raises(InputError, match="generated with other dates"):
        reference_cloud_layers(load_config(demo_config_copy(tmp_path, root)))
