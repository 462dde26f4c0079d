"""Assign the reference tile list to valid 20 % / train 60 % / test 20 % (tile_split.json).

--split random (default, the original: shuffle with a fixed seed) or --split block
(spatially blocked: neighbouring tiles share a subset).

Usage: python subset_split.py [LEVEL] [--split random|block] [--config CONFIG] [--force]
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.cli import make_parser, parse
from helpers.core.errors import run_cli
from helpers.data import pipeline


def main(argv: Sequence[str] | None = None) -> int:
    args, config = parse(make_parser(__doc__.splitlines()[0], split=True), argv)
    pipeline.subset_split(config, args.level, args.split, args.force)
    return 0


if __name__ == "__main__":
    run_cli(main)
