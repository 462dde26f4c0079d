"""Change between two periods without ground truth: reading the periods' class maps, writing maps and reports.

The ground-truth mode (:mod:`helpers.predict.change_reports`) compares the maps of
``dates.combinations`` with the GT; this mode compares the maps of period A's combinations with
those of period B's (config ``[change]``, :mod:`helpers.predict.change_periods`), all classified
with one model, so it works on a study area without ground truth. It writes the same kinds of
outputs under names of their own (``{model}_period_change_map.tif``/``.png`` beside the
classified maps, ``{model}_period_change_detection.json``/``.txt`` in the model's report folder),
so the ground-truth mode's outputs are never overwritten. Every input is checked before the first
write: the periods, each map's presence, grid, model and dates (its GeoTIFF tags) and class
values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from rasterio.features import rasterize

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.figures import write_map_figure
from helpers.core.grid import SceneGrid, check_same_grid, grid_of_raster
from helpers.core.io import Categories, open_raster, read_raster, write_json_atomic, write_raster, write_text_atomic
from helpers.core.vector import read_vector
from helpers.predict.change_detection import (
    CHANGE_COLOUR,
    CHANGE_ID,
    UNSTABLE_COLOUR,
    UNSTABLE_ID,
    compare_periods,
    period_change_map,
    score_against_true_changes,
    summarise_periods,
)
from helpers.predict.change_periods import PERIODS, check_periods, map_stems
from helpers.predict.classification import output_files
from helpers.predict.previews import NO_DATA_COLOUR, NamedClass
from helpers.train.run_record import ModelSpec, RunSet, load_runs


def period_output_paths(config: Config, name: str) -> dict[str, Path]:
    """The two-period outputs of a model: change map (``tif``, ``png``) and report (``json``, ``txt``)."""
    maps, reports = config.classified_dir(name), config.report_dir(name)
    return {"tif": maps / f"{name}_period_change_map.tif", "png": maps / f"{name}_period_change_map.png",
            "json": reports / f"{name}_period_change_detection.json",
            "txt": reports / f"{name}_period_change_detection.txt"}


def period_map_paths(config: Config, name: str) -> dict[str, list[Path]]:
    """The class map of every combination of both periods (``{"a": [...], "b": [...]}``), checked periods."""
    out_dir = config.classified_dir(name)
    return {p: [output_files(out_dir, name, k, part)["class"] for k, part in enumerate(map_stems(config, p))]
            for p in PERIODS}


def period_change_categories(classes: Sequence[NamedClass]) -> Categories:
    """The values of :func:`helpers.predict.change_detection.period_change_map` (colour table and legend)."""
    categories: dict[int, tuple[str, str]] = {
        int(c.id): (f"stable: {c.name}", c.colour) for c in classes if int(c.id) not in (CHANGE_ID, UNSTABLE_ID)}
    categories[CHANGE_ID] = ("robust change (period A's maps agree on one class, B's on another)", CHANGE_COLOUR)
    categories[UNSTABLE_ID] = ("unstable (the maps of a period disagree)", UNSTABLE_COLOUR)
    categories[0] = ("not evaluated (outside, or not classified in some map)", NO_DATA_COLOUR)
    return categories


def _classify_hint(runs: RunSet, model: ModelSpec, period: str, path: Path) -> str:
    how = runs.name if isinstance(model, str) else f"--model {runs.first.model_path}"
    shared = "_combination_" in path.name
    return f"run src/predict/classify.py {how} " + ("--combination all" if shared else f"--period {period}")


def check_period_maps(config: Config, runs: RunSet, model: ModelSpec, paths: dict[str, list[Path]]) -> SceneGrid:
    """Every period map present, on one grid, made by this model from its combination's dates.

    The class maps carry the model and the dates they were classified from as GeoTIFF tags
    (classify.py writes them), so a map left from another model or from an earlier ``[change]``
    setting is refused instead of compared. The probabilities beside a map, where present, name
    the classes it was classified into; they must be the model's.

    Returns:
        The maps' grid.

    Raises:
        InputError: Naming the first missing or unfitting map and what to run.
    """
    name = runs.name
    combinations = dict(zip(PERIODS, check_periods(config), strict=True))
    expected = [next((c.name for c in runs.first.classes if c.id == i + 1), f"class {i + 1}")
                for i in range(len(runs.first.classes))]
    for period in PERIODS:
        for k, path in enumerate(paths[period]):
            if not path.is_file():
                raise InputError(f"{path}: class map of change.period_{period}[{k}] missing; "
                                 f"{_classify_hint(runs, model, period, path)}")
    first = paths["a"][0]  # check_periods refuses empty periods
    grid = grid_of_raster(first)
    for period in PERIODS:
        for k, path in enumerate(paths[period]):
            check_same_grid(path, grid, first)
            with open_raster(path) as src:
                tags = src.tags()
            dates = ",".join(combinations[period][k])
            if tags.get("MODEL", name) != name:
                raise InputError(f"{path}: classified with model '{tags['MODEL']}', not '{name}' (both periods must "
                                 "be classified with the same model)")
            if tags.get("DATES", dates) != dates:
                raise InputError(f"{path}: classified from dates {tags['DATES']}, but change.period_{period}[{k}] is "
                                 f"{dates} (the config changed); {_classify_hint(runs, model, period, path)}")
            probabilities = path.with_name(path.name.replace("_class.tif", "_probabilities.tif"))
            if probabilities.is_file():
                with open_raster(probabilities) as src:
                    names = list(src.descriptions)
                if all(names) and names != expected:
                    raise InputError(f"{path}: classified into the classes {', '.join(names)}, but model '{name}' has "
                                     f"{', '.join(expected)} (the maps do not belong to this model)")
    return grid


def _read_maps(paths: Sequence[Path], valid: np.ndarray, name: str) -> Iterator[np.ndarray]:
    """The maps one at a time, each checked for values other than 0 and the model's class ids (``valid``, 256 long)."""
    for path in paths:
        values = read_raster(path, 1)[0]
        if values.dtype != np.uint8:
            raise InputError(f"{path}: a {values.dtype} raster, not a class map (uint8) of classify.py")
        bad = np.flatnonzero(np.bincount(values.ravel(), minlength=256) * ~valid)
        if bad.size:
            raise InputError(f"{path}: class values {', '.join(map(str, bad))} are not in the class table of model "
                             f"'{name}' (the maps do not belong to this model)")
        yield values


