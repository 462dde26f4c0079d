"""Step 02b: NDWI shoreline masking of GT water for the threshold sweep; writes gt.tif.

A GT water pixel stays water only if NDWI = (B03-B08)/(B03+B08) >= T on every image of the
training pool; otherwise it becomes the unclassifiable class.

Usage: python 02b_restrict_water_area.py [LEVEL] [--config CONFIG] [--force]
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
    args, config = parse(make_parser(__doc__.splitlines()[0]), argv)
    pipeline.restrict_water_area(config, args.level, args.force)
    return 0


if __name__ == "__main__":
    run_cli(main)
