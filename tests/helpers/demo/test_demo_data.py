"""Tests of the embedded demo (helpers.demo: landscape, radiometry, products, raw folder; 00_make_demo_data.py)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio import features
from study_area import demo_config_copy

from helpers.core.config import L1C_BANDS, Config, load_config
from helpers.core.errors import InputError
from helpers.demo import demo_data, demo_manifest
from helpers.demo.landscape import DemoScene, build_scene
from helpers.demo.layout import FARMLAND, FOREST, GRASSLAND, WATER
from helpers.demo.radiometry import plan_dates, render_date
from helpers.demo.safe_writer import BAND_RESOLUTION

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "src" / "data_processing" / "00_make_demo_data.py"
SIZE = 168  # 10 m bands 168 x 168, 20 m bands 84 x 84, 60 m bands 28 x 28
PRODUCT_RE = re.compile(r"^S2[AB]_MSIL1C_(\d{8})T101022_N0204_R022_T33UVS_(\d{8})T120000\.SAFE$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, demo_data.DemoSummary]:
    base = tmp_path_factory.mktemp("demo")
    config = load_config(demo_config_copy(base, base / "root"))
    return config, demo_data.generate_demo(config, seed=0, size=SIZE)


@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return build_scene(0, SIZE)


def _band_file(config: Config, date: str, band: str) -> Path:
    matches = sorted(config.raw_sentinel_dir("L1C").glob(f"*_{date}T*.SAFE/GRANULE/*/IMG_DATA/*_{band}.jp2"))
    assert len(matches) == 1, (date, band, matches)
    return matches[0]


def _read(config: Config, date: str, band: str) -> np.ndarray:
    with rasterio.open(_band_file(config, date, band)) as src:
        return src.read(1).astype(np.float64)


def _index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    return np.where(total > 0, (a - b) / np.where(total > 0, total, 1), 0.0)


def _ndvi(config: Config, date: str) -> np.ndarray:
    return _index(_read(config, date, "B08"), _read(config, date, "B04"))


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------- products
def test_safe_products_and_band_grids(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, summary = demo
    products = sorted(config.raw_sentinel_dir("L1C").iterdir())
    expected_dates = sorted({*config.training_pool, *config.new})
    assert summary.n_products == len(products) == len(expected_dates) == 18
    found = []
    for product in products:
        match = PRODUCT_RE.match(product.name)
        assert match, product.name
        assert match.group(1) == match.group(2)
        date = match.group(1)
        found.append(date)
        granules = list((product / "GRANULE").iterdir())
        assert len(granules) == 1
        assert re.fullmatch(rf"L1C_T33UVS_A\d{{6}}_{date}T101022", granules[0].name)
        files = sorted(p.name for p in (granules[0] / "IMG_DATA").iterdir())
        assert files == sorted(f"T33UVS_{date}T101022_{band}.jp2" for band in L1C_BANDS)
        for band in L1C_BANDS:
            resolution = BAND_RESOLUTION[band]
            with rasterio.open(granules[0] / "IMG_DATA" / f"T33UVS_{date}T101022_{band}.jp2") as src:
                assert src.driver == "JP2OpenJPEG"
                assert src.dtypes[0] == "uint16"
                assert src.crs.to_epsg() == 32633
                assert src.shape == (SIZE * 10 // resolution,) * 2
                assert src.transform.a == resolution and src.transform.e == -resolution
                assert (src.transform.c, src.transform.f) == (399960.0, 5640000.0)
    assert sorted(found) == expected_dates
    assert {10: SIZE, 20: SIZE // 2, 60: SIZE // 6} == {10: 168, 20: 84, 60: 28}


def test_metadata_xml(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, _ = demo
    for product in config.raw_sentinel_dir("L1C").iterdir():
        date = PRODUCT_RE.match(product.name).group(1)
        root = ET.parse(product / "MTD_MSIL1C.xml").getroot()
        assert root.tag.endswith("Level-1C_User_Product")
        values = {element.tag.rsplit("}", 1)[-1]: (element.text or "").strip() for element in root.iter()}
        assert values["PROCESSING_BASELINE"] == "02.04"
        assert values["PRODUCT_START_TIME"].startswith(f"{date[:4]}-{date[4:6]}-{date[6:]}T10:10:22")
        assert values["PRODUCT_STOP_TIME"]
        assert values["PRODUCT_TYPE"] == "S2MSI1C"
        assert values["QUANTIFICATION_VALUE"] == "10000"
        assert values["SPACECRAFT_NAME"] in ("Sentinel-2A", "Sentinel-2B")
        assert "RADIO_ADD_OFFSET" not in values
        info = root.find("{*}General_Info/Product_Info")
        assert info is not None and info.find("PRODUCT_START_TIME") is not None


def test_dn_values_and_partial_swath(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, summary = demo
    assert summary.partial_date is not None and summary.partial_date != config.reference
    assert config.reference not in summary.cloudy_dates
    assert 3 <= len(summary.cloudy_dates) <= 9
    for date in (config.reference, config.new[0]):
        for band in L1C_BANDS:
            values = _read(config, date, band)
            assert values.min() >= 1, (date, band)
    for band in L1C_BANDS:
        values = _read(config, summary.partial_date, band)
        empty = values == 0
        assert 0.1 < empty.mean() < 0.4, band
        assert not empty[:, 0].any() and empty[:, -1].all(), band  # a strip at the east edge
    b10 = _read(config, config.reference, "B10") / 10000
    assert 0.0005 < np.median(b10) < 0.004


# ---------------------------------------------------------------------- ground truth
def test_gt_shapefile(demo: tuple[Config, demo_data.DemoSummary], scene: DemoScene) -> None:
    config, summary = demo
    gt = gpd.read_file(config.gt_file)
    assert gt.crs.to_epsg() == 32633
    assert config.gt_attribute == "ATKIS_mod"
    assert np.issubdtype(gt["ATKIS_mod"].dtype, np.integer)
    assert set(gt["ATKIS_mod"]) == set(range(1, 9))
    assert set(gt.geom_type) <= {"Polygon", "MultiPolygon"}
    assert len(gt) == summary.n_gt_polygons
    burnt = features.rasterize(zip(gt.geometry, gt["ATKIS_mod"], strict=True), out_shape=(SIZE, SIZE),
                               transform=scene.transform, all_touched=False, dtype="uint8")
    np.testing.assert_array_equal(burnt, scene.label)
    shares = np.bincount(scene.label.ravel(), minlength=9) / scene.label.size
    assert 0.28 < shares[FOREST] < 0.42
    assert 0.22 < shares[FARMLAND] < 0.34
    assert 0.18 < shares[GRASSLAND] < 0.28
    assert 0.015 < shares[WATER] < 0.045


def test_aoi_shapefile(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, _ = demo
    aoi = gpd.read_file(config.aoi_file)
    assert aoi.crs.to_epsg() == 32633
    assert len(aoi) == 1 and aoi.geom_type.iloc[0] == "Polygon"
    polygon = aoi.geometry.iloc[0]
    assert polygon.is_valid and len(polygon.exterior.coords) > 6
    scene_area = (SIZE * 10.0) ** 2
    assert 0.8 < polygon.area / scene_area < 0.95
    assert polygon.area < 0.99 * polygon.minimum_rotated_rectangle.area  # not a rectangle
    x0, y0, x1, y1 = polygon.bounds
    assert x0 >= 399960 and y1 <= 5640000 and x1 <= 399960 + SIZE * 10 and y0 >= 5640000 - SIZE * 10


def test_true_changes(demo: tuple[Config, demo_data.DemoSummary], scene: DemoScene) -> None:
    config, summary = demo
    changes = gpd.read_file(config.true_change_file)
    assert changes.crs.to_epsg() == 32633
    assert len(changes) == summary.n_true_change_polygons > 0
    assert (changes["old_class"] != changes["new_class"]).all()
    assert set(changes["old_class"]) | set(changes["new_class"]) <= set(range(1, 9))
    assert set(changes.geom_type) <= {"Polygon", "MultiPolygon"}
    old = features.rasterize(zip(changes.geometry, changes["old_class"], strict=True), out_shape=(SIZE, SIZE),
                             transform=scene.transform, dtype="uint8")
    new = features.rasterize(zip(changes.geometry, changes["new_class"], strict=True), out_shape=(SIZE, SIZE),
                             transform=scene.transform, dtype="uint8")
    changed = scene.label != scene.label_new
    assert (old > 0).sum() == changed.sum() == summary.changed_pixels
    np.testing.assert_array_equal(old[changed], scene.label[changed])  # the GT keeps the old classes
    np.testing.assert_array_equal(new[changed], scene.label_new[changed])


# ---------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files(demo: tuple[Config, demo_data.DemoSummary], tmp_path: Path) -> None:
    config, _ = demo
    again = load_config(demo_config_copy(tmp_path, tmp_path / "root"))
    demo_data.generate_demo(again, seed=0, size=SIZE)
    first, second = _tree_digest(config.raw_dir), _tree_digest(again.raw_dir)
    assert first == second
    band = _band_file(config, config.reference, "B04").relative_to(config.raw_dir)
    assert (config.raw_dir / band).read_bytes() == (again.raw_dir / band).read_bytes()
    gt_a = gpd.read_file(config.gt_file)
    gt_b = gpd.read_file(again.gt_file)
    assert gt_a.drop(columns="geometry").equals(gt_b.drop(columns="geometry"))


def test_different_seed_differs(demo: tuple[Config, demo_data.DemoSummary],
                                scene: DemoScene) -> None:
    config, _ = demo
    other = build_scene(1, SIZE)
    assert not np.array_equal(other.label, scene.label)
    plans = {p.label: p for p in plan_dates(config, np.random.default_rng(1))}
    bands, _ = render_date(other, plans[config.reference], np.random.default_rng(1))
    assert not np.array_equal(bands["B04"], _read(config, config.reference, "B04"))


def test_invalid_size_is_rejected(demo: tuple[Config, demo_data.DemoSummary]) -> None:
    config, _ = demo
    with pytest.raises(ValueError, match="multiple of 6"):
        demo_data.generate_demo(config, seed=0, size=160)
    with pytest.raises(InputError, match="already holds a demo"):
        demo_data.generate_demo(config, seed=0, size=SIZE)


# ---------------------------------------------------------------------- spectral behaviour
def test_farmland_is_bare_in_spring_and_green_in_summer(demo: tuple[Config, demo_data.DemoSummary],
                                                        scene: DemoScene) -> None:
    config, _ = demo
    farm = scene.label == FARMLAND
    grass = scene.label == GRASSLAND
    spring, summer = _ndvi(config, "20160403"), _ndvi(config, "20160522")
    assert np.median(spring[farm]) + 0.1 < np.median(summer[farm])
    assert (spring[farm] < 0.2).mean() > 0.3  # many fields bare in early spring
    assert np.median(spring[grass]) > np.median(spring[farm]) + 0.1
    assert np.median(summer[grass]) > 0.5
    forest = scene.label == FOREST
    assert np.median(summer[forest]) > 0.55


def test_lake_ndwi_and_moving_shoreline(demo: tuple[Config, demo_data.DemoSummary],
                                        scene: DemoScene) -> None:
    config, summary = demo
    core = (scene.label == WATER) & (scene.lake_rho < 0.75)
    rim = (scene.label == WATER) & (scene.lake_rho > 0.93)
    dry_somewhere = np.zeros_like(rim)
    for date in config.training_pool:
        ndwi = _index(_read(config, date, "B03"), _read(config, date, "B08"))
        if date not in summary.cloudy_dates and date != summary.partial_date:
            assert (ndwi[core] > 0).all(), date
        dry_somewhere |= ndwi < 0
    assert dry_somewhere[rim].mean() > 0.3  # the shoreline moves: rim pixels dry on some dates
    reference = _index(_read(config, config.reference, "B03"), _read(config, config.reference, "B08"))
    assert (reference[rim] > 0).mean() > 0.9  # full reservoir in December


def test_single_dates_are_ambiguous_time_series_separates(demo: tuple[Config, demo_data.DemoSummary],
                                                           scene: DemoScene) -> None:
    """Nearest-class-mean on NDVI: grassland vs farmland confused often per date, rarely over time."""
    config, _ = demo
    keep = np.isin(scene.label, (GRASSLAND, FARMLAND))
    truth = scene.label[keep] == GRASSLAND
    stack = np.stack([_ndvi(config, d)[keep] for d in config.fixed_sequence], axis=1)
    errors = []
    for column in stack.T:
        grass_mean, farm_mean = column[truth].mean(), column[~truth].mean()
        errors.append(((np.abs(column - grass_mean) < np.abs(column - farm_mean)) != truth).mean())
    grass_mean, farm_mean = stack[truth].mean(axis=0), stack[~truth].mean(axis=0)
    predicted = ((stack - grass_mean) ** 2).sum(axis=1) < ((stack - farm_mean) ** 2).sum(axis=1)
    multi = (predicted != truth).mean()
    assert np.mean(errors) > 0.15
    assert multi < 0.5 * np.mean(errors)


# ---------------------------------------------------------------------- the script
def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_script_end_to_end(tmp_path: Path) -> None:
    config_path = demo_config_copy(tmp_path, tmp_path / "root")
    result = _run("--config", str(config_path), "--size", str(SIZE))
    assert result.returncode == 0, result.stderr
    marker = tmp_path / "root" / "raw" / demo_data.MARKER_NAME
    assert marker.is_file() and '"size": 168' in marker.read_text()
    assert "18 L1C products" in result.stdout
    assert not (tmp_path / "root" / demo_data.STAGING_NAME).exists()

    result = _run("--config", str(config_path), "--size", str(SIZE))
    assert result.returncode == 0 and "already present" in result.stdout

    before = _tree_digest(tmp_path / "root" / "raw")
    result = _run("--config", str(config_path), "--size", str(SIZE), "--force")
    assert result.returncode == 0, result.stderr
    assert _tree_digest(tmp_path / "root" / "raw") == before


def test_script_refuses_foreign_raw_folder(tmp_path: Path) -> None:
    config_path = demo_config_copy(tmp_path, tmp_path / "root")
    user_file = tmp_path / "root" / "raw" / "my_data.txt"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("precious")
    for extra in ([], ["--force"]):
        result = _run("--config", str(config_path), "--size", str(SIZE), *extra)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "raw" in lines[0]
        assert "Traceback" not in result.stderr
    assert user_file.read_text() == "precious"
    assert sorted(p.name for p in user_file.parent.iterdir()) == ["my_data.txt"]

    result = _run("--config", str(config_path), "--size", "160")
    assert result.returncode == 2 and result.stderr.startswith("error:") and "multiple of 6" in result.stderr


# ---------------------------------------------------------------------- files a user added (issue 10.5)
def test_force_keeps_files_the_generator_did_not_write(tmp_path: Path) -> None:
    config_path = demo_config_copy(tmp_path, tmp_path / "root")
    raw = tmp_path / "root" / "raw"
    assert _run("--config", str(config_path), "--size", str(SIZE)).returncode == 0
    marker = json.loads((raw / demo_data.MARKER_NAME).read_text())
    generated = _tree_digest(raw)
    assert sorted(marker["files"]) == sorted(k for k in generated if k != demo_data.MARKER_NAME)
    notes = raw / "notes.txt"
    notes.write_text("my field notes")
    own_product = raw / "sentinel" / "level_L1C" / "my_scene" / "readme.md"
    own_product.parent.mkdir()
    own_product.write_text("a product of my own")

    result = _run("--config", str(config_path), "--size", str(SIZE), "--force")
    assert result.returncode == 0, result.stderr
    assert ("kept 2 file(s) in raw/ that the generator did not write: notes.txt, "
            "sentinel/level_L1C/my_scene/readme.md") in result.stdout
    assert notes.read_text() == "my field notes" and own_product.read_text() == "a product of my own"
    after = _tree_digest(raw)
    assert {k: v for k, v in after.items() if k not in ("notes.txt", "sentinel/level_L1C/my_scene/readme.md")} \
        == generated
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["raw"]  # no staging, no previous, no lock


def _fake_demo(folder: Path, files: dict[str, str], listed: list[str] | None) -> Path:
    """A folder looking like a demo raw/ (marker last), with a manifest unless ``listed`` is None."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    marker = {"seed": 0} if listed is None else {"seed": 0, demo_manifest.MANIFEST_KEY: listed}
    (folder / demo_data.MARKER_NAME).write_text(json.dumps(marker))
    return folder


