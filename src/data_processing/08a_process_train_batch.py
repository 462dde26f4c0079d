"""Step 08a: pre-process every date of the training pool into training tiles.

Outputs are rebuilt when the config values or input files they were made from changed; dates
whose outputs are all up to date are skipped unless --force. Needs ground truth.

Usage: python 08a_process_train_batch.py [LEVEL] [--split random|block] [--config CONFIG] [--force]
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
    pipeline.process_batch(config, config.training_pool, args.level, "TRAIN", args.force, method=args.split)
    return 0


if __name__ == "__main__":
    run_cli(main)
