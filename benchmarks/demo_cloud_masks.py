"""Benchmark: how well do the step-03b cloud masks of the demo find the demo's own clouds and shadows?

The demo generator knows where its clouds and shadows are
(:func:`helpers.demo.cloud_reference.reference_cloud_layers`: opacity or shadow strength above
0.3; a shadow under a cloud counts as cloud). This script scores the masks that ``make demo``
wrote (``processed/clouds/<DATE>_<LEVEL>_clouds.tif``: 0 clear, 1 cloud, 2 shadow, 255 no data)
against them, over the pixels with data:

* on the cloudy dates: precision and recall of the masks' cloud class against the generated
  clouds, of their shadow class against the generated shadows, and of both together (cloud or
  shadow against cloud or shadow: what the classification leaves out);
* on the clear dates: the false-alarm share, the share of pixels masked as cloud or shadow.

Each date's figures are printed, then the dates pooled (pixel counts summed), then a ``RESULT``
line. It reads an existing demo and writes nothing; it stops with a one-line message if the demo
or one of its masks is missing.

Usage:
    python benchmarks/demo_cloud_masks.py [--config configs/demo.toml] [--level L1C] [--threshold 0.3]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rasterio
from _common import print_table, result_line

from helpers.core.config import load_config
from helpers.core.errors import InputError
from helpers.data.cloud_detectors import CLOUD, NODATA, SHADOW
from helpers.demo.cloud_reference import LAYER_THRESHOLD, CloudLayers, reference_cloud_layers

KINDS = ("cloud", "shadow", "any")
"""What is scored: the cloud class, the shadow class, and both together (cloud or shadow)."""


@dataclass
class Counts:
    """Pixel counts of one date, or of several dates summed (pixels with data only).

    Attributes:
        valid: Pixels with data.
        hits: Per class ("cloud", "shadow", "any"): masked and in the reference.
        masked: Per class: masked as that class.
        truth: Per class: in the reference.
    """

    valid: int = 0
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    masked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    truth: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, other: Counts) -> None:
        """Add another date's counts (pooling sums pixels, so large clouds weigh more)."""
        self.valid += other.valid
        for name in ("hits", "masked", "truth"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key in mine:
                mine[key] += theirs[key]

    def precision(self, kind: str) -> float:
        """Share of the masked pixels of a class that the reference has (nan if none is masked)."""
        return self.hits[kind] / self.masked[kind] if self.masked[kind] else float("nan")

    def recall(self, kind: str) -> float:
        """Share of the reference's pixels of a class that the mask has (nan if the reference has none)."""
        return self.hits[kind] / self.truth[kind] if self.truth[kind] else float("nan")

    def share(self, counts: dict[str, int], kind: str) -> float:
        """A count as a share of the pixels with data."""
        return counts[kind] / self.valid if self.valid else float("nan")


def count_date(mask: np.ndarray, layers: CloudLayers | None) -> Counts:
    """Compare one date's mask with its reference layers (None: a clear date, nothing to find).

    Args:
        mask: The step-03b mask (uint8: clear, cloud, shadow, no data).
        layers: The generated layers on the mask's grid, or None for a clear date.

    Returns:
        The date's pixel counts over the pixels with data.
    """
    valid = mask != NODATA
    masked = {"cloud": (mask == CLOUD) & valid, "shadow": (mask == SHADOW) & valid}
    masked["any"] = masked["cloud"] | masked["shadow"]
    if layers is None:
        truth = dict.fromkeys(masked, np.zeros(mask.shape, dtype=bool))
    else:
        truth = {"cloud": layers.cloud & valid, "shadow": layers.shadow & valid, "any": layers.covered & valid}
    return Counts(valid=int(np.count_nonzero(valid)),
                  hits={k: int(np.count_nonzero(masked[k] & truth[k])) for k in masked},
                  masked={k: int(np.count_nonzero(v)) for k, v in masked.items()},
                  truth={k: int(np.count_nonzero(v)) for k, v in truth.items()})


def _pct(value: float) -> str:
    """A share as a percentage with one decimal, '-' where undefined."""
    return "-" if np.isnan(value) else f"{100 * value:.1f}"


def _ratio(value: float) -> str:
    """A precision or recall with three decimals, '-' where undefined."""
    return "-" if np.isnan(value) else f"{value:.3f}"


def _row(label: str, kind: str, counts: Counts, cloudy: bool) -> list[str]:
    """One table row: reference and mask shares, precision and recall, false alarms."""
    scores = ([_ratio(counts.precision(k)) for k in KINDS]
              + [_ratio(counts.recall(k)) for k in KINDS]) if cloudy else ["-"] * 6
    return [label, kind, _pct(counts.share(counts.truth, "cloud")), _pct(counts.share(counts.truth, "shadow")),
            _pct(counts.share(counts.masked, "cloud")), _pct(counts.share(counts.masked, "shadow")),
            scores[0], scores[3], scores[1], scores[4], scores[2], scores[5],
            "-" if cloudy else _pct(counts.share(counts.masked, "any"))]


def main(argv: list[str] | None = None) -> int:
    """Score every date's mask, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help="study-area TOML (default configs/demo.toml)")
    parser.add_argument("--level", default=None, help="processing level of the masks (default: the config's)")
    parser.add_argument("--threshold", type=float, default=LAYER_THRESHOLD,
                        help=f"opacity or shadow strength that counts as cloud or shadow (default {LAYER_THRESHOLD})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = load_config(args.config)
    level = config.check_level(args.level)
    dates = config.all_dates
    try:
        reference = reference_cloud_layers(config, dates, args.threshold)
    except InputError as error:
        raise SystemExit(f"demo_cloud_masks: no demo to score ({error}); run `make demo` first") from None
    missing = [d for d in dates if not config.cloud_mask_path(d, level).is_file()]
    if missing:
        raise SystemExit(f"demo_cloud_masks: {len(missing)} of {len(dates)} cloud masks missing (first: "
                         f"{config.cloud_mask_path(missing[0], level)}); run `make demo` first")

    pooled = {True: Counts(), False: Counts()}
    false_alarms: list[float] = []
    rows = []
    for date in dates:
        with rasterio.open(config.cloud_mask_path(date, level)) as src:
            mask, transform = src.read(1), src.transform
        layers = reference.get(date)
        try:
            cut = layers.cut(transform, mask.shape) if layers is not None else None
        except InputError as error:
            raise SystemExit(f"demo_cloud_masks: {config.cloud_mask_path(date, level)}: {error}") from None
        counts = count_date(mask, cut)
        cloudy = layers is not None
        pooled[cloudy].add(counts)
        if not cloudy:
            false_alarms.append(counts.share(counts.masked, "any"))
        rows.append(_row(date, "cloudy" if cloudy else "clear", counts, cloudy))
    cloudy_all, clear_all = pooled[True], pooled[False]
    rows.append(_row("all cloudy dates", f"{len(reference)} dates", cloudy_all, True))
    rows.append(_row("all clear dates", f"{len(dates) - len(reference)} dates", clear_all, False))
    detector = config.clouds.detector(level)
    print(f"Step-03b masks ({detector}, {level}) against the demo's generated clouds and shadows (opacity or "
          f"shadow strength > {args.threshold:g}), over the pixels with data; shares in % of them:")
    print_table(["date", "kind", "true cloud %", "true shadow %", "masked cloud %", "masked shadow %",
                 "cloud P", "cloud R", "shadow P", "shadow R", "both P", "both R", "false alarm %"], rows)
    print(f"({time.perf_counter() - started:.1f} s; P precision, R recall; 'both': cloud or shadow against cloud "
          "or shadow; false alarm: pixels masked as cloud or shadow on a clear date)")
    print(result_line({
        "detector": detector, "level": level, "threshold": float(args.threshold),
        "cloudy_dates": len(reference), "clear_dates": len(dates) - len(reference),
        "cloud_precision": cloudy_all.precision("cloud"), "cloud_recall": cloudy_all.recall("cloud"),
        "shadow_precision": cloudy_all.precision("shadow"), "shadow_recall": cloudy_all.recall("shadow"),
        "any_precision": cloudy_all.precision("any"), "any_recall": cloudy_all.recall("any"),
        "clear_false_alarm": clear_all.share(clear_all.masked, "any"),
        "clear_false_alarm_max": max(false_alarms, default=float("nan")),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
