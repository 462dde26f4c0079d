"""Step 03b: cloud and cloud-shadow mask of one date (0 clear, 1 cloud, 2 shadow, 255 no data).

Level-1C uses [clouds] detector_l1c (default ukis-csmask), Level-2A detector_l2a (default scl,
the product's scene classification). Writes processed/clouds/<DATE>_<LEVEL>_clouds.tif on the
scene grid and a JSON summary beside it, and prints the share of each class.

Usage: python 03b_cloud_masks.py DATE [LEVEL] [--config CONFIG] [--force]
"""

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core.cli import make_parser, parse
from helpers.core.errors import run_cli
from helpers.data import clouds


def main(argv: Sequence[str] | None = None) -> int:
    args, config = parse(make_parser(__doc__.splitlines()[0], date=True), argv)
    clouds.cloud_masks(config, args.date, args.level, args.force)
    return 0


if __name__ == "__main__":
    run_cli(main)
