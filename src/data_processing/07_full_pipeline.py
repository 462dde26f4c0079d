"""Step 07: the whole chain for one date (01 -> 03b -> 04 -> 05), preparing the shared products if needed.

Usage: python 07_full_pipeline.py DATE [LEVEL] [TRAIN|NEW] [--config CONFIG] [--force]
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
    args, config = parse(make_parser(__doc__.splitlines()[0], date=True, use=True, split=True), argv)
    pipeline.full_pipeline(config, args.date, args.level, args.use, args.force, method=args.split)
    return 0


if __name__ == "__main__":
    run_cli(main)
