"""Benchmark: full-scene classification (classify.py) against a re-creation of the original's loop.

Generates, with a seeded numpy generator, six 13-band uint16 NEW stacks with an area layer on
one grid, and measures, each in a fresh child process (wall time of the classification alone,
peak RSS of the child), with the FULL-SIZE models (U-Net width 1; FCN + ConvLSTM over 6 dates)
and random weights (seeded, the same in every child):

* ours: :func:`helpers.classification.classify_scene` in faithful mode (32x32 windows,
  16-px stride, centre kept, border covered) and fast mode (320x320 windows, 32-px margin),
  for the FCN (mean softmax over the 6 dates) and the sequence model;
* original: a plain re-creation of the original's loop: one ``model.predict`` call per
  32x32 tile (FCN: the tile's 6 dates; LSTM: one sequence), its centre written into the
  full map and the full map multiplied by the area inside the loop. It is far too slow for
  the whole scene, so a sample of tiles is timed and scaled by the tile count.

The fast-vs-faithful pixel agreement is printed too (with random weights it only shows that
both modes predict the same pixels the same way where context does not matter; the demo's
trained models give the meaningful figure).

Usage:
    python benchmarks/classification.py [--quick] [--workdir DIR] [--sample-tiles N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import fmt_seconds, measure_in_child, print_table, result_line, timed, work_folder
from affine import Affine

from helpers.classification import agreement, classify_scene, window_geometry
from helpers.config import L1C_BANDS
from helpers.io import GTIFF_PROFILE

FULL_SHAPE = (2828, 3500)
"""Rows x columns of the paper's scene (10 m pixels)."""
QUICK_SHAPE = (320, 400)
N_DATES = 6
N_BANDS = len(L1C_BANDS)
N_CLASSES = 8
SEED = 20210901
MEAN = [1500.0] * N_BANDS
STD = [800.0] * N_BANDS


