"""Train / validation / test assignment of tiles, identical for every date."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from helpers.core.config import SPLITS
from helpers.data.tiling import parse_ending


def _cut_points(n: int, fractions: Mapping[str, float]) -> tuple[int, int]:
    first = int(n * fractions["valid"])
    second = int(n * (fractions["valid"] + fractions["train"]))
    return first, second


def random_split(endings: Sequence[str], seed: int, fractions: Mapping[str, float]) -> dict[str, list[str]]:
    """The original's split: shuffle the sorted tile list with ``random.seed(seed)``.

    The first 20 % of the shuffled list become validation, the next 60 % training and the
    rest test (fractions from the config).
    """
    order = sorted(endings)
    random.Random(seed).shuffle(order)
    first, second = _cut_points(len(order), fractions)
    return {"valid": sorted(order[:first]), "train": sorted(order[first:second]), "test": sorted(order[second:])}


def block_split(endings: Sequence[str], seed: int, fractions: Mapping[str, float],
                block_size: int) -> dict[str, list[str]]:
    """Spatially blocked split: square blocks of ``block_size`` x ``block_size`` tile positions.

    Blocks are shuffled with the seed and filled into validation, training and test in turn
    until each holds its share of tiles, so neighbouring tiles share a subset and test tiles
    are not surrounded by training tiles.
    """
    blocks: dict[tuple[int, int], list[str]] = {}
    for ending in sorted(endings):
        row, col = parse_ending(ending)
        blocks.setdefault((row // block_size, col // block_size), []).append(ending)
    keys = sorted(blocks)
    random.Random(seed).shuffle(keys)
    first, second = _cut_points(len(endings), fractions)
    result: dict[str, list[str]] = {split: [] for split in SPLITS}
    assigned = 0
    for key in keys:
        split = "valid" if assigned < first else "train" if assigned < second else "test"
        result[split].extend(blocks[key])
        assigned += len(blocks[key])
    return {split: sorted(items) for split, items in result.items()}


def make_split(endings: Sequence[str], method: str, seed: int, fractions: Mapping[str, float],
               block_size: int) -> dict[str, list[str]]:
    """Dispatch to :func:`random_split` or :func:`block_split`."""
    if method == "block":
        return block_split(endings, seed, fractions, block_size)
    return random_split(endings, seed, fractions)
