"""One table of the whole study: per model accuracy, kappa, F1 of grassland and farmland, robust change.

Reads what metrics.py (its test split) and change_detection.py (against the GT and, where it was
run with --periods, between the two periods) wrote for the newest run of
each training script and of each random forest (random_forest.py --kind mono|multi, a
baseline added by this project, not the paper's), prints the table and writes it with links to
the plots as Markdown.

Usage: python demo_summary.py [--config CONFIG] [--out reports/demo_summary.md]
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import InputError, run_cli
from helpers.core.io import write_text_atomic
from helpers.core.paths import resolve_from_root
from helpers.predict.period_reports import period_output_paths
from helpers.predict.reports import report_paths
from helpers.train.forest import newest_forest
from helpers.train.forest_model import FOREST_SCRIPTS
from helpers.train.runs import newest_model
from helpers.train.trainers import FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT

COLUMNS = ("model", "OA", "kappa", "F1 grassland", "F1 farmland", "robust change", "change precision",
           "change recall", "period change precision", "period change recall")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: missing; run metrics.py, classify.py and change_detection.py first")
    return json.loads(path.read_text(encoding="utf-8"))


def _f1(metrics: dict, fragment: str) -> str:
    for name, row in metrics["per_class"].items():
        if fragment in name.lower():
            return f"{row['f1']:.3f}"
    return "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    parser.add_argument("--out", default="reports/demo_summary.md", help="Markdown file (relative to the repo root)")
    args = parser.parse_args(argv)
    config = load_config(args.config)


    rows, plots = [], []
    newest = [newest_model(config.models_root, script) for script in (FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT)]
    newest += [newest_forest(config.models_root, script) for script in FOREST_SCRIPTS]
    for run in newest:
        if run is None:
            continue
        folder = config.report_dir(run)
        metrics = _read(report_paths(folder, run, "test")["metrics"])
        change = _read(config.change_report_paths(run)["json"])
        true = change.get("true_change", {})
        period_file = period_output_paths(config, run)["json"]
        periods = _read(period_file).get("true_change", {}) if period_file.is_file() else {}
        rows.append((run, f"{metrics['overall_accuracy']:.3f}", f"{metrics['kappa']:.3f}",
                     _f1(metrics, "grass"), _f1(metrics, "farm"),
                     f"{100 * change['overall']['robust_change']:.2f} %",
                     f"{true['precision']:.3f}" if true else "-", f"{true['recall']:.3f}" if true else "-",
                     f"{periods['precision']:.3f}" if periods else "-",
                     f"{periods['recall']:.3f}" if periods else "-"))
        other_splits = set(report_paths(folder, run, "valid").values())  # the table is the test split's
        plots.extend(sorted(p for p in folder.glob("*.png") if p not in other_splits))
        plots.extend(sorted(config.classified_dir(run).glob("*change_map.png")))
    if not rows:
        raise InputError(f"{config.models_root}: no trained model")
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    out = resolve_from_root(args.out)
    lines = [f"# Summary: {config.name}", "",
             "Test split of the evaluation dates (unclassifiable pixels removed); robust change = share of GT "
             "pixels where the class maps of all date combinations agree on a class other than the GT's "
             "(this project's definition); change precision/recall against the true-change file; period change: "
             "robust change between the two periods of [change] without the GT (change_detection.py --periods), "
             "scored against the same true changes. "
             "random_forest_* rows: per-pixel random forests on the same tiles (a baseline added by this project, "
             "not the paper's; mono: one date per pixel, multi: the fixed sequence's dates stacked per pixel).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Plots", ""]
    lines += [f"- [{p.name}]({os.path.relpath(p, out.parent)})" for p in plots]
    write_text_atomic(out, "\n".join(lines) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
