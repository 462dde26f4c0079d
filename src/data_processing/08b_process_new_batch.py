"""Step 08b: pre-process every new (classification) date into prediction stacks.

The dates are dates.new and the other dates of the change periods (config [change] period_a /
period_b, e.g. the 2016 dates of period A), so that classify.py --period can classify them.

Outputs are rebuilt when the config values or input files they were made from changed; dates
whose outputs are all up to date are skipped unless --force. Works without ground truth
(a classification-only study area: the area is the AOI where the reference scene has data).

Usage: python 08b_process_new_batch.py [LEVEL] [--config CONFIG] [--force]
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
    pipeline.process_batch(config, config.classification_dates, args.level, "NEW", args.force)
    return 0


if __name__ == "__main__":
    run_cli(main)
