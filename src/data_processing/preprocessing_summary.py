"""Print what the pre-processing produced: scenes, tiles per subset, unclassifiable share, NDWI sweep.

Usage: python preprocessing_summary.py [LEVEL] [--config CONFIG]
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.config import load_config
from helpers.core.errors import run_cli
from helpers.data.summary import preprocessing_summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("level", metavar="LEVEL", nargs="?", default=None, help="L1C or L2A (default: the config's)")
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    args = parser.parse_args(argv)
    print(preprocessing_summary(load_config(args.config), args.level))
    return 0


if __name__ == "__main__":
    run_cli(main)
