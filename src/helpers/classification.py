"""Full-scene classification of the new dates by sliding windows (SPEC §7, ``classify.py``).

A scene is cut into square windows; each window is predicted in batches and only its core
(the window without a margin on every side) is written to the map, so that every pixel is
predicted with context around it. Windows at the scene edges are clamped to the scene and
also keep their outer part, so every pixel of the scene gets exactly one prediction (the
original left an 8-px frame unpredicted).

* faithful mode: the original's 32x32 windows on a 16-px stride, the centre 16x16 kept;
* fast mode: large windows (``FAST_CORE`` + 2 x ``FAST_MARGIN``), the margin discarded.

The stacks are read in row chunks a little taller than one row of windows, so memory is
bounded by the window size and the scene width, not by the scene size. An FCN maps a
combination to the mean softmax over its dates (each date predicted on its own); a sequence
model sees the combination's dates in chronological order as one sequence per window.
"""

from __future__ import annotations

import contextlib
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.windows import Window

from helpers.config import Config
from helpers.errors import InputError
from helpers.grid import check_same_grid, grid_of_raster
from helpers.io import open_raster, write_json_atomic, write_raster
from helpers.previews import write_class_png

MODES: tuple[str, ...] = ("faithful", "fast")
FAST_CORE = 256
"""Side of the kept core of a fast-mode window (pixels)."""
FAST_MARGIN = 32
"""Margin discarded on each side of a fast-mode window (window 320 = 10 x 32)."""
MODEL_MULTIPLE = 32
"""Window sides must be multiples of this (the U-Net downsamples five times)."""
PIXEL_BUDGET = 1 << 18
"""Default number of input pixels (windows x dates x window area) per model call."""
CHUNK_EXTRA_ROWS = 256
"""Rows read beyond one row of windows, so that a GeoTIFF block row is decoded about once."""
AREA_LAYERS: frozenset[str] = frozenset({"area", "extra_area"})
"""Descriptions of the area layers of a NEW stack."""

if TYPE_CHECKING:
    from helpers.generators import Normaliser

PredictFn = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------- window plan
@dataclass(frozen=True)
class AxisPlan:
    """Windows along one axis and the part of the scene each of them writes.

    Attributes:
        starts: First pixel of every window (increasing; the last one clamped to the scene).
        lo: First pixel written by every window.
        hi: End (exclusive) of the pixels written by every window; ``lo[i + 1] == hi[i]``,
            ``lo[0] == 0`` and ``hi[-1]`` is the axis length.
    """

    starts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def plan_axis(length: int, window: int, margin: int) -> AxisPlan:
    """Plan the windows along one axis of ``length`` pixels.

    Window ``i`` starts at ``i * core`` (``core = window - 2 * margin``) while it fits; one
    more window clamped to the end covers the rest. Each window writes its core, the first
    one also the pixels before its core and the last one everything up to the end.

    Args:
        length: Pixels along the axis (at least ``window``).
        window: Window side.
        margin: Pixels discarded on each side of a window's core (``0 <= 2 * margin < window``).

    Returns:
        The plan.

    Raises:
        ValueError: On sizes that cannot be planned.
    """
    core = window - 2 * margin
    if margin < 0 or core <= 0:
        raise ValueError(f"margin {margin} does not leave a core in a {window}-px window")
    if length < window:
        raise ValueError(f"axis of {length} px is shorter than the {window}-px window")
    starts = list(range(0, length - window + 1, core))
    if starts[-1] + window < length:
        starts.append(length - window)
    starts_array = np.asarray(starts, dtype=np.int64)
    hi = starts_array + window - margin
    hi[-1] = length
    lo = np.concatenate([[0], hi[:-1]])
    return AxisPlan(starts_array, lo, hi)


