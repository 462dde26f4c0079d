"""Print the newest run of each training script: epochs, wall time, seconds per step, validation accuracy.

Usage: python runs_summary.py [--config CONFIG]
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.config import load_config
from helpers.errors import InputError, run_cli
from helpers.runs import newest_model
from helpers.trainers import FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT
from helpers.training import run_paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    config = load_config(parser.parse_args(argv).config)
    rows = []
    for script in (FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT):
        run = newest_model(config.models_root, script)
        if run is None:
            continue
        path = run_paths(config, run).log_dir / f"{run}_training_summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text(encoding="utf-8"))
        rows.append(f"  {run:<20} {s['epochs_run']:>6} {s['wall_time_s']:>9.1f} {s['seconds_per_step']:>7.3f} "
                    f"{s['final_val_categorical_accuracy']:>9.3f} {s['best_val_categorical_accuracy']:>8.3f}")
    if not rows:
        raise InputError(f"{config.models_root}: no trained model with a training summary")
    print(f"Trained models ({config.models_root}); TensorBoard: tensorboard --logdir={config.reports_root / 'logs'}")
    print(f"  {'run':<20} {'epochs':>6} {'wall (s)':>9} {'s/step':>7} {'final val':>9} {'best val':>8}")
    print("\n".join(rows))
    print("  (val = categorical accuracy on random validation batches, unclassifiable pixels included)")
    return 0


if __name__ == "__main__":
    run_cli(main)
