"""Benchmark: the training input pipeline against a re-creation of the original generators.

Works on the demo's training tiles (``configs/demo.toml``), copied into a work folder so that
the demo's folders receive no cache files; when the demo has not been processed yet
(``make demo``, or ``00_make_demo_data.py`` then ``08a_process_train_batch.py``) it writes
tiles of the same shape (32x32 px, 13 bands + ground truth, 10 dates) itself. It measures:

* ours: ``SingleTileGenerator`` (FCN, batch 64), ``FixedSequenceGenerator`` and
  ``RandomSequenceGenerator`` (LSTM, batch 16 x 6 dates), all with augmentation; every
  (date, split) is loaded once (the first load reads the GeoTIFFs and writes the ``.npy``
  cache, later loads memory-map it);
* original: a plain re-creation of the original generators on the same tiles: every batch
  opens each tile's GeoTIFF with rasterio, normalises in float64 channel by channel, flips and
  rotates every channel of every date with ``skimage.transform.rotate(order=1,
  mode="reflect")``, the labels too (bilinearly, then cast to int by
  ``keras.utils.to_categorical``); the random-sequence generator also lists the tile folders
  of the dates it drew, for every batch, and intersects the lists;
* one ``train_on_batch`` of the full-size models on 2 CPU threads, each in a fresh child
  process: the U-Net (29,068,744 parameters) on 64 tiles, the FCN+ConvLSTM on 16 x 6 tiles,
  compiled with Adam(clipnorm=1) and the weighted cross-entropy; the input share is our
  seconds per batch divided by the seconds of a training step;
* the input share with batches prepared ahead (``benchmarks/_prefetch.py``): one epoch of
  the training loop emulated through Keras' own PyDataset adapter, every step a sleep of the
  step time (``--step-ms``, 15 ms for an FCN step on a GPU, and the measured CPU step), with
  no worker threads (a batch made between two steps) and with the training scripts' default
  ``--input-workers``; the share is the wait for a batch over wait + step.

With ``--determinism`` it only measures what TensorFlow's op determinism (``--seed`` of the
training scripts) costs per training step, for the full-size and a 1/16-width U-Net and the
full-size FCN+ConvLSTM, and whether two seeded runs end with identical weights with and without it.

It also checks that our rotation gives the original's band values (same flips and angles)
and counts the label pixels to which the original's bilinear label rotation gives a class id
the tile does not contain.

Usage:
    python benchmarks/training_input.py [--quick] [--workdir DIR] [--no-model] [--determinism] [--step-ms MS]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import fmt_seconds, measure_in_child, print_table, result_line, timed, work_folder
from _prefetch import input_wait
from affine import Affine
from skimage.transform import rotate

from helpers.core.config import Config, load_config
from helpers.core.paths import REPO_ROOT
from helpers.train.augmentation import transform_batch
from helpers.train.generators import (
    FixedSequenceGenerator,
    RandomSequenceGenerator,
    SingleTileGenerator,
)
from helpers.train.normalisation import normaliser_for
from helpers.train.training import INPUT_WORKERS, PREFETCH_BATCHES

DEMO_CONFIG = REPO_ROOT / "configs" / "demo.toml"
FCN_BATCH = 64
LSTM_BATCH = 16
TIMESTEPS = 6
MAX_ANGLE = 45.0
THREADS = 2
UNET_PARAMS = 29_068_744


# ---------------------------------------------------------------------- tiles
def _write_config(folder: Path) -> Path:
    """The demo config with its data root moved to ``folder / "data"``."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    root = json.dumps(str(folder / "data"))
    text = re.sub(r"(?m)^data_root\s*=.*$", f"data_root = {root}", text)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _demo_has_tiles(demo: Config) -> bool:
    return all(demo.tiles_summary_path(d, None).is_file() and demo.tiles_dir(d, None, "train").is_dir()
               for d in demo.training_pool)


def _copy_demo_tiles(demo: Config, config: Config) -> None:
    """Copy the demo's train tile folders and tiling summaries (not the merged stacks)."""
    for date in demo.training_pool:
        target = config.tiles_dir(date, None, "train")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(demo.tiles_dir(date, None, "train"), target)
        shutil.copy2(demo.tiles_summary_path(date, None), config.tiles_summary_path(date, None))


