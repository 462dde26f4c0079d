"""Argument parsing shared by the pre-processing scripts, and the study-area lock they all take."""

from __future__ import annotations

import argparse
from pathlib import Path

from helpers.core import locks
from helpers.core.config import Config, load_config, normalise_date
from helpers.core.errors import ConfigError, InputError, hold_until_exit


def make_parser(description: str, date: bool = False, level: bool = True, use: bool = False,
                split: bool = False) -> argparse.ArgumentParser:
    """A parser with the arguments of the original scripts (``DATE LEVEL USE``) and ``--config``/``--force``.

    Args:
        description: Text shown by ``--help``.
        date: Add the positional DATE.
        level: Add the optional positional LEVEL (default: the config's).
        use: Add the optional positional USE (TRAIN or NEW, default TRAIN).
        split: Add ``--split random|block``.
    """
    parser = argparse.ArgumentParser(description=description)
    if date:
        parser.add_argument("date", metavar="DATE", help="date label, YYYYMMDD or YYYY-MM-DD")
    if level:
        parser.add_argument("level", metavar="LEVEL", nargs="?", default=None,
                            help="processing level L1C or L2A (default: the config's)")
    if use:
        parser.add_argument("use", metavar="USE", nargs="?", default="TRAIN", type=str.upper,
                            choices=("TRAIN", "NEW"), help="TRAIN (training tiles) or NEW (prediction stack)")
    if split:
        parser.add_argument("--split", choices=("random", "block"), default=None,
                            help="tile split method (default: the config's split.method)")
    parser.add_argument("--config", default=None,
                        help="study-area TOML, relative to the repository root (default configs/demo.toml)")
    parser.add_argument("--force", action="store_true", help="redo work whose outputs already exist")
    parser.add_argument("--wait", action="store_true",
                        help="if another run is processing this study area, wait for it instead of refusing")
    return parser


def parse(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, Config]:
    """Parse arguments, load the config, normalise DATE and LEVEL and lock the study area.

    The lock (``<data_root>/processed/.lock``, see :mod:`helpers.core.locks`) is held until the
    script's run ends, so that two runs on one study area never write into each other's
    outputs; a second run refuses with an error naming the holder (or waits with ``--wait``).
    Partial outputs left by runs that were killed outright are removed once the lock is held.

    Raises:
        InputError: For a bad DATE or LEVEL, or when another run holds the study area.
    """
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if getattr(args, "date", None) is not None:
        try:
            args.date = normalise_date(args.date, "command line", "DATE")
        except ConfigError as error:  # a command-line argument, not a config key
            raise InputError(f"argument DATE: {error.reason}") from None
    if hasattr(args, "level"):
        args.level = config.check_level(args.level)
    hold_until_exit(locks.study_area_lock(config.processed_dir, Path(parser.prog).name,
                                          wait=getattr(args, "wait", False)))
    from helpers.core.io import remove_stale_partials  # not at import: it loads rasterio

    remove_stale_partials(config.processed_dir, depth=2)
    return args, config
