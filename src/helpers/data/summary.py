"""A short text summary of what the pre-processing produced for a study area."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.core.config import SPLITS, Config
from helpers.core.errors import InputError
from helpers.data.ground_truth import water_sweep_line
from helpers.core.io import open_raster


def preprocessing_summary(config: Config, level: str | None = None) -> str:
    """Summarise scenes, tiles per subset, the unclassifiable-tile share and the NDWI sweep.

    Args:
        config: Study-area configuration.
        level: Processing level (default: the config's).

    Returns:
        Printable multi-line text.

    Raises:
        InputError: If the pre-processing has not been run.
    """
    level = config.check_level(level)
    scenes = sorted(config.processed_dir.glob(f"sentinel/*_{level}_all_bands.tif"))
    if not scenes:
        batch = "08a_process_train_batch.py" if config.has_ground_truth else "08b_process_new_batch.py"
        raise InputError(f"{config.processed_dir}: no processed scenes; run {batch} first")
    lines = [f"Pre-processing summary: {config.name} ({level})",
             f"  scenes: {len(scenes)} ({len(config.training_pool)} training pool, {len(config.new)} new dates)"]
    lines.extend(f"  {warning}" for warning in _baseline_warnings(scenes))
    if not config.has_ground_truth:
        lines.append("  no ground truth (classification-only study area): no training tiles")
    lines.append(f"  classification area: \"{config.classification_area}\" ({config.area_path})")

    totals = dict.fromkeys(SPLITS, 0)
    with_unclassifiable = total = 0
    per_date = []
    for date in config.training_pool:
        path = config.tiles_summary_path(date, level)
        if not path.exists():
            per_date.append(f"    {date}: not tiled yet")
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        for split in SPLITS:
            totals[split] += data["written"][split]
        with_unclassifiable += data["with_unclassifiable"]
        total += data["total_written"]
        per_date.append(f"    {date}: {data['total_written']:>6} tiles, {100 * data['unclassifiable_share']:5.1f} % "
                        f"with unclassifiable pixels")
    share = 100 * with_unclassifiable / total if total else 0.0
    lines.append(f"  training tiles ({config.tile_size}x{config.tile_size}, stride {config.tile_stride}, labelled on "
                 f">= {100 * config.min_labelled_fraction:g} % of their pixels): "
                 + ", ".join(f"{split} {totals[split]}" for split in SPLITS) + f" (all dates, total {total})")
    lines.append(f"  tiles kept only thanks to the zero-weight unclassifiable class: {with_unclassifiable} of "
                 f"{total} ({share:.1f} %; the paper reports 17.6 % for its study area)")
    lines.extend(per_date)

    water = config.water_mask_summary_path
    if water.exists():
        data = json.loads(water.read_text(encoding="utf-8"))
        lines.append(f"  NDWI shoreline masking over {len(data['dates'])} images "
                     f"(gt.tif uses threshold {data['chosen_threshold']}):")
        for threshold, row in data["thresholds"].items():
            lines.append(water_sweep_line(threshold, row["water_kept"], row["water_total"]))
    windows = sorted(config.processed_dir.glob(f"classification_data/*_data/*_{level}_prediction_windows.csv"))
    lines.append(f"  prediction stacks: {len(windows)} new dates")
    lines.append("  outputs:")
    lines.append(f"    scenes         {config.processed_dir / 'sentinel'}")
    lines.append(f"    ground truth   {config.gt_dir}")
    lines.append(f"    training tiles {config.processed_dir / 'training_data'}")
    lines.append(f"    prediction     {config.processed_dir / 'classification_data'}")
    return "\n".join(lines)


def _baseline_warnings(scenes: list[Path]) -> list[str]:
    """The offset warnings step 01 stored in the scenes' tags (baseline unknown after 2022-01-25)."""
    warnings = []
    for scene in scenes:
        with open_raster(scene) as src:
            warning = src.tags().get("BASELINE_WARNING")
        if warning:
            warnings.append(f"{scene.name}: {warning}")
    return warnings