def generate_stacks(folder: Path, shape: tuple[int, int]) -> list[Path]:
    """Six NEW stacks: blocky fields with per-date noise, an area layer with a slanted no-data edge."""
    rng = np.random.default_rng(SEED)
    height, width = shape
    cell = 25
    fields = rng.integers(500, 3500, size=(N_BANDS, height // cell + 1, width // cell + 1)).astype(np.uint16)
    base = np.repeat(np.repeat(fields, cell, axis=1), cell, axis=2)[:, :height, :width]
    edge = (np.arange(width)[None, :] + 0.1 * np.arange(height)[:, None]) < 0.95 * width
    profile = {**GTIFF_PROFILE, "crs": "EPSG:32633", "transform": Affine(10.0, 0, 400000.0, 0, -10.0, 5800000.0),
               "width": width, "height": height, "count": N_BANDS + 1, "dtype": "uint16", "nodata": None}
    paths = []
    for date in range(N_DATES):
        path = folder / f"new_{date}_L1C_merged.tif"
        with rasterio.open(path, "w", **profile) as dst:
            for band in range(N_BANDS):
                noise = rng.integers(0, 300, size=shape, dtype=np.uint16)
                dst.write(np.where(edge, base[band] + noise, 0).astype(np.uint16), band + 1)
            dst.write(edge.astype(np.uint16), N_BANDS + 1)
            dst.descriptions = [*L1C_BANDS, "area"]
        paths.append(path)
    return paths


def _model(sequence: bool, window: int):
    """The full-size FCN, or the FCN + ConvLSTM at ``window``, with seeded random weights."""
    import keras

    from helpers.models import build_fcn_lstm, build_unet, rebuild_sequence_model

    keras.utils.set_random_seed(SEED)
    fcn = build_unet(N_BANDS, N_CLASSES, width=1.0)
    if not sequence:
        return fcn
    model = build_fcn_lstm(fcn, N_DATES, 32)
    return model if window == 32 else rebuild_sequence_model(model, window)


def ours(stacks: list[Path], sequence: bool, mode: str, batch_size: int | None) -> dict:
    """Classify the scene as classify.py does; the time of the classification alone."""
    from helpers.generators import Normaliser

    with rasterio.open(stacks[0]) as src:
        shape = (src.height, src.width)
    window, margin = window_geometry(mode, shape=shape)
    model = _model(sequence, window)
    started = time.perf_counter()
    probabilities = classify_scene(model.predict_on_batch, stacks, N_BANDS, N_CLASSES, window, margin,
                                   Normaliser.from_values(MEAN, STD), sequence, batch_size)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "classes": (probabilities.argmax(axis=0) + 1).astype(np.uint8)}


def original_loop(stacks: list[Path], sequence: bool, sample: int) -> dict:
    """The original's per-tile loop on a sample of tiles; the time per tile and the tile count."""
    data = np.stack([rasterio.open(p).read() for p in stacks])  # (dates, layers, rows, cols), as it read them
    area = data[0, N_BANDS].astype(np.float32)
    height, width = area.shape
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    tiles = [(r, c) for r in range(0, height - 31, 16) for c in range(0, width - 31, 16)
             if area[r + 8:r + 24, c + 8:c + 24].any()]
    model = _model(sequence, 32)
    prediction_map = np.zeros((N_CLASSES, height, width), dtype=np.float32)
    rng = np.random.default_rng(SEED)
    chosen = [tiles[i] for i in rng.choice(len(tiles), size=min(sample, len(tiles)), replace=False)]
    model.predict(np.zeros((N_DATES if not sequence else 1, *((N_DATES,) if sequence else ()), 32, 32, N_BANDS),
                           np.float32), verbose=0)  # warm-up, not timed
    started = time.perf_counter()
    for r, c in chosen:
        tile = (np.moveaxis(data[:, :N_BANDS, r:r + 32, c:c + 32], 1, -1) - mean) / std
        batch = tile[np.newaxis] if sequence else tile  # LSTM: one sequence; FCN: the tile's dates
        out = model.predict(batch, verbose=0)
        out = out[0] if sequence else out.mean(axis=0)
        prediction_map[:, r + 8:r + 24, c + 8:c + 24] = np.moveaxis(out[8:24, 8:24], -1, 0)
        prediction_map = prediction_map * area  # the full-map masking inside the loop
    per_tile = (time.perf_counter() - started) / len(chosen)
    return {"per_tile_s": per_tile, "tiles": len(tiles), "seconds": per_tile * len(tiles)}


def main(argv: list[str] | None = None) -> int:
    """Generate the stacks, measure every variant, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SHAPE[0]}x{QUICK_SHAPE[1]} px instead of {FULL_SHAPE[0]}x{FULL_SHAPE[1]} px")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the generated stacks (kept)")
    parser.add_argument("--sample-tiles", type=int, default=None, help="tiles timed in the original loop")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per model call (default: automatic)")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    sample = args.sample_tiles or (10 if args.quick else 30)
    pixels = shape[0] * shape[1]

    rows, figures, results = [], {}, {}
    with work_folder(args.workdir, "bench_classification_") as folder:
        stacks, gen_s = timed(generate_stacks, folder, shape)
        with rasterio.open(stacks[0]) as src:
            area = src.read(N_BANDS + 1).astype(bool)
        windows = {m: window_geometry(m, shape=shape) for m in ("faithful", "fast")}
        print(f"Scene {shape[0]}x{shape[1]} px, {N_DATES} dates x {N_BANDS} bands, full-size models with random "
              f"weights; generated in {fmt_seconds(gen_s)}; work folder {folder}")
        for kind, sequence in (("fcn", False), ("lstm", True)):
            original = measure_in_child(original_loop, stacks, sequence, sample)
            for mode in ("faithful", "fast"):
                run = measure_in_child(ours, stacks, sequence, mode, args.batch_size)
                results[(kind, mode)] = run
                speedup = original.value["seconds"] / run.value["seconds"]
                window, margin = windows[mode]
                rows.append([f"{kind.upper()} {mode} ({window}px, margin {margin})", fmt_seconds(run.value["seconds"]),
                             f"{pixels / run.value['seconds']:,.0f}", fmt_seconds(original.value["seconds"]),
                             f"{pixels / original.value['seconds']:,.0f}", f"{speedup:,.1f}x",
                             f"{run.peak_mb:,.0f} MB"])
                figures[f"{kind}_{mode}_px_s"] = pixels / run.value["seconds"]
                figures[f"{kind}_{mode}_speedup"] = speedup
                figures[f"{kind}_{mode}_peak_mb"] = run.peak_mb
            figures[f"{kind}_original_px_s"] = pixels / original.value["seconds"]
            figures[f"{kind}_original_peak_mb"] = original.peak_mb
            figures[f"{kind}_fast_agreement"] = agreement(results[(kind, "fast")].value["classes"],
                                                          results[(kind, "faithful")].value["classes"], area)
            print(f"  {kind}: original loop {original.value['per_tile_s'] * 1000:.1f} ms/tile x "
                  f"{original.value['tiles']} tiles (sample of {sample}); peak {original.peak_mb:,.0f} MB")
    print()
    print_table(["variant (whole scene)", "ours", "ours px/s", "original (est.)", "original px/s", "speedup",
                 "ours peak RSS"], rows)
    print()
    for kind in ("fcn", "lstm"):
        print(f"{kind.upper()} fast-vs-faithful agreement: {100 * figures[f'{kind}_fast_agreement']:.2f} % of the "
              "area (random weights)")
    peak = max(r.peak_mb for r in results.values())
    target = figures["fcn_faithful_speedup"] >= 20 and figures["lstm_faithful_speedup"] >= 20 and peak < 3072
    print(f"Targets: faithful >= 20x the original loop, peak < 3 GB: {'met' if target else 'NOT met'}")
    print(result_line({"shape": f"{shape[0]}x{shape[1]}", "quick": args.quick, "tiles_sampled": sample,
                       **figures, "peak_mb": peak, "targets_met": target}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