def _true_changes(config: Config, grid: SceneGrid) -> np.ndarray:
    frame = read_vector(config.true_change_file, "true-change", str(grid.crs))
    return rasterize(((g, 1) for g in frame.geometry), out_shape=(grid.height, grid.width),
                     transform=grid.transform, fill=0, dtype="uint8").astype(bool)


def detect_period_changes(config: Config, model: ModelSpec) -> dict:
    """Compare the class maps of period A with those of period B; write the change map and reports.

    Args:
        config: The study area (ground truth is not needed) with its ``[change]`` periods.
        model: The run (or ensemble) both periods were classified with, as given to classify.py.

    Returns:
        The report (also written as JSON and text in the model's report folder).

    Raises:
        InputError: Empty, unknown or overlapping periods; an unknown or damaged run, or one whose
            class table is not the config's; missing maps, maps of another model, other dates or
            other classes, grids that differ. Nothing is written then.
    """
    runs = load_runs(model, config)
    runs.check_fits(config)
    name = runs.name
    period_a, period_b = check_periods(config)
    paths = period_map_paths(config, name)
    grid = check_period_maps(config, runs, model, paths)
    classes = list(runs.first.classes)
    valid = np.zeros(256, dtype=bool)
    valid[[0, *(c.id for c in classes)]] = True
    true = _true_changes(config, grid) if config.true_change_file is not None else None
    gt = None
    if config.has_ground_truth and config.gt_path.is_file():
        check_same_grid(config.gt_path, grid, paths["a"][0])
        gt = read_raster(config.gt_path, 1)[0]

    result = compare_periods(_read_maps(paths["a"], valid, name), _read_maps(paths["b"], valid, name))
    transform = grid.transform
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    report = {"model": name, "mode": "periods", "period_a": [list(c) for c in period_a],
              "period_b": [list(c) for c in period_b],
              "maps": {p: [path.name for path in paths[p]] for p in PERIODS}, "pixel_area_m2": pixel_area,
              **summarise_periods(result, [c.id for c in classes], [c.name for c in classes], pixel_area)}
    if true is not None:
        report["true_change"] = score_against_true_changes(result, true)
        if gt is not None:  # the pixels the ground-truth mode evaluates, for a like-for-like comparison
            on_gt = (gt != 0) & (gt != config.unclassifiable_id)
            report["true_change_on_gt_pixels"] = score_against_true_changes(result, true, evaluated=on_gt)

    outputs = period_output_paths(config, name)
    values = period_change_map(result)
    categories = period_change_categories(classes)
    profile = {"crs": grid.crs, "transform": grid.transform}
    write_raster(outputs["tif"], values, profile, ["period change"],
                 {"MODEL": name, "VALUES": f"1-{max(c.id for c in classes)} stable (both periods' class), "
                                           f"{CHANGE_ID} robust change, {UNSTABLE_ID} unstable, 0 not evaluated",
                  "PERIOD_A": ";".join(",".join(c) for c in period_a),
                  "PERIOD_B": ";".join(",".join(c) for c in period_b)}, categories)
    write_map_figure(outputs["png"], values, profile, categories,
                     f"{name}: change from period A ({_span(period_a)}) to period B ({_span(period_b)})")
    write_json_atomic(outputs["json"], report)
    write_text_atomic(outputs["txt"], format_period_report(report) + "\n")
    return report


