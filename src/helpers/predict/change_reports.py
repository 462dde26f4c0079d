"""Change detection of a classified model: reading its class maps, writing maps and reports.

The model is read through its run record (:func:`helpers.train.run_record.load_runs`), as classify.py
read it, so that its class maps are found under the same name and its class table is checked
against the study area's ground truth. The study area must have ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.features import rasterize

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.core.figures import write_map_figure
from helpers.core.grid import check_same_grid, grid_of_raster
from helpers.core.io import read_raster, write_json_atomic, write_raster, write_text_atomic
from helpers.core.vector import read_vector
from helpers.predict.change_detection import (
    CHANGE_ID,
    UNSTABLE_ID,
    ChangeResult,
    change_map,
    compare_maps,
    score_against_true_changes,
    summarise,
)
from helpers.predict.classification import output_files
from helpers.predict.previews import change_categories
from helpers.train.run_record import ModelSpec, load_runs


def class_map_path(config: Config, model_name: str, combination: int) -> Path:
    """Class map of one date combination (written by classify.py)."""
    return output_files(config.classified_dir(model_name), model_name, combination)["class"]


def detect_changes(config: Config, model: ModelSpec) -> dict:
    """Compare the class maps of all combinations with the GT; write the change map and reports.

    Args:
        config: The study area (with ground truth) whose class maps are compared.
        model: The run (or ensemble) the maps were classified with: a run name in the config's
            models folder (``str``) or a model file or run folder (``Path``), as given to classify.py.

    Returns:
        The report (also written as JSON and text in the model's report folder).

    Raises:
        InputError: No ground truth in the config, an unknown or damaged run, a class table
            other than the config's, missing class maps or GT, grids that differ.
    """
    config.require_ground_truth("change_detection.py")
    runs = load_runs(model, config)
    runs.check_fits(config)
    name = runs.name
    if not config.combinations:
        raise InputError(f"{config.source}: config key 'dates.combinations': no date combinations configured")
    paths = [class_map_path(config, name, k) for k in range(len(config.combinations))]
    for path in paths:
        if not path.is_file():
            how = name if isinstance(model, str) else f"--model {runs.first.model_path}"
            raise InputError(f"{path}: class map missing; run src/predict/classify.py {how} --combination all")
    gt_path = config.gt_path
    if not gt_path.is_file():
        raise InputError(f"{gt_path}: ground truth missing; run 08a_process_train_batch.py first")
    grid = grid_of_raster(gt_path)
    for path in paths:
        check_same_grid(path, grid, gt_path)
    gt, profile = read_raster(gt_path, 1)
    maps = [read_raster(path, 1)[0] for path in paths]
    result = compare_maps(maps, gt, config.unclassifiable_id)
    classes = [c for c in config.classes if c.id != config.unclassifiable_id]
    report = {"model": name, "combinations": [list(c) for c in config.combinations],
              **summarise(result, gt, [c.id for c in classes], [c.name for c in classes]),
              "not_classified_excluded": not_classified_pixels(result, gt, config.unclassifiable_id)}
    if config.true_change_file is not None:
        frame = read_vector(config.true_change_file, "true-change", str(grid.crs))
        true = rasterize(((g, 1) for g in frame.geometry), out_shape=(grid.height, grid.width),
                         transform=grid.transform, fill=0, dtype="uint8").astype(bool)
        report["true_change"] = score_against_true_changes(result, true)

    out_dir = config.classified_dir(name)
    values = change_map(result, gt)
    categories = change_categories(classes)
    write_raster(out_dir / f"{name}_change_map.tif", values, profile, ["change"],
                 {"VALUES": f"1-{max(c.id for c in classes)} stable (GT class), {CHANGE_ID} robust change to GT, "
                            f"{UNSTABLE_ID} unstable, 0 not evaluated"}, categories)
    write_map_figure(out_dir / f"{name}_change_map.png", values, profile, categories,
                     f"{name}: change against the GT over {len(maps)} date combinations")
    reports = config.change_report_paths(name)
    write_json_atomic(reports["json"], report)
    write_text_atomic(reports["txt"], format_report(report) + "\n")
    return report


def not_classified_pixels(result: ChangeResult, gt: np.ndarray, unclassifiable_id: int) -> int:
    """GT pixels left out because some map did not classify them (outside its area, or clouds and shadows).

    :func:`compare_maps` evaluates exactly the labelled GT pixels that every map classified, so
    these are the labelled ones it did not evaluate.
    """
    labelled = (gt != 0) & (gt != unclassifiable_id)
    return int(np.count_nonzero(labelled & ~result.evaluated))


def format_report(report: dict) -> str:
    """The change-detection report as a readable text table."""
    overall = report["overall"]
    lines = [f"Change detection: {report['model']} over {len(report['combinations'])} date combinations",
             "(stable: all maps = GT; robust change: all maps agree on another class; unstable: maps disagree)",
             f"{'GT class':<36} {'pixels':>9} {'stable':>8} {'robust':>8} {'unstable':>9}"]
    rows = [("all", overall), *report["per_class"].items()]
    for label, row in rows:
        lines.append(f"{label:<36} {row['n_pixels']:>9} {100 * row['stable']:>7.2f}% "
                     f"{100 * row['robust_change']:>7.2f}% {100 * row['unstable']:>8.2f}%")
    if report.get("not_classified_excluded"):
        lines.append(f"Left out: {report['not_classified_excluded']} GT pixels not classified in at least one map "
                     "(outside its classification area, or fewer clear dates than clouds.min_clear_dates)")
    lines.append("Change matrix (robust changes, GT class -> class of all maps):")
    for source, targets in report["change_matrix"].items():
        lines.append(f"  {source} -> " + ", ".join(f"{t}: {n}" for t, n in targets.items()))
    if "true_change" in report:
        t = report["true_change"]
        lines.append(f"Against the true changes ({t['true_change_pixels']} px): precision {t['precision']:.3f}, "
                     f"recall {t['recall']:.3f}, F1 {t['f1']:.3f}")
    return "\n".join(lines)
