"""Write the embedded demo study area (synthetic Sentinel-2 L1C products and ground truth).

Usage::

    python src/data_processing/00_make_demo_data.py [--config configs/demo.toml] [--seed 0]
                                                     [--size 648] [--force]

Everything goes under ``<data_root>/raw`` of the config. An existing complete demo is left
alone unless ``--force`` is given; a ``raw/`` folder that this generator did not write is
never touched, and ``--force`` replaces only the files the generator wrote (files a user added
to the demo's ``raw/`` are kept and listed). The run holds the study-area lock, so that it
never regenerates the inputs under a pre-processing run of the same area.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers.core.interrupts  # noqa: F401  (first: Ctrl-C during the slow imports below exits quietly)
from helpers.core import locks
from helpers.core.config import load_config
from helpers.core.errors import InputError, hold_until_exit, run_cli
from helpers.demo import demo_data, demo_manifest
from helpers.demo.layout import DEFAULT_SIZE, check_size

_CLASS_NAMES = {1: "buildings", 2: "grassland", 3: "forest", 4: "settlement", 5: "farmland", 6: "industry",
                7: "water", 8: "unclassifiable"}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help="study-area TOML (default: configs/demo.toml)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"scene side in 10 m pixels, a multiple of 6 (default {DEFAULT_SIZE})")
    parser.add_argument("--force", action="store_true", help="regenerate an existing demo raw/ folder")
    parser.add_argument("--wait", action="store_true",
                        help="if another run is processing this study area, wait for it instead of refusing")
    return parser.parse_args(argv)


def _print_summary(summary: demo_data.DemoSummary) -> None:
    print(f"demo written to {summary.data_root / 'raw'} in {summary.seconds:.1f} s "
          f"(seed {summary.seed}, {summary.size} x {summary.size} pixels at 10 m)")
    print(f"  {summary.n_products} L1C products: {', '.join(summary.dates)}")
    cloudy = ", ".join(summary.cloudy_dates) or "none"
    print(f"  cloudy dates: {cloudy}; partial coverage: {summary.partial_date}")
    shares = ", ".join(f"{_CLASS_NAMES.get(k, k)} {v * 100:.1f} %" for k, v in summary.class_shares.items())
    print(f"  ground truth: {summary.n_gt_polygons} polygons; {shares}")
    print(f"  AOI covers {summary.aoi_share * 100:.1f} % of the scene; "
          f"{summary.n_true_change_polygons} true-change polygons ({summary.changed_pixels} pixels)")
    if summary.kept:
        shown = ", ".join(summary.kept[:5]) + (f" and {len(summary.kept) - 5} more" if len(summary.kept) > 5 else "")
        print(f"  kept {len(summary.kept)} file(s) in raw/ that the generator did not write: {shown}")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the demo unless a complete one is already there.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0).

    Raises:
        InputError: For an invalid size, a ``raw/`` folder holding someone else's data, or
            another run holding the study area (without ``--wait``).
    """
    args = _parse(argv)
    config = load_config(args.config)
    try:
        check_size(args.size)
    except ValueError as error:
        raise InputError(str(error)) from None
    had_outputs = config.processed_dir.exists()
    hold_until_exit(locks.study_area_lock(config.processed_dir, Path(__file__).name, wait=args.wait))
    demo_manifest.recover(config.raw_dir, demo_data.MARKER_NAME)
    state = demo_data.raw_state(config)
    if state == "foreign":
        raise InputError(f"{config.raw_dir} exists and holds data that the demo generator did not write "
                         f"(no {demo_data.MARKER_NAME}); refusing to overwrite it. Set paths.data_root in "
                         f"{config.source} to a new folder")
    if state == "demo" and not args.force:
        marker = demo_data.read_marker(config) or {}
        print(f"demo data already present in {config.raw_dir} (seed {marker.get('seed', '?')}, "
              f"size {marker.get('size', '?')}); use --force to regenerate it")
        return 0
    summary = demo_data.generate_demo(config, seed=args.seed, size=args.size, overwrite=args.force)
    _print_summary(summary)
    if args.force and had_outputs:
        print(f"  note: outputs under {config.processed_dir} come from the previous demo; rerun the steps")
    return 0


if __name__ == "__main__":
    run_cli(main)
