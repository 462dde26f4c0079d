"""Change detection: compare a model's class maps of all date combinations with the ground truth.

Robustness measures (this project's definitions; the article's exact formulas are unknown):
stable = all maps equal the GT; robust change = all maps agree on one class other than the
GT's; unstable = the maps disagree. Writes the change map (class 9 where robust change) as
GeoTIFF and PNG, and a JSON and text report; scores robust change against the config's
true-change file when it names one.

Usage: python change_detection.py MODEL_NAME [--config CONFIG]
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.change_reports import detect_changes, format_report
from helpers.config import load_config
from helpers.errors import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_name", metavar="MODEL_NAME", help="a classified model, e.g. lstm_fixed_seq_01")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    args = parser.parse_args(argv)
    print(format_report(detect_changes(load_config(args.config), args.model_name)))
    return 0


if __name__ == "__main__":
    run_cli(main)
