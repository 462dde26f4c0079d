"""Benchmark: cloud and shadow masks of one 2828 x 3500 Level-1C date, the chosen detector beside the other.

The scene is made from the real Sentinel-2 cut with a reference mask
(``../shared/realdata/cloudmask-s2/sentinel2.npz``: 6 bands of TOA reflectance at about 30 m):
each pixel is repeated 3 x 3 onto the 10 m grid and the result mirrored and tiled to 2828 x 3500.
The 7 bands the cut lacks are filled from their spectral neighbours (B01 = B02; B05-B07 and
B8A, B09 interpolated by wavelength; B10 = 0.005), so s2cloudless gets its 10 bands; its
accuracy on these stand-ins is not a measure of s2cloudless. The 13-band uint16 stack is written
with the pipeline's GeoTIFF profile, and each detector reads its bands from it and predicts,
in a fresh child process (wall time and peak RSS). Without the real cut, a seeded random
scene is used instead (timing only).

Also reported: Cohen's kappa (clear/cloud/shadow, and cloud vs rest) on the real cut itself,
and the installed size of each detector's own distributions.

Usage:
    python benchmarks/clouds.py [--quick] [--workdir DIR] [--extra-path DIR]

``--extra-path`` adds a folder of packages installed with ``pip install --target`` (for
example s2cloudless, which ``requirements.txt`` does not install).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import MB, fmt_seconds, measure_in_child, print_table, result_line, work_folder
from affine import Affine

from helpers.core.config import L1C_BANDS
from helpers.core.io import GTIFF_PROFILE
from helpers.core.paths import REPO_ROOT
from helpers.data.cloud_detectors import CLEAR, CLOUD, SHADOW, make_detector
from helpers.data.clouds import class_shares, read_layers

FULL_SHAPE = (2828, 3500)
"""Rows x columns of the paper's scene (10 m pixels)."""
QUICK_SHAPE = (707, 875)
REFERENCE = REPO_ROOT.parent / "shared" / "realdata" / "cloudmask-s2" / "sentinel2.npz"
CUT_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
WAVELENGTH = {"B01": 443, "B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783, "B08": 842,
              "B8A": 865, "B09": 945, "B10": 1375, "B11": 1610, "B12": 2190}
DISTRIBUTIONS = {
    "ukis-csmask": ("ukis-csmask", "onnxruntime"),
    "s2cloudless": ("s2cloudless", "sentinelhub", "lightgbm", "opencv-python-headless", "aenum", "dataclasses-json",
                    "marshmallow", "oauthlib", "requests-oauthlib", "typing-inspect", "mypy-extensions", "utm",
                    "tomli", "tomli-w"),
}
"""What each candidate adds to this project's environment (its own package and the dependencies
that nothing in ``requirements.txt`` already brings)."""
CANDIDATES = ("ukis-csmask", "s2cloudless")


def all_bands(cut: np.ndarray) -> dict[str, np.ndarray]:
    """The 13 L1C bands (reflectance) from the cut's 6; missing ones from their spectral neighbours."""
    bands = dict(zip(CUT_BANDS, cut, strict=True))

    def between(low: str, high: str, band: str) -> np.ndarray:
        weight = (WAVELENGTH[band] - WAVELENGTH[low]) / (WAVELENGTH[high] - WAVELENGTH[low])
        return bands[low] + weight * (bands[high] - bands[low])

    bands["B01"] = bands["B02"]
    for band in ("B05", "B06", "B07"):
        bands[band] = between("B04", "B08", band)
    bands["B8A"] = bands["B08"]
    bands["B09"] = between("B08", "B11", "B09")
    bands["B10"] = np.full_like(bands["B02"], 0.005)
    return {band: bands[band] for band in L1C_BANDS}


