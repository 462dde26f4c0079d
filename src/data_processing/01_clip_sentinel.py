"""Step 01: ingest the Sentinel-2 product of DATE, resample to 10 m, clip to the AOI, stack.

Usage: python 01_clip_sentinel.py DATE [LEVEL] [--config CONFIG] [--force]
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
    parser = make_parser(__doc__.splitlines()[0], date=True)
    parser.add_argument("--progress", action="store_true", help="show a progress bar per block")
    args, config = parse(parser, argv)
    pipeline.clip_sentinel(config, args.date, args.level, args.force, progress=args.progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
