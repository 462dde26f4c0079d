"""Benchmark: full-scene classification (classify.py) against a re-creation of the original's loop.

The workload is the paper's: the scene's 8 new dates in the 6 combinations of
``configs/klingenberg.toml`` (6 dates each). Eight 13-band uint16 NEW stacks with an area
layer are generated with a seeded numpy generator, and each variant is measured in a fresh
child process (wall time of the classification alone, peak RSS of the child) with the
FULL-SIZE models (U-Net width 1; FCN + ConvLSTM over 6 dates) and random weights (seeded,
the same in every child):

* ours: :func:`helpers.predict.sliding_windows.predict_scene` as classify.py runs it: all 6
  combinations in one pass, every date of a window encoded once (FCN softmax, or the FCN
  logits that the ConvLSTM head of each combination then reads), in faithful mode (32x32
  windows, 16-px stride, centre kept, border covered) and fast mode (320x320 windows,
  32-px margin). On the full-size scene it is timed on a full-width crop of ``--rows``
  rows and scaled by the pixel count: its cost per pixel does not depend on the scene's
  height, and neither does its memory (buffers span the scene width and a few window rows).
* original: a plain re-creation of the original's loop, run for every combination: one
  ``model.predict`` call per 32x32 tile (FCN: the tile's 6 dates, then their mean; LSTM:
  one sequence), its centre written into the full map and the full map multiplied by the
  area inside the loop. It is far too slow for the whole scene, so a sample of tiles is
  timed and scaled by the tile count and the 6 combinations.

Beside each of ours, the model-only time: the same number of windows (those the pass
predicts), in the same batches, through the same compiled model functions (the per-date
encoder, then every combination's mean or ConvLSTM head), from standardised float32 arrays
prepared beforehand: no reading, no normalisation, no stitching, no class maps. The ratio
``pass / model-only`` shows how far the pass is above what the model alone needs (1.0: bound
by the model; above: bound by the host). Both are timed in the same child after one untimed
call of every model function (tracing and compilation are not counted, as in the original
loop's warm-up).

The fast-vs-faithful pixel agreement is printed too (with random weights it only shows that
both modes predict the same pixels the same way where context does not matter; the demo's
trained models give the meaningful figure).

Usage:
    python benchmarks/classification.py [--quick] [--rows N] [--workdir DIR] [--sample-tiles N]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import fmt_seconds, measure_in_child, print_table, result_line, timed, work_folder
from affine import Affine
from rasterio.windows import Window

from helpers.core.config import L1C_BANDS
from helpers.core.io import GTIFF_PROFILE
from helpers.predict.keras_windows import keras_window_model
from helpers.predict.pass_batches import batch_function
from helpers.predict.sliding_windows import (
    default_batch_size,
    plan_axis,
    predict_scene,
    window_geometry,
)
from helpers.predict.window_models import WindowModel

ROOT = Path(__file__).resolve().parents[1]
FULL_SHAPE = (2828, 3500)
"""Rows x columns of the paper's scene (10 m pixels)."""
QUICK_SHAPE = (320, 400)
FULL_CROP_ROWS = 576
"""Rows of the full-width crop on which ours is timed at full size (two rows of fast windows)."""
_PAPER = tomllib.loads((ROOT / "configs" / "klingenberg.toml").read_text(encoding="utf-8"))["dates"]
DATES = sorted({d for combo in _PAPER["combinations"] for d in combo})
COMBINATIONS = [[DATES.index(d) for d in sorted(combo)] for combo in _PAPER["combinations"]]
N_DATES = len(DATES)
SEQUENCE_LENGTH = len(COMBINATIONS[0])
N_BANDS = len(L1C_BANDS)
N_CLASSES = 8
SEED = 20210901
MEAN = [1500.0] * N_BANDS
STD = [800.0] * N_BANDS


def agreement(first: np.ndarray, second: np.ndarray, area: np.ndarray) -> float:
    """Share of area pixels where two class maps agree (1.0 for an empty area)."""
    inside = int(area.sum())
    return float(np.count_nonzero((first == second) & area) / inside) if inside else 1.0


