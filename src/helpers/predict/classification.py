"""Full-scene classification of the new dates of a study area (SPEC §7, ``classify.py``).

Loads a trained run (or the runs of an ensemble) through its record
(:func:`helpers.train.run_record.load_runs`: a run name in the config's ``models/`` or a model file or
run folder anywhere), checks that it fits the study area (level, bands, class table) and every
input before anything is written, runs :func:`helpers.predict.sliding_windows.predict_scene` over all
requested date combinations at once and writes, block by block, per combination the
probability map and the confidence (max probability) as Cloud Optimized GeoTIFFs, the class map
(argmax + 1, 0 outside the area) with the run's colour table and class names, and a PNG figure
of it (legend, title, coordinates, scale bar). Outputs are named by the run
(or ensemble) and written under the current study area's data root, wherever the model came
from; no ground truth is needed.
"""

from __future__ import annotations

import contextlib
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from helpers.core.background import WriteBehind
from helpers.core.config import LEVEL_BANDS, Config
from helpers.core.errors import InputError
from helpers.core.figures import write_map_figure
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.core.io import create_cog, create_raster, open_raster, read_raster, write_json_atomic
from helpers.predict.change_periods import map_stems, period_combinations, period_name
from helpers.predict.clear_counts import ClearCounts
from helpers.predict.clear_dates import cloud_mask_paths
from helpers.predict.forest_windows import check_forest_combinations, forest_window_model, per_pixel_geometry
from helpers.predict.keras_windows import keras_window_model
from helpers.predict.previews import class_categories, class_map_title
from helpers.predict.scene_reading import AREA_LAYERS
from helpers.predict.sliding_windows import (
    MODES,
    SceneBlock,
    buffer_rows,
    default_batch_size,
    plan_axis,
    predict_scene,
    window_geometry,
)
from helpers.predict.window_models import WindowModel
from helpers.train.run_record import ModelSpec, RunSet, load_runs

OUTPUT_BUFFER_BYTES = 1 << 30
"""Largest probability buffer of one pass; more combinations are split into several passes."""


# ---------------------------------------------------------------------- a model of a study area
@dataclass
class CombinationResult:
    """What classifying one date combination gave.

    Attributes:
        seconds: This combination's share of its pass (the pass time over the combinations
            classified in it).
    """

    k: int
    dates: tuple[str, ...]
    seconds: float
    pixels: int
    files: dict[str, Path] = field(default_factory=dict)
    agreement: float | None = None


def combination_dates(config: Config, period: str | None = None) -> tuple[tuple[str, ...], ...]:
    """The date combinations classify.py numbers: ``dates.combinations``, or a change period's (``"a"``/``"b"``)."""
    return config.combinations if period is None else period_combinations(config, period)


def select_combinations(config: Config, which: str | int, period: str | None = None) -> list[int]:
    """Combination numbers (0-based, as the original's classify.py) from ``"all"`` or a number.

    Args:
        config: The study area.
        which: ``"all"`` or one number.
        period: None for ``dates.combinations``, or a change period (``"a"``/``"b"``) whose
            combinations are numbered instead.
    """
    count = len(combination_dates(config, period))
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


def check_stacks(config: Config, ks: Sequence[int], level: str, bands: Sequence[str],
                 period: str | None = None) -> dict[str, Path]:
    """The NEW stack of every date of the combinations; all present, on one grid, with the model's bands.

    Args:
        config: The study area.
        ks: Combination numbers.
        level: The run's processing level (its stacks are read, whatever the config's level).
        bands: The band names the model takes, in order.
        period: None for ``dates.combinations``, or the change period the numbers ``ks`` refer to.

    Raises:
        InputError: Naming the first missing or unfitting stack and the step to run.
    """
    stacks: dict[str, Path] = {}
    combinations = combination_dates(config, period)
    for k in ks:
        for date in combinations[k]:
            path = config.merged_path(date, level, "NEW")
            if not path.is_file():
                others = [other for other in LEVEL_BANDS if other != level
                          and config.merged_path(date, other, "NEW").is_file()]
                hint = (f" (the model was trained on {level} data, the area has {others[0]} stacks: use a "
                        f"{others[0]} model or process the {level} products)") if others else ""
                raise InputError(f"{path}: no NEW stack for date {date} of combination {k}; run "
                                 f"src/data_processing/08b_process_new_batch.py (or 04_merge_tifs.py {date} {level} "
                                 f"NEW) first{hint}")
            stacks[date] = path
    first = next(iter(stacks.values()))
    grid = grid_of_raster(first)
    n_bands = len(bands)
    for path in stacks.values():
        check_same_grid(path, grid, first)
        with open_raster(path) as src:
            count, names = src.count, list(src.descriptions)
        if all(names):  # the pipeline names every layer: bands, then area / extra_area
            found = [n for n in names if n.lower() not in AREA_LAYERS]
            if found != list(bands):
                raise InputError(f"{path}: bands {', '.join(found)}, but the model takes {', '.join(bands)} "
                                 "(model and data do not match)")
            found_count = len(found)
        else:
            found_count = n_bands if count > n_bands else count
        if found_count != n_bands or count <= n_bands:
            raise InputError(f"{path}: {found_count} bands (+ {count - found_count} area layers), but the model takes "
                             f"{n_bands} bands followed by an area layer (model and data do not match)")
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


