"""Print the newest run of each training script: epochs, wall time, seconds per step, validation accuracies.

The newest random forests (random_forest.py, a baseline added by this project) follow with their
training pixels, features, trees and fit time.

Usage: python runs_summary.py [--config CONFIG]
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import InputError, run_cli
from helpers.train.forest import newest_forest
from helpers.train.forest_model import FOREST_SCRIPTS
from helpers.train.runs import newest_model
from helpers.train.trainers import SCRIPTS


def _value(summary: dict, key: str) -> str:
    value = summary.get(key)
    return "-" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    config = load_config(parser.parse_args(argv).config)
    rows = []
    for script in SCRIPTS:
        run = newest_model(config.models_root, script)
        if run is None:
            continue
        path = config.run_paths(run).summary_json
        if not path.is_file():
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        monitor = str(s.get("monitor", "val_categorical_accuracy")).removeprefix("val_")
        rows.append(f"  {run:<20} {s['epochs_run']:>6} {s['wall_time_s']:>9.1f} {s['seconds_per_step']:>7.3f} "
                    f"{_value(s, 'final_val_masked_accuracy'):>10} {_value(s, 'best_val_masked_accuracy'):>9} "
                    f"{_value(s, 'final_val_categorical_accuracy'):>9} {_value(s, 'best_val_categorical_accuracy'):>8}"
                    f"  {monitor}")
    forests = []
    for script in FOREST_SCRIPTS:
        run = newest_forest(config.models_root, script)
        path = None if run is None else config.run_paths(run).summary_json
        if path is None or not path.is_file():
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        forests.append(f"  {run:<24} {s['pixels']:>9,} {s['features']:>8} {s['trees']:>5} {s['fit_time_s']:>9.1f}")
    if not rows and not forests:
        raise InputError(f"{config.models_root}: no trained model with a training summary")
    print(f"Trained models ({config.models_root}); TensorBoard: tensorboard --logdir={config.reports_root / 'logs'}")
    if rows:
        print(f"  {'':<20} {'':>6} {'':>9} {'':>7} {'masked accuracy':>20} {'categorical acc.':>18}")
        print(f"  {'run':<20} {'epochs':>6} {'wall (s)':>9} {'s/step':>7} {'final val':>10} {'best val':>9} "
              f"{'final val':>9} {'best val':>8}  monitored")
        print("\n".join(rows))
        print("  (val = random validation batches; masked: labelled pixels of the trained classes only, categorical: "
              "every pixel, unclassifiable and outside pixels included, as the original)")
    if forests:
        print(f"Random forests (a baseline, not the paper's)\n  {'run':<24} {'pixels':>9} {'features':>8} {'trees':>5} "
              f"{'fit (s)':>9}")
        print("\n".join(forests))
    return 0


if __name__ == "__main__":
    run_cli(main)