def _span(combinations: Sequence[Sequence[str]]) -> str:
    dates = sorted({d for combo in combinations for d in combo})
    return f"{len(combinations)} combination{'s' if len(combinations) != 1 else ''}, {dates[0]}-{dates[-1]}"


def format_period_report(report: dict) -> str:
    """The two-period report as a readable text table."""
    overall = report["overall"]
    ha = overall["hectares"]
    lines = [f"Change between two periods: {report['model']}, period A ({_span(report['period_a'])}) -> "
             f"period B ({_span(report['period_b'])})",
             "(stable: every map of both periods agrees; robust change: all maps of A agree on a class, all of B "
             "on another; unstable: otherwise)",
             f"area {overall['inside']} px ({ha['inside']:.2f} ha); evaluated {overall['evaluated']} px; excluded "
             f"(not classified in some map) {overall['excluded']} px ({ha['excluded']:.2f} ha)",
             f"{'category':<16} {'pixels':>10} {'hectares':>10} {'share':>8}"]
    for key, label in (("stable", "stable"), ("robust_change", "robust change"), ("unstable", "unstable")):
        lines.append(f"{label:<16} {overall[key]:>10} {ha[key]:>10.2f} {100 * overall['shares'][key]:>7.2f}%")
    lines.append("From-to matrix (robust changes, class of all A maps -> class of all B maps):")
    for source, targets in report["change_matrix"].items():
        lines.append(f"  {source} -> " + ", ".join(f"{t}: {c['pixels']} px ({c['hectares']:.2f} ha)"
                                                   for t, c in targets.items()))
    lines.append(f"{'period-A class':<36} {'pixels':>9} {'stable':>8} {'robust':>8} {'unstable':>9}")
    for label, row in report["per_class_a"].items():
        lines.append(f"{label:<36} {row['n_pixels']:>9} {100 * row['stable']:>7.2f}% "
                     f"{100 * row['robust_change']:>7.2f}% {100 * row['unstable']:>8.2f}%")
    for key, where in (("true_change", ""), ("true_change_on_gt_pixels", " on the GT mode's pixels")):
        if key in report:
            t = report[key]
            lines.append(f"Against the true changes{where} ({t['true_change_pixels']} px): precision "
                         f"{t['precision']:.3f}, recall {t['recall']:.3f}, F1 {t['f1']:.3f}")
    return "\n".join(lines)