@dataclass
class LoadedModels:
    """A run or the runs of an ensemble, loaded and checked against their records and the data."""

    runs: RunSet
    models: list[Any]
    sequence: bool

    @property
    def name(self) -> str:
        """The name outputs are written under."""
        return self.runs.name

    @property
    def n_classes(self) -> int:
        """Number of model outputs (the run's class table)."""
        return len(self.runs.first.classes)

    def window_models(self, window: int, sequence_masking: str = "recurrent") -> list[WindowModel]:
        """Every member as a :class:`WindowModel` for ``window``-px windows.

        ``sequence_masking`` is how a sequence model takes cloud masks (``[clouds] sequence_masking``,
        :func:`helpers.predict.keras_windows.keras_window_model`).
        """
        return [forest_window_model(m, r.normaliser) if r.is_forest
                else keras_window_model(m, window, r.normaliser, sequence_masking)
                for m, r in zip(self.models, self.runs.members, strict=True)]


def load_models(runs: RunSet) -> LoadedModels:
    """Load the models of a run (or an ensemble's runs) and check them against their records.

    Raises:
        InputError: A model whose band count differs from its record (before Keras is imported),
            or whose class count differs, or an ensemble mixing FCN and sequence models.
    """
    for record in runs.members:  # a mismatch is reported before Keras is even imported
        saved_bands = saved_model_bands(record.model_path)
        if saved_bands is not None and saved_bands != len(record.bands):
            raise InputError(f"{record.model_path}: the model takes {saved_bands} bands, its run record lists "
                             f"{len(record.bands)} (model and record do not belong together)")
    if any(record.is_forest for record in runs.members):  # a random forest (never in an ensemble): no Keras
        forests = [record.load_model() for record in runs.members]
        return LoadedModels(runs, forests, any(m.takes_sequences for m in forests))
    from helpers.train.models import is_sequence_model

    models = [record.load_model() for record in runs.members]
    kinds = {is_sequence_model(m) for m in models}
    if len(kinds) > 1:
        raise InputError(f"ensemble '{runs.name}' mixes FCN and sequence models ({', '.join(runs.member_names)})")
    return LoadedModels(runs, models, kinds.pop())