def test_swap_in_keeps_extras_and_refuses_a_clash(tmp_path: Path) -> None:
    raw = _fake_demo(tmp_path / "raw", {"a.txt": "old", "mine.txt": "user"}, ["a.txt"])
    staging = _fake_demo(tmp_path / "staging", {"a.txt": "new", "b.txt": "new"}, ["a.txt", "b.txt"])
    assert demo_manifest.swap_in(raw, staging, demo_data.MARKER_NAME) == ["mine.txt"]
    assert {p: (raw / p).read_text() for p in ("a.txt", "b.txt", "mine.txt")} == {
        "a.txt": "new", "b.txt": "new", "mine.txt": "user"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]

    staging = _fake_demo(tmp_path / "staging", {"a.txt": "newer", "mine.txt": "generated"}, ["a.txt", "mine.txt"])
    before = _tree_digest(raw)
    with pytest.raises(InputError, match=re.escape(f"{raw / 'mine.txt'}: not written by the demo generator, "
                                                   "but the new demo writes a file there")):
        demo_manifest.swap_in(raw, staging, demo_data.MARKER_NAME)
    assert _tree_digest(raw) == before and not staging.exists()


def test_marker_without_manifest_keeps_every_doubtful_file(tmp_path: Path) -> None:
    raw = _fake_demo(tmp_path / "raw", {"a.txt": "old", "gone.txt": "old demo file?"}, None)
    staging = _fake_demo(tmp_path / "staging", {"a.txt": "new"}, ["a.txt"])
    assert demo_manifest.swap_in(raw, staging, demo_data.MARKER_NAME) == ["gone.txt"]
    assert (raw / "gone.txt").read_text() == "old demo file?" and (raw / "a.txt").read_text() == "new"


