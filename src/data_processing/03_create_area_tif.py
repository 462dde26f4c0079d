"""Step 03: area mask (the AOI where the reference scene has data, or only the GT), plus extra AOI masks.

[ground_truth] classification_area = "aoi" (default; the only rule without GT) or "gt" (the original:
only labelled pixels).

Usage: python 03_create_area_tif.py [LEVEL] [--config CONFIG] [--force]
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
    pipeline.create_area_tif(config, args.level, args.force)
    return 0


if __name__ == "__main__":
    run_cli(main)