def group_combinations(ks: Sequence[int], bytes_per_combination: int,
                       budget: int = OUTPUT_BUFFER_BYTES) -> list[list[int]]:
    """Split combinations into passes whose probability buffers stay within ``budget`` bytes."""
    size = max(1, budget // max(1, bytes_per_combination))
    return [list(ks[i: i + size]) for i in range(0, len(ks), size)]


def output_files(out_dir: Path, name: str, k: int, part: str | None = None) -> dict[str, Path]:
    """The files classify.py writes for combination ``k`` of a model: maps and preview.

    Args:
        out_dir: The model's output folder.
        name: The model's name.
        k: The combination number.
        part: The name part of the combination's maps (:func:`helpers.predict.change_periods.map_stems`;
            default ``combination_{k}``).
    """
    stem = f"{name}_{part or f'combination_{k}'}"
    return {"probabilities": out_dir / f"{stem}_probabilities.tif", "class": out_dir / f"{stem}_class.tif",
            "confidence": out_dir / f"{stem}_confidence.tif", "preview": out_dir / f"{stem}_class.png"}


def _block_window(block: SceneBlock) -> Window:
    return Window(0, block.row, block.area.shape[1], block.area.shape[0])


def _write_block(block: SceneBlock, writers: Sequence[Sequence[Any]]) -> None:
    """Write one block of every combination: probabilities, class map, confidence (in the write-behind thread)."""
    where = _block_window(block)
    for index, (probabilities, classes, confidence) in enumerate(writers):
        probabilities.write(block.probabilities[index], window=where)
        classes.write(block.classes[index], 1, window=where)
        confidence.write(block.confidence[index], 1, window=where)


def classify_model(
    config: Config,
    model: ModelSpec,
    ks: Sequence[int],
    mode: str = "faithful",
    batch_size: int | None = None,
    progress: bool | None = False,
    compare: bool = False,
    say: Callable[[str], None] = print,
    period: str | None = None,
    cloud_masking: bool | None = None,
) -> list[CombinationResult]:
    """Classify date combinations of a study area with a trained run and write the maps.

    All combinations are classified in one pass over the scene (each date's per-date part
    computed once per window), split into several passes only if their buffers would exceed
    :data:`OUTPUT_BUFFER_BYTES`. Writes, under ``{processed}/classified/{model}/`` of this
    config, per combination ``{model}_combination_{k}_`` + ``probabilities.tif`` /
    ``class.tif`` / ``confidence.tif`` / ``class.png``, and updates
    ``{model}_classification.json``. The level, bands, class names and colours, normalisation
    and faithful window size are the run's (its record); ground truth is not needed.

    Args:
        config: The study area whose NEW stacks are classified.
        model: A run name in the config's models folder (a plain ``str``; an ensemble
            ``{base}_ensemble_{runs}`` of saved runs ``{base}_{NN}`` has its maps averaged), or a
            ``Path`` to a ``.keras`` file or run folder anywhere.
        ks: Combination numbers (0-based).
        mode: ``"faithful"`` or ``"fast"``.
        batch_size: Windows per model call (default: about 2**18 input pixels per call).
        progress: Progress bar (None: only on a terminal).
        compare: In fast mode, also classify in faithful mode (not written) and report the
            pixel agreement of the class maps.
        say: Where to print progress lines.
        period: None to classify ``dates.combinations``; ``"a"`` or ``"b"`` to classify the
            combinations of that change period instead (``ks`` number them), written as
            ``{model}_period_{a|b}_{k}_*`` except those equal to one of ``dates.combinations``,
            which are written under that combination's name.
        cloud_masking: Classify each pixel from the dates that are clear there (the cloud masks
            of step 03b; :mod:`helpers.predict.clear_dates`); None: ``clouds.use_in_classification``.

    Returns:
        One result per combination.

    Raises:
        InputError: Unknown, unplain or damaged run; a run whose level, bands or class table
            do not fit the study area; missing or unfitting NEW stacks. Nothing is written then.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode '{mode}' (use one of {MODES})")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    runs = load_runs(model, config)  # before any stack is looked at
    record = runs.first
    level = runs.check_fits(config)
    if not 0 < config.prediction_stride <= record.tile_size:
        raise InputError(f"{config.source}: config key 'tiling.prediction_stride': {config.prediction_stride} "
                         f"leaves no window centre in the {record.tile_size}-px windows of model '{record.name}'")
    n_bands = len(record.bands)
    period = None if period is None else period_name(period)
    combinations, parts = combination_dates(config, period), map_stems(config, period)
    stacks = check_stacks(config, ks, level, record.bands, period)
    if record.is_forest:
        check_forest_combinations(record, {k: combinations[k] for k in ks},
                                  "dates.combinations" if period is None else f"change.period_{period}")
    first = stacks[combinations[ks[0]][0]]
    masking = config.clouds.use_in_classification if cloud_masking is None else cloud_masking
    masks = dict(zip(stacks, cloud_mask_paths(config, list(stacks), level, first), strict=True)) if masking else {}
    loaded = load_models(runs)
    name, n_classes = loaded.name, loaded.n_classes
    with open_raster(first) as src:
        grid = {"crs": src.crs, "transform": src.transform}
        shape = (src.height, src.width)
    categories = class_categories(record.classes)
    descriptions = [next((c.name for c in record.classes if c.id == i + 1), f"class {i + 1}") for i in range(n_classes)]
    out_dir = config.classified_dir(name)
    window_models: dict[int, list[WindowModel]] = {}

    def geometry(run_mode: str) -> tuple[int, int]:
        window, margin = window_geometry(run_mode, record.tile_size, config.prediction_stride, shape)
        return per_pixel_geometry(window, margin) if record.is_forest else (window, margin)

    def run(group: list[int], run_mode: str) -> tuple[Iterable[SceneBlock], int, int]:
        window, margin = geometry(run_mode)
        if window not in window_models:
            window_models[window] = loaded.window_models(window, config.clouds.sequence_masking)
        dates = sorted({d for k in group for d in combinations[k]})
        combos = [[dates.index(d) for d in sorted(combinations[k])] for k in group]
        blocks = predict_scene(window_models[window], [stacks[d] for d in dates], combos, n_bands, n_classes,
                               window, margin, batch_size, progress,
                               cloud_masks=[masks[d] for d in dates] if masking else None,
                               min_clear_dates=config.clouds.min_clear_dates)
        return blocks, window, margin

    window, margin = geometry(mode)
    batch = batch_size or default_batch_size(window, len(stacks))
    n_cols = len(plan_axis(shape[1], window, margin).starts)
    per_combination = n_classes * buffer_rows(window, n_cols, batch) * shape[1] * 4
    summary_path = out_dir / f"{name}_classification.json"
    summary: dict[str, Any] = {"model": name, "members": runs.member_names,
                               "model_files": [str(r.model_path) for r in runs.members], "level": level,
                               "sequence": loaded.sequence, "combinations": {}}
    if summary_path.is_file():
        with contextlib.suppress(json.JSONDecodeError, AttributeError):  # a damaged summary is rewritten
            summary["combinations"] = json.loads(summary_path.read_text(encoding="utf-8")).get("combinations", {})
    results = []
    for group in group_combinations(list(ks), per_combination):
        files = {k: output_files(out_dir, name, k, parts[k]) for k in group}
        started = time.perf_counter()
        blocks, window, margin = run(group, mode)
        with contextlib.ExitStack() as outputs:
            writers = {}
            for k in group:
                tags = {"MODEL": name, "MODE": mode, "DATES": ",".join(sorted(combinations[k])),
                        "CLOUD_MASKING": "on" if masking else "off"}
                if masking and loaded.sequence:
                    tags["SEQUENCE_MASKING"] = config.clouds.sequence_masking
                writers[k] = [
                    outputs.enter_context(create_cog(files[k]["probabilities"], shape, n_classes, "float32", grid,
                                                     descriptions, tags)),
                    outputs.enter_context(create_raster(files[k]["class"], shape, 1, "uint8", grid, ["class"], tags,
                                                        categories)),
                    outputs.enter_context(create_cog(files[k]["confidence"], shape, 1, "float32", grid,
                                                     ["confidence"], tags))]
            clear_counts = {k: ClearCounts() for k in group}
            behind = outputs.enter_context(WriteBehind())  # exits first: its writes end before the files close
            for block in blocks:
                for index, k in enumerate(group):
                    if block.dates_used is not None:
                        clear_counts[k].add(block.dates_used[index], block.area, len(combinations[k]))
                behind.submit(_write_block, block, [writers[k] for k in group])
        seconds = time.perf_counter() - started
        for k in group:
            write_map_figure(files[k]["preview"], read_raster(files[k]["class"], 1)[0], grid, categories,
                             class_map_title(name, parts[k].replace("_", " "), sorted(combinations[k])))
        agreements = _agreements(run(group, "faithful")[0], group, files) if compare and mode == "fast" else {}
        for k in group:
            dates = tuple(sorted(combinations[k]))
            share = seconds / len(group)
            result = CombinationResult(k, dates, share, shape[0] * shape[1], files[k], agreements.get(k))
            entry: dict[str, Any] = {"mode": mode, "window": window, "margin": margin, "dates": list(dates),
                                     "seconds": round(share, 3), "pixels_per_second": round(result.pixels / share, 1),
                                     "pass_seconds": round(seconds, 3), "combinations_in_pass": len(group)}
            label = f"combination {k}" if period is None else f"period {period.upper()} combination {k}"
            line = f"{label} ({', '.join(dates)}): {mode} {share:.1f} s ({result.pixels / share:,.0f} px/s)"
            entry["cloud_masking"] = masking
            if masking and loaded.sequence:
                entry["sequence_masking"] = config.clouds.sequence_masking
            if masking:
                entry["clear_dates"] = clear_counts[k].as_dict()
                line += f"; {clear_counts[k].line()}"
            if result.agreement is not None:
                entry["agreement_with_faithful"] = round(result.agreement, 6)
                line += f", agreement with faithful {100 * result.agreement:.2f} %"
            key = parts[k].removeprefix("combination_")  # "3" as before, or "period_a_0"
            summary["combinations"][key] = entry
            results.append(result)
            say(line)
        write_json_atomic(summary_path, summary)
    if len(results) > 1:
        say(f"{len(results)} combinations of {len(stacks)} dates classified together: each date is predicted once "
            f"per window{' by each run of the ensemble' if len(runs.members) > 1 else ''}")
    return results


def _agreements(blocks: Iterable[SceneBlock], group: list[int], files: dict[int, dict[str, Path]]) -> dict[int, float]:
    """Per combination, the share of area pixels where the blocks' class maps equal the written ones."""
    same = dict.fromkeys(group, 0)
    inside = 0
    with contextlib.ExitStack() as opened:
        written = {k: opened.enter_context(open_raster(files[k]["class"])) for k in group}
        for block in blocks:
            inside += int(block.area.sum())
            for index, k in enumerate(group):
                stored = written[k].read(1, window=_block_window(block))
                same[k] += int(np.count_nonzero((block.classes[index] == stored) & block.area))
    return {k: (same[k] / inside if inside else 1.0) for k in group}