def generate_stacks(folder: Path, shape: tuple[int, int]) -> list[Path]:
    """One NEW stack per date: blocky fields with per-date noise, an area layer with a slanted no-data edge."""
    rng = np.random.default_rng(SEED)
    height, width = shape
    cell = 25
    fields = rng.integers(500, 3500, size=(N_BANDS, height // cell + 1, width // cell + 1)).astype(np.uint16)
    base = np.repeat(np.repeat(fields, cell, axis=1), cell, axis=2)[:, :height, :width]
    edge = (np.arange(width)[None, :] + 0.1 * np.arange(height)[:, None]) < 0.95 * width
    profile = {**GTIFF_PROFILE, "crs": "EPSG:32633", "transform": Affine(10.0, 0, 400000.0, 0, -10.0, 5800000.0),
               "width": width, "height": height, "count": N_BANDS + 1, "dtype": "uint16", "nodata": None}
    paths = []
    for date in DATES:
        path = folder / f"{date}_L1C_merged.tif"
        with rasterio.open(path, "w", **profile) as dst:
            for band in range(N_BANDS):
                noise = rng.integers(0, 300, size=shape, dtype=np.uint16)
                dst.write(np.where(edge, base[band] + noise, 0).astype(np.uint16), band + 1)
            dst.write(edge.astype(np.uint16), N_BANDS + 1)
            dst.descriptions = [*L1C_BANDS, "area"]
        paths.append(path)
    return paths


def crop_stacks(stacks: list[Path], rows: int, folder: Path) -> list[Path]:
    """Copies of the first ``rows`` rows (full width) of every stack."""
    folder.mkdir(exist_ok=True)
    crops = []
    for path in stacks:
        crop = folder / path.name
        with rasterio.open(path) as src:
            window = Window(0, 0, src.width, rows)
            profile = {**src.profile, "height": rows, "transform": src.window_transform(window)}
            with rasterio.open(crop, "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.descriptions = src.descriptions
        crops.append(crop)
    return crops


def _fcn():
    """The full-size U-Net with seeded random weights."""
    import keras

    from helpers.train.models import build_unet

    keras.utils.set_random_seed(SEED)
    return build_unet(N_BANDS, N_CLASSES, width=1.0)


def _model(sequence: bool):
    """The full-size FCN, or the FCN + ConvLSTM over one combination's dates at 32x32."""
    from helpers.train.models import build_fcn_lstm

    fcn = _fcn()
    return build_fcn_lstm(fcn, SEQUENCE_LENGTH, 32) if sequence else fcn


def predicted_windows(stacks: list[Path], window: int, margin: int) -> int:
    """Windows the pass predicts: those whose written part holds an area pixel (``skip_outside``)."""
    with rasterio.open(stacks[0]) as src:
        area = src.read(N_BANDS + 1).astype(bool)
    rows, cols = plan_axis(area.shape[0], window, margin), plan_axis(area.shape[1], window, margin)
    return sum(bool(area[r0:r1, c0:c1].any()) for r0, r1 in zip(rows.lo, rows.hi, strict=True)
               for c0, c1 in zip(cols.lo, cols.hi, strict=True))


def model_only_calls(model: WindowModel, stacks: list[Path], window: int, margin: int, batch: int, fused: bool):
    """One batch of the pass's model work, ready to repeat: the real first windows, read beforehand.

    Returns:
        A function that runs the batch through the pass's own batch function (fused: one
        compiled call of the models and their post-processing; host: every date encoded, then
        every combination combined, in calls of the pass's size) and returns nothing.
    """
    strips = []
    for path in stacks:
        with rasterio.open(path) as src:
            width = src.width
            strips.append(src.read(indexes=list(range(1, N_BANDS + 1)), window=Window(0, 0, width, window)))
    strip = np.stack(strips)  # (dates, bands, w, cols)
    starts = list(range(0, width - window + 1, window))
    raw = np.stack([np.moveaxis(strip[:, :, :, starts[i % len(starts)]: starts[i % len(starts)] + window], 1, -1)
                    for i in range(batch)])  # (batch, dates, w, w, bands)
    predict_batch = batch_function([model], COMBINATIONS, len(stacks), N_BANDS, N_CLASSES, window, masked=False,
                                   fused=fused)
    predict_batch(raw, None)  # tracing and compilation are not counted
    if fused and margin:  # the call that returns only the cores (most windows): warmed up and timed
        predict_batch = batch_function([model], COMBINATIONS, len(stacks), N_BANDS, N_CLASSES, window, masked=False,
                                       fused=True, crop=margin)
        predict_batch(raw, None)

    def run() -> None:
        predict_batch(raw, None)

    return run


def ours(stacks: list[Path], sequence: bool, mode: str, batch_size: int | None, fused: bool) -> dict:
    """All combinations in one pass, as classify.py runs it, and the same windows through the model alone."""
    from helpers.train.normalisation import Normaliser

    with rasterio.open(stacks[0]) as src:
        shape = (src.height, src.width)
    window, margin = window_geometry(mode, shape=shape)
    model = keras_window_model(_model(sequence), window, Normaliser.from_values(MEAN, STD))
    batch = batch_size or default_batch_size(window, len(stacks))
    model_call = model_only_calls(model, stacks, window, margin, batch, fused)  # warms the pass's calls up
    started = time.perf_counter()
    classes = []
    for block in predict_scene([model], stacks, COMBINATIONS, N_BANDS, N_CLASSES, window, margin, batch,
                               fused=fused):
        classes.append(block.classes)
    seconds = time.perf_counter() - started
    windows = predicted_windows(stacks, window, margin)
    started = time.perf_counter()
    for _ in range(-(-windows // batch)):  # the pass's calls, the last one padded to a full batch as there
        model_call()
    model_seconds = time.perf_counter() - started
    return {"seconds": seconds, "model_seconds": model_seconds, "windows": windows,
            "classes": np.concatenate(classes, axis=1)}


def original_loop(stacks: list[Path], sequence: bool, sample: int) -> dict:
    """The original's per-tile loop over one combination, on a sample of tiles; time per tile, tile count."""
    combination = COMBINATIONS[0]
    data = np.stack([rasterio.open(stacks[d]).read() for d in combination])  # (dates, layers, rows, cols)
    area = data[0, N_BANDS].astype(np.float32)
    height, width = area.shape
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    tiles = [(r, c) for r in range(0, height - 31, 16) for c in range(0, width - 31, 16)
             if area[r + 8:r + 24, c + 8:c + 24].any()]
    model = _model(sequence)
    prediction_map = np.zeros((N_CLASSES, height, width), dtype=np.float32)
    rng = np.random.default_rng(SEED)
    chosen = [tiles[i] for i in rng.choice(len(tiles), size=min(sample, len(tiles)), replace=False)]
    dates = len(combination)
    model.predict(np.zeros((1, dates, 32, 32, N_BANDS) if sequence else (dates, 32, 32, N_BANDS), np.float32),
                  verbose=0)  # warm-up, not timed
    started = time.perf_counter()
    for r, c in chosen:
        tile = (np.moveaxis(data[:, :N_BANDS, r:r + 32, c:c + 32], 1, -1) - mean) / std
        batch = tile[np.newaxis] if sequence else tile  # LSTM: one sequence; FCN: the tile's dates
        out = model.predict(batch, verbose=0)
        out = out[0] if sequence else out.mean(axis=0)
        prediction_map[:, r + 8:r + 24, c + 8:c + 24] = np.moveaxis(out[8:24, 8:24], -1, 0)
        prediction_map = prediction_map * area  # the full-map masking inside the loop
    per_tile = (time.perf_counter() - started) / len(chosen)
    return {"per_tile_s": per_tile, "tiles": len(tiles), "seconds": per_tile * len(tiles) * len(COMBINATIONS)}


def main(argv: list[str] | None = None) -> int:
    """Generate the stacks, measure every variant, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SHAPE[0]}x{QUICK_SHAPE[1]} px instead of {FULL_SHAPE[0]}x{FULL_SHAPE[1]} px")
    parser.add_argument("--rows", type=int, default=None,
                        help=f"time ours on this many full-width rows and scale (default {FULL_CROP_ROWS} at full "
                             "size, the whole scene with --quick)")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the generated stacks (kept)")
    parser.add_argument("--sample-tiles", type=int, default=None, help="tiles timed in the original loop")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per model call (default: automatic)")
    parser.add_argument("--host-path", action="store_true",
                        help="run batches on the host path (model parts one by one, numpy post-processing) instead "
                             "of the fused compiled call that classify.py uses for Keras models")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    crop_rows = min(shape[0], args.rows or (shape[0] if args.quick else FULL_CROP_ROWS))
    sample = args.sample_tiles or (10 if args.quick else 30)
    pixels = shape[0] * shape[1]
    scale = shape[0] / crop_rows  # ours: scene pixels over crop pixels (same width)

    rows, figures, results = [], {}, {}
    with work_folder(args.workdir, "bench_classification_") as folder:
        stacks, gen_s = timed(generate_stacks, folder, shape)
        ours_stacks = stacks if crop_rows == shape[0] else crop_stacks(stacks, crop_rows, folder / "crop")
        with rasterio.open(ours_stacks[0]) as src:
            area = src.read(N_BANDS + 1).astype(bool)
        windows = {m: window_geometry(m, shape=(crop_rows, shape[1])) for m in ("faithful", "fast")}
        print(f"Scene {shape[0]}x{shape[1]} px, {N_DATES} dates x {N_BANDS} bands, {len(COMBINATIONS)} combinations of "
              f"{SEQUENCE_LENGTH} dates, full-size models with random weights; generated in {fmt_seconds(gen_s)}; "
              f"ours timed on {crop_rows}x{shape[1]} px" + (f" and scaled x{scale:.2f}" if scale != 1 else "")
              + f"; work folder {folder}")
        for kind, sequence in (("fcn", False), ("lstm", True)):
            original = measure_in_child(original_loop, stacks, sequence, sample)
            for mode in ("faithful", "fast"):
                run = measure_in_child(ours, ours_stacks, sequence, mode, args.batch_size, not args.host_path)
                results[(kind, mode)] = run
                seconds = run.value["seconds"] * scale
                model_seconds = run.value["model_seconds"] * scale
                speedup = original.value["seconds"] / seconds
                window, margin = windows[mode]
                rows.append([f"{kind.upper()} {mode} ({window}px, margin {margin})", fmt_seconds(seconds),
                             fmt_seconds(model_seconds), f"{seconds / model_seconds:.2f}x",
                             f"{pixels * len(COMBINATIONS) / seconds:,.0f}", fmt_seconds(original.value["seconds"]),
                             f"{pixels * len(COMBINATIONS) / original.value['seconds']:,.0f}", f"{speedup:,.1f}x",
                             f"{run.peak_mb:,.0f} MB"])
                figures[f"{kind}_{mode}_s"] = seconds
                figures[f"{kind}_{mode}_model_s"] = model_seconds
                figures[f"{kind}_{mode}_over_model"] = seconds / model_seconds
                figures[f"{kind}_{mode}_windows"] = run.value["windows"]
                figures[f"{kind}_{mode}_speedup"] = speedup
                figures[f"{kind}_{mode}_peak_mb"] = run.peak_mb
            figures[f"{kind}_original_s"] = original.value["seconds"]
            figures[f"{kind}_original_ms_per_tile"] = original.value["per_tile_s"] * 1000
            figures[f"{kind}_original_peak_mb"] = original.peak_mb
            figures[f"{kind}_fast_agreement"] = agreement(results[(kind, "fast")].value["classes"],
                                                          results[(kind, "faithful")].value["classes"],
                                                          np.broadcast_to(area, (len(COMBINATIONS), *area.shape)))
            print(f"  {kind}: original loop {original.value['per_tile_s'] * 1000:.1f} ms/tile x "
                  f"{original.value['tiles']} tiles x {len(COMBINATIONS)} combinations (sample of {sample}); "
                  f"peak {original.peak_mb:,.0f} MB")
    print()
    print_table(["variant (whole scene, 6 combinations)", "ours", "model only", "ours / model", "ours map-px/s",
                 "original (est.)", "original map-px/s", "speedup", "ours peak RSS"], rows)
    print()
    for kind in ("fcn", "lstm"):
        print(f"{kind.upper()} fast-vs-faithful agreement: {100 * figures[f'{kind}_fast_agreement']:.2f} % of the "
              "area (random weights)")
    peak = max(r.peak_mb for r in results.values())
    target = figures["fcn_faithful_speedup"] >= 20 and figures["lstm_faithful_speedup"] >= 20 and peak < 3072
    print(f"Targets: faithful >= 20x the original loop, peak < 3 GB: {'met' if target else 'NOT met'}")
    print(result_line({"shape": f"{shape[0]}x{shape[1]}", "quick": args.quick, "ours_rows": crop_rows,
                       "batches": "host" if args.host_path else "fused",
                       "tiles_sampled": sample, "combinations": len(COMBINATIONS), **figures, "peak_mb": peak,
                       "targets_met": target}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