def _generate_tiles(config: Config, per_date: int = 174, seed: int = 20210101) -> None:
    """Write ``per_date`` train tiles per date (the first date lacks a quarter of them)."""
    rng = np.random.default_rng(seed)
    size = config.tile_size
    n_bands = len(config.bands())
    columns = 20
    for index, date in enumerate(config.training_pool):
        folder = config.tiles_dir(date, None, "train")
        folder.mkdir(parents=True)
        for tile in range(per_date):
            if index == 0 and tile % 4 == 3:
                continue
            row, col = divmod(tile, columns)
            layers = np.empty((n_bands + 1, size, size), dtype=np.uint16)
            layers[:n_bands] = rng.integers(200, 4000, (n_bands, size, size))
            layers[n_bands] = np.kron(rng.integers(1, len(config.classes) + 1, (4, 4)),
                                      np.ones((size // 4, size // 4), dtype=np.int64))
            step = config.tile_stride * config.resolution
            transform = Affine(config.resolution, 0.0, 400000.0 + col * step, 0.0, -config.resolution,
                               5800000.0 - row * step)
            profile = {"driver": "GTiff", "width": size, "height": size, "count": n_bands + 1, "dtype": "uint16",
                       "crs": config.crs, "transform": transform}
            with rasterio.open(folder / f"{date}_{config.level}_tile_{row:03d}_{col:03d}.tif", "w", **profile) as dst:
                dst.write(layers)
        config.tiles_summary_path(date, None).write_text("{}\n", encoding="utf-8")


def prepare_tiles(folder: Path) -> tuple[Config, str]:
    """The tiles to measure on, in ``folder``, and where they came from (``demo`` or ``generated``)."""
    config = load_config(_write_config(folder))
    demo = load_config(DEMO_CONFIG)
    if _demo_has_tiles(demo):
        _copy_demo_tiles(demo, config)
        return config, "demo"
    _generate_tiles(config)
    return config, "generated"


# ---------------------------------------------------------------------- ours
def time_batches(generator, n_batches: int, rounds: int) -> float:
    """Batches per second of a generator: the best of ``rounds`` rounds of ``n_batches`` (after one warm-up batch).

    Every round asks for other batch indices, so no batch is drawn twice.
    """
    generator[rounds * n_batches]
    best = 0.0
    for round_index in range(rounds):
        started = time.perf_counter()
        for index in range(round_index * n_batches, (round_index + 1) * n_batches):
            generator[index]
        best = max(best, n_batches / (time.perf_counter() - started))
    return best


def make_ours(config: Config, seed: int = 0) -> dict[str, object]:
    """Our three training generators, with augmentation."""
    return {
        "fcn": SingleTileGenerator(config, config.fcn_training, "train", batch_size=FCN_BATCH, augment=True, seed=seed),
        "fixed": FixedSequenceGenerator(config, config.fixed_sequence, "train", batch_size=LSTM_BATCH, augment=True,
                                        seed=seed),
        "random": RandomSequenceGenerator(config, config.training_pool, TIMESTEPS, "train", batch_size=LSTM_BATCH,
                                          augment=True, seed=seed),
    }


# ---------------------------------------------------------------------- original (plain re-creation)
class OriginalGenerators:
    """The original's generators, re-created plainly: file reads, float64 and per-channel rotations per batch."""

    def __init__(self, config: Config, seed: int = 0) -> None:
        self.config = config
        self.n_bands = len(config.bands())
        self.n_classes = len(config.classes)
        self.mean = list(config.norm_mean or [])
        self.std = list(config.norm_std or [])
        self.pick = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)

    def folder(self, date: str) -> Path:
        return self.config.tiles_dir(date, None, "train")

    def path(self, date: str, ending: str) -> Path:
        return self.folder(date) / f"{date}_{self.config.level}_{ending}.tif"

    def endings(self, date: str) -> list[str]:
        return [p.stem[-12:] for p in self.folder(date).glob("*.tif")]

    def read(self, path: Path) -> np.ndarray:
        """One tile as float64 (H, W, bands + 1), bands normalised channel by channel."""
        with rasterio.open(path) as src:
            image = np.moveaxis(src.read(), 0, -1).astype(np.float64)
        for i in range(self.n_bands):
            image[..., i] -= self.mean[i]
            image[..., i] /= self.std[i]
        return image

    def to_one_hot(self, labels: np.ndarray) -> np.ndarray:
        import keras

        return keras.utils.to_categorical(labels, num_classes=self.n_classes + 1)[..., 1:]

    def single(self, dates: list[str], files: list[Path] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One FCN batch: tiles drawn over all dates, each read, flipped and rotated channel by channel."""
        files = files if files is not None else [p for d in dates for p in self.folder(d).glob("*.tif")]
        batch_x, batch_y = [], []
        for path in self.pick.sample(files, FCN_BATCH):
            image = self.read(path)
            if self.pick.choice([True, False]):
                image = np.flipud(image)
            if self.pick.choice([True, False]):
                image = np.fliplr(image)
            angle = self.np_rng.uniform(-MAX_ANGLE, MAX_ANGLE)
            image = np.dstack([rotate(image[..., c], angle, mode="reflect", order=1, preserve_range=True)
                               for c in range(image.shape[-1])])
            batch_x.append(image[..., :self.n_bands])
            batch_y.append(self.to_one_hot(image[..., self.n_bands]))
        return np.array(batch_x), np.array(batch_y)

    def sequence(self, dates: list[str], shared: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """One LSTM batch of the given dates: reads per tile and date, per-channel augmentation."""
        size = self.config.tile_size
        x = np.empty((LSTM_BATCH, len(dates), size, size, self.n_bands))
        y = np.empty((LSTM_BATCH, size, size))
        y_one_hot = np.empty((LSTM_BATCH, size, size, self.n_classes))
        batch = self.pick.sample(shared, LSTM_BATCH)
        for t, date in enumerate(dates):
            for j, ending in enumerate(batch):
                image = self.read(self.path(date, ending))
                x[j, t] = image[..., :self.n_bands]
                if t == 0:
                    y[j] = image[..., self.n_bands]
        for s in range(LSTM_BATCH):
            if self.pick.choice([True, False]):
                for t in range(len(dates)):
                    for c in range(self.n_bands):
                        x[s, t, ..., c] = np.flipud(x[s, t, ..., c])
                y[s] = np.flipud(y[s])
            if self.pick.choice([True, False]):
                for t in range(len(dates)):
                    for c in range(self.n_bands):
                        x[s, t, ..., c] = np.fliplr(x[s, t, ..., c])
                y[s] = np.fliplr(y[s])
            angle = self.np_rng.uniform(-MAX_ANGLE, MAX_ANGLE)
            for t in range(len(dates)):
                for c in range(self.n_bands):
                    x[s, t, ..., c] = rotate(x[s, t, ..., c], angle, mode="reflect", order=1, preserve_range=True)
            y[s] = rotate(y[s], angle, mode="reflect", order=1, preserve_range=True)
            y_one_hot[s] = self.to_one_hot(y[s])
        return x, y_one_hot

    def shared_endings(self, dates: list[str]) -> list[str]:
        """Tiles present on every date (list lookups, as the original)."""
        lists = [self.endings(d) for d in dates]
        return [e for e in lists[0] if all(e in other for other in lists[1:])]

    def random_sequence(self, pool: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """One random-sequence batch: draw and sort the dates, list their folders, then as fixed."""
        chosen = [pool[i] for i in sorted(self.pick.sample(range(len(pool)), TIMESTEPS))]
        return self.sequence(chosen, self.shared_endings(chosen))


def time_original(function, n_batches: int, rounds: int) -> float:
    """Batches per second of one of the original's batch functions (best of ``rounds`` rounds)."""
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n_batches):
            function()
        best = max(best, n_batches / (time.perf_counter() - started))
    return best


# ---------------------------------------------------------------------- agreement
def agreement(config: Config, seed: int = 3) -> tuple[float, float, bool]:
    """Our rotation against the original's on the same tiles with the same flips and angles.

    Returns:
        The largest band difference in normalised units, relative to 1 + |value| (float32
        against float64); the share of label pixels to which the original's bilinear rotation
        gives a class id absent from the tile; whether our labels only hold ids of their tile.
    """
    from helpers.train.tile_cache import load_tiles

    tiles = load_tiles(config, config.fcn_training[0], "train")
    rng = np.random.default_rng(seed)
    count = min(32, len(tiles))
    picks = rng.choice(len(tiles), count, replace=False)
    normaliser = normaliser_for(config, None, [])
    x = normaliser(tiles.x[picks])
    y = np.asarray(tiles.y[picks])
    flip_ud, flip_lr = rng.random(count) < 0.5, rng.random(count) < 0.5
    angles = rng.uniform(-MAX_ANGLE, MAX_ANGLE, count)
    ours_x, ours_y = transform_batch(x, y, flip_ud, flip_lr, angles)
    largest, bogus, valid = 0.0, 0, True
    for s in range(count):
        image = np.dstack([x[s].astype(np.float64), y[s].astype(np.float64)])
        if flip_ud[s]:
            image = np.flipud(image)
        if flip_lr[s]:
            image = np.fliplr(image)
        rotated = np.dstack([rotate(image[..., c], angles[s], mode="reflect", order=1, preserve_range=True)
                             for c in range(image.shape[-1])])
        reference = rotated[..., :-1]
        largest = max(largest, float((np.abs(reference - ours_x[s]) / (1 + np.abs(reference))).max()))
        ids = np.unique(y[s])
        bogus += int((~np.isin(rotated[..., -1].astype(int), ids)).sum())
        valid &= bool(np.isin(ours_y[s], ids).all())
    return largest, bogus / y.size, valid


# ---------------------------------------------------------------------- full-size training steps (child)
def training_step_seconds(kind: str, x: np.ndarray, y: np.ndarray, config_path: str, steps: int,
                          width: float = 1.0, seed: int | None = None, deterministic: bool = False,
                          inter_op: int = THREADS) -> dict:
    """Median seconds of ``train_on_batch`` of a model (full size by default) on ``THREADS`` CPU threads.

    Runs in a fresh child process: the thread limits are set before TensorFlow starts. With a
    seed, the weights are seeded (and TensorFlow's op determinism switched on if asked) and the
    result holds a digest of the trained weights, to compare two runs bit for bit; ``inter_op``
    is how many ops may run at once.
    """
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:THREADS]
        os.sched_setaffinity(0, cpus)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    import keras

    from helpers.train.models import build_fcn_lstm, build_unet

    if seed is not None:
        keras.utils.set_random_seed(seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
    config = load_config(config_path)
    try:
        from helpers.train.losses import WeightedCategoricalCrossentropy, class_weights

        loss, loss_name = WeightedCategoricalCrossentropy(class_weights(config)), "weighted CE"
    except ImportError:
        loss, loss_name = keras.losses.CategoricalCrossentropy(), "plain CE"
    model = build_unet(n_bands=x.shape[-1], n_classes=y.shape[-1], width=width)
    fcn_params = model.count_params()
    if kind == "lstm":
        model = build_fcn_lstm(model, timesteps=x.shape[1], tile_size=x.shape[2])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), loss=loss,
                  metrics=["categorical_accuracy"])
    started = time.perf_counter()
    model.train_on_batch(x, y)  # traces the training function
    first_s = time.perf_counter() - started
    model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - started)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    return {"step_s": statistics.median(times), "first_s": first_s, "params": model.count_params(),
            "fcn_params": fcn_params, "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None, "loss": loss_name, "weights": digest[:16]}


DETERMINISM_MODES = {"seeds only": (False, THREADS), "op determinism": (True, THREADS),
                     "op det. + serial ops": (True, 1)}
"""Modes measured by ``--determinism``: (op determinism, inter-op threads); the scripts' ``--seed`` is the last."""


def determinism_cost(batches: dict[str, tuple[np.ndarray, np.ndarray]], config_path: str, steps: int) -> dict:
    """Seconds per step with and without TensorFlow's op determinism and serial ops, and whether seeded runs agree.

    Each (model, mode) trains twice from seed 1 in fresh child processes; every step is the same
    batch, so the weights after the steps differ between the two runs only if the arithmetic is
    not deterministic.
    """
    print("\nTensorFlow determinism (same seed twice per mode, fresh child processes):")
    rows, figures = [], {}
    for label, kind, width, (x, y) in (("unet_full", "fcn", 1.0, batches["fcn"]),
                                       ("unet_demo", "fcn", 0.25, batches["fcn"]),
                                       ("lstm_full", "lstm", 1.0, batches["lstm"]),
                                       ("lstm_demo", "lstm", 0.25, batches["lstm"])):
        cells, base = [], None
        for mode, (deterministic, inter_op) in DETERMINISM_MODES.items():
            runs = [measure_in_child(training_step_seconds, kind, x, y, config_path, steps, width, 1, deterministic,
                                     inter_op).value for _ in range(2)]
            step = min(r["step_s"] for r in runs)
            base = base or step
            same = runs[0]["weights"] == runs[1]["weights"]
            cells.append(f"{fmt_seconds(step)} {100 * (step / base - 1):+.0f} % {'same' if same else 'DIFFER'}")
            tag = f"{label}_{mode.split()[0]}_{inter_op}"
            figures.update({f"{tag}_step_s": step, f"{tag}_repeatable": same})
        rows.append([f"{label} ({runs[0]['params']:,} params, batch {len(x)})", *cells])
    print_table(["model, train_on_batch", *DETERMINISM_MODES], rows)
    print(f"  each cell: the faster of two children's median of {steps} steps after 2 warm-up steps, its cost against "
          f"seeds only, and whether the two runs from seed 1 end with the same weights (bit for bit); serial ops = "
          f"1 inter-op thread (intra-op {THREADS})")
    return figures


def model_available() -> bool:
    return (REPO_ROOT / "src" / "helpers" / "train" / "models.py").is_file()


def prefetch_shares(ours: dict[str, object], step_ms: float, cpu_steps: dict[str, dict],
                    workers: tuple[int, ...]) -> dict[str, object]:
    """The input share of the emulated training loop for each number of worker threads and each step time."""
    print()
    rows, figures = [], {}
    for kind, name in (("fcn", "fcn"), ("lstm", "random")):
        step_times = {"gpu": step_ms / 1000}
        if kind in cpu_steps:
            step_times["cpu"] = cpu_steps[kind]["step_s"]
        for where, step_s in step_times.items():
            steps = 100 if where == "gpu" else max(4, min(100, round(10 / step_s)))
            cells = []
            for count in workers:
                wait = input_wait(ours[name], step_s, steps, count, PREFETCH_BATCHES)
                cells.append(f"{fmt_seconds(wait.wait_s)} = {100 * wait.share:.1f} %")
                tag = f"{kind}_{where}_workers{count}"
                figures[f"{tag}_wait_ms"] = wait.wait_s * 1000
                figures[f"{tag}_input_share"] = wait.share
            label = "GPU step (--step-ms)" if where == "gpu" else "measured CPU step"
            rows.append([f"{'U-Net' if kind == 'fcn' else 'FCN+ConvLSTM'}, {label}", fmt_seconds(step_s), steps,
                         *cells])
    print_table(["emulated training loop", "step", "steps",
                 *(f"wait/step, {count} workers" if count > 1 else "wait/step, no workers" for count in workers)],
                rows)
    print(f"  wait = mean time the loop waits for its next batch (Keras' PyDataset adapter, queue of "
          f"{PREFETCH_BATCHES} batches, first batch of the epoch included), share = wait / (wait + step); every "
          f"step is a sleep, the host is free meanwhile as when a GPU trains (a CPU step uses the cores itself, "
          f"so on the CPU the workers compete with it)")
    default = int(INPUT_WORKERS.default)
    figures["gpu_input_share_target_met"] = all(
        v < 0.10 for k, v in figures.items() if k.endswith(f"gpu_workers{default}_input_share"))
    return figures


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Prepare the tiles, measure ours, the re-created original and the training steps; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and training steps")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the copied or generated tiles (kept); default: a temporary folder, deleted")
    parser.add_argument("--no-model", action="store_true", help="skip the full-size training steps")
    parser.add_argument("--step-ms", type=float, default=15.0,
                        help="step time of the emulated GPU training loop, in ms (default 15: a U-Net step, batch "
                             "64, on one H200)")
    parser.add_argument("--workers", default=f"0,{INPUT_WORKERS.default}",
                        help="worker-thread counts of the emulated training loop, comma-separated (default: none and "
                             f"the training scripts' default, 0,{INPUT_WORKERS.default})")
    parser.add_argument("--determinism", action="store_true",
                        help="only measure the cost of TensorFlow's op determinism (seconds per step with and "
                             "without, tiny and full-size U-Net, full-size FCN+ConvLSTM) and its repeatability")
    args = parser.parse_args(argv)
    if not args.step_ms > 0:
        parser.error(f"--step-ms {args.step_ms}: must be above 0")
    try:
        workers = tuple(int(part) for part in args.workers.split(","))
    except ValueError:
        workers = ()
    if not workers or min(workers) < 0:
        parser.error(f"--workers {args.workers}: must be comma-separated counts of 0 or more")
    ours_batches, original_batches, rounds, model_steps = (20, 3, 2, 2) if args.quick else (50, 10, 3, 5)

    with work_folder(args.workdir, "bench_training_input_") as folder:
        (config, source), prepare_s = timed(prepare_tiles, folder)
        n_tiles = {d: len(list(config.tiles_dir(d, None, "train").glob("*.tif"))) for d in config.training_pool}
        print(f"Tiles: {source} ({sum(n_tiles.values())} train tiles of {config.tile_size}x{config.tile_size} px, "
              f"{len(config.bands())} bands, {len(n_tiles)} dates, {min(n_tiles.values())}-{max(n_tiles.values())} "
              f"per date); work folder {folder}; prepared in {fmt_seconds(prepare_s)}")

        if args.determinism:
            ours = make_ours(config)
            batches = {"fcn": ours["fcn"][0], "lstm": ours["random"][0]}
            print(result_line({**determinism_cost(batches, str(config.source), model_steps), "quick": args.quick}))
            return 0
        ours, first_load_s = timed(make_ours, config)
        _, cached_load_s = timed(make_ours, config)
        rates = {name: time_batches(generator, ours_batches, rounds) for name, generator in ours.items()}

        original = OriginalGenerators(config)
        fcn_files = [p for d in config.fcn_training for p in original.folder(d).glob("*.tif")]
        fixed_shared = original.shared_endings(list(config.fixed_sequence))
        original_rates = {
            "fcn": time_original(lambda: original.single(list(config.fcn_training), fcn_files), original_batches,
                                 rounds),
            "fixed": time_original(lambda: original.sequence(list(config.fixed_sequence), fixed_shared),
                                   original_batches, rounds),
            "random": time_original(lambda: original.random_sequence(list(config.training_pool)), original_batches,
                                    rounds),
        }
        band_diff, bogus_share, ours_labels_valid = agreement(config)

        steps: dict[str, dict] = {}
        if not args.no_model and model_available():
            for kind, generator in (("fcn", ours["fcn"]), ("lstm", ours["random"])):
                x, y = generator[0]
                steps[kind] = measure_in_child(training_step_seconds, kind, x, y, str(config.source),
                                               model_steps).value
        elif not args.no_model:
            print("  src/helpers/train/models.py not found: training steps not measured")
        prefetch = prefetch_shares(ours, args.step_ms, steps, workers)

    speedup = {name: rates[name] / original_rates[name] for name in rates}
    labels = {"fcn": f"FCN single tiles, batch {FCN_BATCH}",
              "fixed": f"LSTM fixed sequences, {LSTM_BATCH} x {len(config.fixed_sequence)} dates",
              "random": f"LSTM random sequences, {LSTM_BATCH} x {TIMESTEPS} of {len(config.training_pool)} dates"}
    print()
    print_table(
        ["generator (augmented)", "ours batches/s", "original batches/s", "speedup", "ours per batch"],
        [[labels[n], f"{rates[n]:.1f}", f"{original_rates[n]:.2f}", f"{speedup[n]:.0f}x", fmt_seconds(1 / rates[n])]
         for n in rates],
    )
    share: dict[str, float] = {}
    if steps:
        print()
        rows = []
        for kind, data_name in (("fcn", "fcn"), ("lstm", "random")):
            step = steps[kind]
            data_s = 1 / rates[data_name]
            share[kind] = data_s / step["step_s"]
            rows.append([f"{'U-Net' if kind == 'fcn' else 'FCN+ConvLSTM'} ({step['params']:,} params)",
                         fmt_seconds(step["step_s"]), fmt_seconds(step["first_s"]), fmt_seconds(data_s),
                         f"{100 * share[kind]:.2f} %"])
        print_table(["full-size model, train_on_batch", f"step ({steps['fcn']['cpus']} CPUs)", "first step",
                     "our data time", "data / step"], rows)
    print()
    print("How the figures were obtained:")
    print(f"  ours      = best of {rounds} rounds of {ours_batches} batches per generator, after one warm-up "
          f"batch; all (date, split) tile sets loaded once: first load from the GeoTIFFs + cache writing "
          f"{fmt_seconds(first_load_s)}, from the memory-mapped cache {fmt_seconds(cached_load_s)} (all three "
          f"generators, not counted)")
    print(f"  original  = best of {rounds} rounds of {original_batches} batches each: a rasterio read of every tile "
          f"(x dates) per batch, float64 normalisation and skimage rotations channel by channel (labels bilinear), "
          f"to_categorical")
    if steps:
        print(f"  steps     = median of {model_steps} train_on_batch calls after 2 warm-up calls, {THREADS} CPU "
              f"threads, Adam(clipnorm=1), {steps['fcn']['loss']}, in a child process; the LSTM step uses our "
              f"random-sequence batch; data / step = our seconds per batch / seconds per step")
    print(f"  agreement = our rotation vs skimage per channel with the same flips and angles: largest band "
          f"difference / (1 + |value|) {band_diff:.2e}; the original's bilinear label rotation gives a class id "
          f"absent from the tile in {100 * bogus_share:.2f} % of the label pixels, ours keeps only the tile's ids: "
          f"{ours_labels_valid}")
    ok = band_diff < 1e-4 and ours_labels_valid
    figures: dict[str, object] = {
        "fcn_speedup": speedup["fcn"],
        "lstm_speedup": speedup["random"],
        "lstm_fixed_speedup": speedup["fixed"],
        "fcn_batches_per_s": rates["fcn"],
        "lstm_batches_per_s": rates["random"],
        "lstm_fixed_batches_per_s": rates["fixed"],
        "original_fcn_batches_per_s": original_rates["fcn"],
        "original_lstm_batches_per_s": original_rates["random"],
        "original_lstm_fixed_batches_per_s": original_rates["fixed"],
    }
    if steps:
        figures.update({
            "fcn_step_s": steps["fcn"]["step_s"],
            "lstm_step_s": steps["lstm"]["step_s"],
            "fcn_input_share": share["fcn"],
            "lstm_input_share": share["lstm"],
            "fcn_params": steps["fcn"]["params"],
            "lstm_params": steps["lstm"]["params"],
            "unet_params_ok": steps["fcn"]["params"] == UNET_PARAMS,
        })
    figures.update({
        "speedup_target_met": min(speedup.values()) >= 10,
        "input_share_target_met": bool(share) and max(share.values()) < 0.10,
        "first_load_s": first_load_s,
        "cached_load_s": cached_load_s,
        "band_max_diff": band_diff,
        "original_bogus_label_share": bogus_share,
        "labels_valid": ours_labels_valid,
        "tiles": source,
        "quick": args.quick,
        "step_ms": args.step_ms,
        **prefetch,
    })
    print(result_line(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
