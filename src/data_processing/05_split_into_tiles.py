"""Step 05: TRAIN -> georeferenced training tiles per subset; NEW -> prediction-window index.

Training tiles are 32x32 on a 33-px stride, kept only if at least [tiling] min_labelled_fraction
of their pixels is labelled (default 1.0, the original) and every band is on the image; the subset
of each tile comes from tile_split.json (identical for every date). TRAIN needs ground truth.

Usage: python 05_split_into_tiles.py DATE [LEVEL] [TRAIN|NEW] [--split random|block] [--config CONFIG] [--force]
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
    parser = make_parser(__doc__.splitlines()[0], date=True, use=True, split=True)
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args, config = parse(parser, argv)
    pipeline.split_into_tiles(config, args.date, args.level, args.use, args.force, args.split,
                              progress=args.progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