def scene_from_cut(shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """uint16 DN (13, rows, cols) on the 10 m grid, and where it came from."""
    if REFERENCE.is_file():
        cut = np.moveaxis(np.load(REFERENCE)["img"], -1, 0)
        source = "real-cut"
    else:
        rng = np.random.default_rng(0)
        cut = rng.uniform(0.02, 0.5, size=(len(CUT_BANDS), 512, 512)).astype(np.float32)
        source = "random"
    fine = np.repeat(np.repeat(np.stack(list(all_bands(cut).values())), 3, axis=1), 3, axis=2)
    mirrored = np.concatenate([fine, fine[:, ::-1]], axis=1)
    mirrored = np.concatenate([mirrored, mirrored[:, :, ::-1]], axis=2)  # seamless when tiled
    reps = (1, -(-shape[0] // mirrored.shape[1]), -(-shape[1] // mirrored.shape[2]))
    tiled = np.tile(mirrored, reps)[:, :shape[0], :shape[1]]
    return np.clip(np.rint(tiled * 10000), 1, 65535).astype(np.uint16), source


def write_scene(path: Path, data: np.ndarray) -> Path:
    """The stack as step 01 writes it (pipeline profile, named bands)."""
    profile = {**GTIFF_PROFILE, "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
               "dtype": "uint16", "crs": "EPSG:32633", "transform": Affine(10.0, 0, 400000.0, 0, -10.0, 5640000.0)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = L1C_BANDS
    return path


def mask_scene(name: str, scene: Path) -> dict[str, float]:
    """Child work: read the detector's bands from the stack and predict its mask; returns the class shares."""
    detector = make_detector(name, "L1C")
    mask = detector.predict(read_layers(scene, L1C_BANDS, detector.bands, name), 10.0)
    return class_shares(mask)


def reference_kappas(name: str) -> tuple[float, float]:
    """Cohen's kappa (clear/cloud/shadow, and cloud vs rest) on the real cut at its own ~30 m."""
    from sklearn.metrics import cohen_kappa_score

    data = np.load(REFERENCE)
    cut = np.moveaxis(data["img"], -1, 0)
    codes = data["msk"][..., 0]
    reference = np.select([codes == 4, codes == 0], [CLOUD, SHADOW], CLEAR).ravel()
    detector = make_detector(name, "L1C")
    bands = all_bands(cut)
    layers = np.clip(np.rint(np.stack([bands[b] for b in detector.bands]) * 10000), 1, 65535).astype(np.uint16)
    mask = detector.predict(layers, 30.0).ravel()
    return float(cohen_kappa_score(reference, mask)), float(cohen_kappa_score(reference == CLOUD, mask == CLOUD))


def installed_mb(names: tuple[str, ...]) -> tuple[float, int]:
    """Installed size of the distributions found among ``names`` (MiB) and how many were found."""
    total, found = 0, 0
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found += 1
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                total += path.stat().st_size
    return total / MB, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_SHAPE[0]}x{QUICK_SHAPE[1]} scene")
    parser.add_argument("--workdir", default=None, help="keep the generated stack here (default: a temporary folder)")
    parser.add_argument("--extra-path", default=None, help="a folder of packages installed with pip --target")
    args = parser.parse_args()
    if args.extra_path:  # also for the measuring children, which start a new interpreter
        sys.path.append(str(Path(args.extra_path).resolve()))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"),
                                                                  str(Path(args.extra_path).resolve())]))
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    available = [name for name in CANDIDATES if importlib.util.find_spec(name.replace("-", "_")) is not None]
    figures: dict[str, object] = {"rows": shape[0], "cols": shape[1]}
    rows = []
    with work_folder(args.workdir, "bench_clouds_") as folder:
        data, source = scene_from_cut(shape)
        scene = write_scene(folder / "scene_L1C_all_bands.tif", data)
        del data
        figures["scene"] = source
        print(f"scene: {shape[0]}x{shape[1]} px, 13 bands, from the {source} ({scene.stat().st_size / MB:.0f} MiB)")
        for name in CANDIDATES:
            key = name.replace("-", "_")
            size, found = installed_mb(DISTRIBUTIONS[name])
            if name not in available:
                rows.append([name, "not installed", "", "", "", "", ""])
                figures[f"{key}_seconds"] = "na"
                continue
            run = measure_in_child(mask_scene, name, scene)
            kappa, cloud_kappa = reference_kappas(name) if REFERENCE.is_file() else (float("nan"), float("nan"))
            cloud, shadow = 100 * run.value["cloud"], 100 * run.value["shadow"]
            rows.append([name, fmt_seconds(run.seconds), f"{run.peak_mb:.0f} MiB", f"{run.work_mb:.0f} MiB",
                         f"{kappa:.3f} / {cloud_kappa:.3f}", f"{cloud:.1f} / {shadow:.1f}",
                         f"{size:.0f} MiB ({found} dists)"])
            figures.update({f"{key}_seconds": run.seconds, f"{key}_peak_mb": run.peak_mb,
                            f"{key}_kappa": kappa, f"{key}_cloud_kappa": cloud_kappa, f"{key}_install_mb": size})
    print_table(["detector", "time", "peak RSS", "work RSS", "kappa 3-class / cloud", "cloud / shadow %",
                 "installed"], rows)
    print("kappa on the real cut (30 m); s2cloudless there sees 5 of its 10 bands as stand-ins (B01, B05, B8A, "
          "B09, B10), and it never predicts shadow")
    print(result_line(figures))


if __name__ == "__main__":
    main()