def window_geometry(mode: str, tile_size: int = 32, prediction_stride: int = 16,
                    shape: tuple[int, int] | None = None) -> tuple[int, int]:
    """Window side and margin of a mode, shrunk to fit a small scene in fast mode.

    Args:
        mode: ``"faithful"`` or ``"fast"``.
        tile_size: The config's tile size (faithful window).
        prediction_stride: The config's prediction stride (faithful core).
        shape: Scene (rows, cols), to shrink a fast window that does not fit.

    Returns:
        ``(window, margin)``.

    Raises:
        ValueError: On an unknown mode or a faithful geometry with no centre.
        InputError: If the scene is smaller than the smallest window.
    """
    if mode == "faithful":
        window, margin = tile_size, (tile_size - prediction_stride) // 2
        if margin < 0 or window - 2 * margin <= 0:
            raise ValueError(f"tile size {tile_size} and stride {prediction_stride} leave no centre")
    elif mode == "fast":
        window, margin = FAST_CORE + 2 * FAST_MARGIN, FAST_MARGIN
    else:
        raise ValueError(f"unknown mode '{mode}' (use one of {MODES})")
    if shape is not None:
        smallest = min(shape)
        if smallest < window:
            if mode == "faithful" or smallest < MODEL_MULTIPLE:
                raise InputError(f"the scene ({shape[0]}x{shape[1]} px) is smaller than one {window}-px window")
            window = smallest // MODEL_MULTIPLE * MODEL_MULTIPLE
            margin = min(margin, window // 4)
    return window, margin


def default_batch_size(window: int, dates_per_window: int) -> int:
    """Windows per model call so that one call sees about :data:`PIXEL_BUDGET` input pixels."""
    return max(1, PIXEL_BUDGET // (window * window * max(1, dates_per_window)))


# ---------------------------------------------------------------------- reading
class _ChunkReader:
    """Row chunks of several same-grid stacks as one ``(dates, rows, cols, layers)`` uint16 array."""

    def __init__(self, datasets: Sequence[rasterio.DatasetReader], window: int) -> None:
        self.datasets = datasets
        self.height = datasets[0].height
        self.rows = window + CHUNK_EXTRA_ROWS
        self.top = 0
        self.data: np.ndarray | None = None

    def rows_at(self, row: int, height: int) -> np.ndarray:
        """The chunk rows ``[row, row + height)`` of every date, reading a new chunk if needed."""
        if self.data is None or row < self.top or row + height > self.top + self.data.shape[1]:
            self.top = row
            bottom = min(self.height, row + max(self.rows, height))
            block = Window(0, row, self.datasets[0].width, bottom - row)
            self.data = None  # release the previous chunk before reading the next
            self.data = np.stack([np.moveaxis(ds.read(window=block), 0, -1) for ds in self.datasets])
        return self.data[:, row - self.top: row - self.top + height]


def area_layers(data: np.ndarray, n_bands: int) -> np.ndarray:
    """Union of the area layers (the layers after the bands, last axis) as a bool array.

    A stack without area layers counts as inside everywhere.
    """
    if data.shape[-1] <= n_bands:
        return np.ones(data.shape[:-1], dtype=bool)
    return np.any(data[..., n_bands:] != 0, axis=-1)


def read_area(stack: Path, n_bands: int, block_rows: int = 512) -> np.ndarray:
    """Area of a NEW stack: the union of its layers after the first ``n_bands`` (bool, rows x cols)."""
    with open_raster(stack) as src:
        area = np.zeros((src.height, src.width), dtype=bool)
        layers = list(range(n_bands + 1, src.count + 1))
        if not layers:
            area[:] = True
            return area
        for row in range(0, src.height, block_rows):
            block = Window(0, row, src.width, min(block_rows, src.height - row))
            area[row: row + int(block.height)] = np.any(src.read(layers, window=block) != 0, axis=0)
    return area


# ---------------------------------------------------------------------- classification
def classify_scene(
    predict_fn: PredictFn,
    stacks: Sequence[Path],
    n_bands: int,
    n_classes: int,
    window: int,
    margin: int,
    normaliser: Normaliser,
    sequence: bool,
    batch_size: int | None = None,
    progress: bool | None = False,
    skip_outside: bool = True,
) -> np.ndarray:
    """Class probabilities of a whole scene from one stack per date.

    Args:
        predict_fn: Model call on a float32 batch: ``(n, window, window, n_bands)`` for an FCN,
            ``(n, dates, window, window, n_bands)`` for a sequence model; returns
            ``(n, window, window, n_classes)`` non-negative scores.
        stacks: One NEW merged stack per date (bands, then the area layer(s)), same grid,
            in chronological order.
        n_bands: Number of bands at the start of each stack.
        n_classes: Number of model outputs.
        window: Window side (a multiple of 32 for the U-Net).
        margin: Pixels discarded on each side of a window (except at the scene edges).
        normaliser: Per-band standardisation of the model's training.
        sequence: True for a sequence model (one sequence of all dates per window); False
            for an FCN (each date on its own, the mean of the softmax over the dates).
        batch_size: Windows per model call (default: :func:`default_batch_size`).
        progress: Show a progress bar (None: only on a terminal).
        skip_outside: Do not predict windows whose written part holds no area pixel.

    Returns:
        float32 ``(n_classes, rows, cols)``: per pixel the probabilities (summing to 1 in the
        area), 0 outside the area (the union of the area layers of the first stack).

    Raises:
        InputError: If the stacks differ in grid or have too few layers, or the scene is
            smaller than one window.
    """
    from tqdm import tqdm

    if not stacks:
        raise ValueError("classify_scene needs at least one stack")
    dates = len(stacks)
    batch = batch_size or default_batch_size(window, dates)
    datasets = [rasterio.open(path) for path in stacks]
    try:
        reference = datasets[0]
        height, width = reference.height, reference.width
        for path, ds in zip(stacks, datasets, strict=True):
            if ds.count < n_bands:
                raise InputError(f"{path}: {ds.count} layers, the model needs {n_bands} bands")
            if (ds.height, ds.width) != (height, width) or ds.transform != reference.transform:
                raise InputError(f"{path}: grid differs from {stacks[0]}")
        try:
            rows, cols = plan_axis(height, window, margin), plan_axis(width, window, margin)
        except ValueError:
            raise InputError(f"the scene ({height}x{width} px) is smaller than one {window}-px window") from None
        probabilities = np.zeros((n_classes, height, width), dtype=np.float32)
        area = np.zeros((height, width), dtype=bool)
        reader = _ChunkReader(datasets, window)
        shape = (batch, dates, window, window, n_bands)
        inputs = np.empty(shape, dtype=np.float32)
        pending: list[tuple[int, int]] = []  # (row index, col index) of the windows in ``inputs``

        def flush() -> None:
            count = len(pending)
            if not count:
                return
            if count < batch:
                inputs[count:] = 0.0  # a full batch every call: one traced shape
            if sequence:
                scores = np.asarray(predict_fn(inputs), dtype=np.float32)
            else:
                flat = np.asarray(predict_fn(inputs.reshape(batch * dates, window, window, n_bands)),
                                  dtype=np.float32)
                scores = flat.reshape(batch, dates, window, window, n_classes).mean(axis=1)
            for index, (r, c) in enumerate(pending):
                r0, r1, c0, c1 = rows.lo[r], rows.hi[r], cols.lo[c], cols.hi[c]
                y, x = rows.starts[r], cols.starts[c]
                part = scores[index, r0 - y: r1 - y, c0 - x: c1 - x]
                probabilities[:, r0:r1, c0:c1] = np.moveaxis(part, -1, 0)
            pending.clear()

        with tqdm(total=len(rows.starts) * len(cols.starts), unit="win", disable=None if progress is None
                  else not progress, desc="classify") as bar:
            for r, y in enumerate(rows.starts):
                strip = reader.rows_at(int(y), window)
                r0, r1 = rows.lo[r], rows.hi[r]
                area[r0:r1] = area_layers(strip[0, r0 - y: r1 - y], n_bands)
                for c, x in enumerate(cols.starts):
                    if skip_outside and not area[r0:r1, cols.lo[c]:cols.hi[c]].any():
                        continue
                    normaliser(strip[:, :, x: x + window, :n_bands], out=inputs[len(pending)])
                    pending.append((r, c))
                    if len(pending) == batch:
                        flush()
                bar.update(len(cols.starts))
            flush()
    finally:
        for ds in datasets:
            ds.close()
    if sequence:  # ConvLSTM output h = o * softmax(c) does not sum to 1
        total = probabilities.sum(axis=0)
        np.divide(probabilities, total, out=probabilities, where=total > 0)
    probabilities *= area
    return probabilities


def class_and_confidence(probabilities: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class map (argmax + 1, uint8, 0 outside the area) and confidence (max probability, 0 outside)."""
    classes = (np.argmax(probabilities, axis=0) + 1).astype(np.uint8)
    classes[~area] = 0
    confidence = probabilities.max(axis=0).astype(np.float32, copy=False)
    confidence[~area] = 0.0
    return classes, confidence


def agreement(first: np.ndarray, second: np.ndarray, area: np.ndarray) -> float:
    """Share of area pixels where two class maps agree (1.0 for an empty area)."""
    inside = int(area.sum())
    return float(np.count_nonzero((first == second) & area) / inside) if inside else 1.0


# ---------------------------------------------------------------------- a model of a study area
@dataclass
class CombinationResult:
    """What classifying one date combination gave."""

    k: int
    dates: tuple[str, ...]
    seconds: float
    pixels: int
    files: dict[str, Path] = field(default_factory=dict)
    agreement: float | None = None


def output_dir(config: Config, model_name: str) -> Path:
    """Folder of a model's classification outputs."""
    return config.processed_dir / "classified" / model_name


def load_normaliser(config: Config, model_name: str, n_bands: int) -> Normaliser:
    """The run's ``models/{run}_normalisation.json`` if present, else the config's constants."""
    path = config.models_root / f"{model_name}_normalisation.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mean, std = data["mean"], data["std"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a normalisation file with 'mean' and 'std' ({error})") from None
        source = str(path)
    elif config.norm_mean is not None and config.norm_std is not None:
        mean, std, source = config.norm_mean, config.norm_std, f"{config.source} [normalisation]"
    else:
        raise InputError(f"no {path.name} beside the model and no normalisation constants in {config.source}")
    if len(mean) != n_bands or len(std) != n_bands:
        raise InputError(f"{source}: {len(mean)} means and {len(std)} stds, the model takes {n_bands} bands")
    from helpers.generators import Normaliser

    try:
        return Normaliser.from_values(mean, std)
    except ValueError as error:
        raise InputError(f"{source}: {error}") from None


def select_combinations(config: Config, which: str | int) -> list[int]:
    """Combination numbers (0-based, as the original's classify.py) from ``"all"`` or a number."""
    count = len(config.combinations)
    if count == 0:
        raise InputError(f"{config.source}: no date combinations configured (dates.combinations)")
    if str(which).lower() == "all":
        return list(range(count))
    try:
        k = int(which)
    except ValueError:
        raise InputError(f"combination '{which}' is neither a number nor 'all'") from None
    if not 0 <= k < count:
        raise InputError(f"combination {k} does not exist (the config has 0..{count - 1})")
    return [k]


def check_stacks(config: Config, ks: Sequence[int], level: str | None, n_bands: int) -> dict[str, Path]:
    """The NEW stack of every date of the combinations; all present, on one grid, with the bands.

    Raises:
        InputError: Naming the first missing or unfitting stack and the step to run.
    """
    level = config.check_level(level)
    stacks: dict[str, Path] = {}
    for k in ks:
        for date in config.combinations[k]:
            path = config.merged_path(date, level, "NEW")
            if not path.is_file():
                raise InputError(f"{path}: no NEW stack for date {date} of combination {k}; run "
                                 f"src/data_processing/08b_process_new_batch.py (or 04_merge_tifs.py {date} {level} "
                                 "NEW) first")
            stacks[date] = path
    first = next(iter(stacks.values()))
    grid = grid_of_raster(first)
    for path in stacks.values():
        check_same_grid(path, grid, first)
        with open_raster(path) as src:
            count, names = src.count, list(src.descriptions)
        if all(names):  # the pipeline names every layer: bands, then area / extra_area
            bands = sum(1 for n in names if n.lower() not in AREA_LAYERS)
        else:
            bands = n_bands if count > n_bands else count
        if bands != n_bands or count <= n_bands:
            raise InputError(f"{path}: {bands} bands (+ {count - bands} area layers), but the model takes {n_bands} "
                             "bands followed by an area layer (model and data do not match)")
    return stacks


def saved_model_bands(path: Path) -> int | None:
    """Input bands of a saved ``.keras`` model read from its config, without loading Keras.

    Returns:
        The last axis of the first input layer, or None if the archive does not say.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    stack: list[Any] = [config]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                shape = (node.get("config") or {}).get("batch_shape")
                return int(shape[-1]) if shape and isinstance(shape[-1], int) else None
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _keras_predict(model: Any) -> PredictFn:
    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(batch))

    return predict


def classify_model(
    config: Config,
    model_name: str,
    ks: Sequence[int],
    mode: str = "faithful",
    batch_size: int | None = None,
    progress: bool | None = False,
    compare: bool = False,
    level: str | None = None,
    say: Callable[[str], None] = print,
) -> list[CombinationResult]:
    """Classify date combinations of a study area with a saved model and write the maps.

    Every input is checked before anything is written. Writes, under
    ``{processed}/classified/{model}/``, per combination ``{model}_combination_{k}_`` +
    ``probabilities.tif`` / ``class.tif`` / ``confidence.tif`` / ``class.png``, and updates
    ``{model}_classification.json``.

    Args:
        config: The study area.
        model_name: A model under the config's models root (a plain name).
        ks: Combination numbers (0-based).
        mode: ``"faithful"`` or ``"fast"``.
        batch_size: Windows per model call (default: about 2**18 input pixels per call).
        progress: Progress bar (None: only on a terminal).
        compare: In fast mode, also classify in faithful mode (not written) and report the
            pixel agreement of the class maps.
        level: Processing level (default: the config's).
        say: Where to print progress lines.

    Returns:
        One result per combination.

    Raises:
        InputError: Unknown or unplain model name, missing NEW stacks, model and data with
            different band counts, unusable normalisation.
    """
    from helpers.runs import model_path

    if mode not in MODES:
        raise InputError(f"unknown mode '{mode}' (use one of {MODES})")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    path = model_path(config.models_root, model_name)
    name = path.stem
    n_bands = len(config.bands(level))
    stacks = check_stacks(config, ks, level, n_bands)
    saved_bands = saved_model_bands(path)  # a mismatch is reported before Keras is even imported
    if saved_bands is not None and saved_bands != n_bands:
        raise InputError(f"{path}: the model takes {saved_bands} bands, the {config.check_level(level)} "
                         f"NEW stacks have {n_bands} (model and data do not match)")
    normaliser = load_normaliser(config, name, n_bands)
    from helpers.models import is_sequence_model, load_model, model_bands, model_classes, rebuild_sequence_model

    model = load_model(path)
    if model_bands(model) != n_bands:
        raise InputError(f"{path}: the model takes {model_bands(model)} bands, the {config.check_level(level)} "
                         f"NEW stacks have {n_bands} (model and data do not match)")
    n_classes = model_classes(model)
    sequence = is_sequence_model(model)
    first = stacks[config.combinations[ks[0]][0]]
    with open_raster(first) as src:
        profile = {"crs": src.crs, "transform": src.transform}
        shape = (src.height, src.width)
    area = read_area(first, n_bands)
    colours = {c.id: c.colour for c in config.classes}
    descriptions = [next((c.name for c in config.classes if c.id == i + 1), f"class {i + 1}") for i in range(n_classes)]
    out_dir = output_dir(config, name)
    rebuilt: dict[tuple[int, int], PredictFn] = {}

    def predictor(window: int, timesteps: int) -> PredictFn:
        key = (window, timesteps if sequence else 0)
        if key not in rebuilt:
            rebuilt[key] = _keras_predict(rebuild_sequence_model(model, window, timesteps) if sequence else model)
        return rebuilt[key]

    def run(dates: tuple[str, ...], run_mode: str) -> tuple[np.ndarray, int, int]:
        window, margin = window_geometry(run_mode, config.tile_size, config.prediction_stride, shape)
        probabilities = classify_scene(predictor(window, len(dates)), [stacks[d] for d in dates], n_bands, n_classes,
                                       window, margin, normaliser, sequence, batch_size, progress)
        return probabilities, window, margin

    summary_path = out_dir / f"{name}_classification.json"
    summary: dict[str, Any] = {"model": name, "sequence": sequence, "combinations": {}}
    if summary_path.is_file():
        with contextlib.suppress(json.JSONDecodeError, AttributeError):  # a damaged summary is rewritten
            summary["combinations"] = json.loads(summary_path.read_text(encoding="utf-8")).get("combinations", {})
    results = []
    for k in ks:
        dates = tuple(sorted(config.combinations[k]))
        started = time.perf_counter()
        probabilities, window, margin = run(dates, mode)
        seconds = time.perf_counter() - started
        classes, confidence = class_and_confidence(probabilities, area)
        stem = out_dir / f"{name}_combination_{k}"
        files = {"probabilities": stem.with_name(stem.name + "_probabilities.tif"),
                 "class": stem.with_name(stem.name + "_class.tif"),
                 "confidence": stem.with_name(stem.name + "_confidence.tif"),
                 "preview": stem.with_name(stem.name + "_class.png")}
        tags = {"MODEL": name, "MODE": mode, "DATES": ",".join(dates)}
        write_raster(files["probabilities"], probabilities, profile, descriptions, tags)
        del probabilities
        write_raster(files["class"], classes, profile, ["class"], tags)
        write_raster(files["confidence"], confidence, profile, ["confidence"], tags)
        write_class_png(files["preview"], classes, colours)
        result = CombinationResult(k, dates, seconds, shape[0] * shape[1], files)
        entry: dict[str, Any] = {"mode": mode, "window": window, "margin": margin, "dates": list(dates),
                                 "seconds": round(seconds, 3), "pixels_per_second": round(result.pixels / seconds, 1)}
        if compare and mode == "fast":
            faithful, _, _ = run(dates, "faithful")
            result.agreement = agreement(classes, class_and_confidence(faithful, area)[0], area)
            entry["agreement_with_faithful"] = round(result.agreement, 6)
        summary["combinations"][str(k)] = entry
        write_json_atomic(summary_path, summary)
        results.append(result)
        line = f"combination {k} ({', '.join(dates)}): {mode} {seconds:.1f} s ({result.pixels / seconds:,.0f} px/s)"
        if result.agreement is not None:
            line += f", agreement with faithful {100 * result.agreement:.2f} %"
        say(line)
    return results


def classify_combination(config: Config, model_name: str, k: int, mode: str = "faithful",
                         **options: Any) -> CombinationResult:
    """Classify one date combination (0-based ``k``); see :func:`classify_model` for the options."""
    return classify_model(config, model_name, select_combinations(config, k), mode, **options)[0]
