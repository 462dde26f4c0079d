"""Benchmark: does cloud masking keep clouds and shadows out of the demo's change map?

The demo generator knows where its clouds and shadows are (opacity and shadow strength of every
cloudy date). This script classifies the demo's date combinations with a trained demo run twice,
without cloud masks (``classify.py --no-cloud-mask``, the original's behaviour) and with them
(the default), runs change detection against the ground truth after each, and counts:

* the robust-change pixels that lie under a cloud or a shadow of any of the combinations' dates
  (the generator's own layers: opacity or shadow strength above 0.3), and all robust-change pixels;
* the precision and recall of robust change against the demo's true changes;
* the pixels each map could not classify (no clear date).

Run it after ``make demo``; it leaves the masked maps and reports in place, as ``make demo`` made
them. The masks themselves are scored against the same layers by ``benchmarks/demo_cloud_masks.py``.

Usage:
    python benchmarks/demo_clouds.py [--model RUN] [--config configs/demo.toml]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import print_table, result_line

from helpers.core.config import Config, load_config
from helpers.demo.cloud_reference import LAYER_THRESHOLD, reference_cloud_layers
from helpers.predict.change_detection import CHANGE_ID
from helpers.predict.change_reports import detect_changes
from helpers.predict.classification import classify_model, select_combinations


def reference_clouds(config: Config, dates: set[str]) -> np.ndarray:
    """Where any of ``dates`` has a generated cloud or shadow, on the NEW stacks' grid.

    The layers come from :func:`helpers.demo.cloud_reference.reference_cloud_layers`, which
    replays the generator's own random streams (tested against the rendered bands).
    """
    with rasterio.open(config.merged_path(sorted(dates)[0], config.level, "NEW")) as src:
        transform, shape = src.transform, src.shape
    covered = np.zeros(shape, dtype=bool)
    for layers in reference_cloud_layers(config, dates, LAYER_THRESHOLD).values():
        covered |= layers.cut(transform, shape).covered
    return covered


def measure(config: Config, model: str, masking: bool, clouds: np.ndarray) -> dict[str, float]:
    """Classify every combination, detect change against the GT, count robust change under clouds."""
    started = time.perf_counter()
    results = classify_model(config, model, select_combinations(config, "all"), cloud_masking=masking,
                             say=lambda line: None)
    report = detect_changes(config, model)
    with rasterio.open(config.classified_dir(model) / f"{model}_change_map.tif") as src:
        robust = src.read(1) == CHANGE_ID
    summary = json.loads((config.classified_dir(model) / f"{model}_classification.json").read_text(encoding="utf-8"))
    not_classified = [entry.get("clear_dates", {}).get("pixels_not_classified", 0)
                      for entry in summary["combinations"].values()]
    true = report.get("true_change", {})
    return {"robust": int(robust.sum()), "robust_under_clouds": int((robust & clouds).sum()),
            "precision": float(true.get("precision", float("nan"))), "recall": float(true.get("recall", float("nan"))),
            "not_classified_max": int(max(not_classified or [0])),
            "excluded": int(report.get("not_classified_excluded", 0)), "seconds": time.perf_counter() - started,
            "combinations": len(results)}


def main(argv: list[str] | None = None) -> int:
    """Measure without and with masks, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lstm_fixed_seq_01", help="a trained demo run (default lstm_fixed_seq_01)")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    dates = {d for combo in config.combinations for d in combo}
    clouds = reference_clouds(config, dates)
    print(f"{args.model}: {len(config.combinations)} combinations of {len(dates)} dates; generated clouds or shadows "
          f"on {100 * clouds.mean():.1f} % of the scene on at least one date")
    figures = {}
    rows = []
    for masking in (False, True):
        values = measure(config, args.model, masking, clouds)
        label = "with cloud masks" if masking else "without (original)"
        rows.append([label, f"{values['robust']:,}", f"{values['robust_under_clouds']:,}",
                     f"{values['precision']:.3f}", f"{values['recall']:.3f}", f"{values['excluded']:,}",
                     f"{values['seconds']:.0f} s"])
        figures.update({f"{'masked' if masking else 'plain'}_{k}": v for k, v in values.items()})
    print_table(["classification", "robust change px", "of them under clouds/shadows", "precision vs true change",
                 "recall vs true change", "GT px left out", "classify + detect"], rows)
    lowered = figures["masked_robust_under_clouds"] < figures["plain_robust_under_clouds"]
    kept = figures["masked_recall"] >= figures["plain_recall"] - 1e-9
    print(f"Masking lowers robust change under clouds/shadows: {'yes' if lowered else 'NO'}; "
          f"true-change recall not lower: {'yes' if kept else 'NO'}")
    print(result_line({"model": args.model, "cloud_share": round(float(clouds.mean()), 4), **figures,
                       "lowered": lowered, "recall_kept": kept}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