def test_interrupted_swap_is_finished_by_the_next_run(tmp_path: Path) -> None:
    raw, previous = tmp_path / "raw", tmp_path / demo_manifest.PREVIOUS_NAME
    _fake_demo(previous, {"a.txt": "old"}, ["a.txt"])  # stopped between the two renames
    demo_manifest.recover(raw, demo_data.MARKER_NAME)
    assert (raw / "a.txt").read_text() == "old" and not previous.exists()

    raw.rename(previous)  # stopped while moving the user's files back into the new demo
    (previous / "mine.txt").write_text("user")
    _fake_demo(raw, {"a.txt": "new"}, ["a.txt"])
    demo_manifest.recover(raw, demo_data.MARKER_NAME)
    assert {p.name: p.read_text() for p in raw.iterdir() if p.name != demo_data.MARKER_NAME} == {
        "a.txt": "new", "mine.txt": "user"}
    assert not previous.exists()

    _fake_demo(previous, {"a.txt": "old"}, ["a.txt"])
    (raw / demo_data.MARKER_NAME).unlink()  # raw/ is no demo: nothing is moved, the user decides
    with pytest.raises(InputError, match=re.escape(f"{previous}: left by an interrupted demo regeneration")):
        demo_manifest.recover(raw, demo_data.MARKER_NAME)
