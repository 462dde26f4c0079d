"""Train / validation / test split of the tile list."""

from __future__ import annotations

import random

import pytest

from helpers.data.splitting import block_split, make_split, random_split
from helpers.data.tiling import parse_ending, tile_ending

FRACTIONS = {"valid": 0.2, "train": 0.6, "test": 0.2}


def grid_endings(rows: int, cols: int, skip: frozenset[tuple[int, int]] = frozenset()) -> list[str]:
    return [tile_ending(r, c) for r in range(rows) for c in range(cols) if (r, c) not in skip]


def assert_partition(subsets: dict[str, list[str]], endings: list[str]) -> None:
    assert set(subsets) == {"valid", "train", "test"}
    together = subsets["valid"] + subsets["train"] + subsets["test"]
    assert len(together) == len(set(together)), "subsets overlap"
    assert sorted(together) == sorted(endings), "every tile is assigned exactly once"
    for items in subsets.values():
        assert items == sorted(items)


def test_random_split_sizes_and_partition() -> None:
    endings = grid_endings(10, 10)
    subsets = random_split(endings, 1, FRACTIONS)
    assert_partition(subsets, endings)
    assert [len(subsets[s]) for s in ("valid", "train", "test")] == [20, 60, 20]


def test_random_split_sizes_round_down_into_test() -> None:
    subsets = random_split(grid_endings(7, 11), 1, FRACTIONS)
    assert [len(subsets[s]) for s in ("valid", "train", "test")] == [15, 46, 16]


def test_random_split_is_deterministic_and_ignores_input_order() -> None:
    endings = grid_endings(9, 9)
    shuffled = endings[::-1]
    assert random_split(endings, 1, FRACTIONS) == random_split(shuffled, 1, FRACTIONS)
    assert random_split(endings, 1, FRACTIONS) != random_split(endings, 2, FRACTIONS)


def test_random_split_is_the_originals_seeded_shuffle() -> None:
    endings = grid_endings(9, 9)
    order = sorted(endings)
    state = random.getstate()
    try:
        random.seed(1)  # the original seeded the global generator and shuffled the tile list
        random.shuffle(order)
    finally:
        random.setstate(state)
    subsets = random_split(endings, 1, FRACTIONS)
    assert subsets["valid"] == sorted(order[:16])
    assert subsets["train"] == sorted(order[16:64])
    assert subsets["test"] == sorted(order[64:])


def test_other_fractions() -> None:
    subsets = random_split(grid_endings(10, 10), 3, {"valid": 0.1, "train": 0.8, "test": 0.1})
    assert [len(subsets[s]) for s in ("valid", "train", "test")] == [10, 80, 10]


@pytest.mark.parametrize("block_size", [2, 4])
def test_block_split_keeps_each_block_in_one_subset(block_size: int) -> None:
    endings = grid_endings(12, 12, skip=frozenset({(0, 0), (5, 7), (11, 11), (6, 3)}))
    subsets = block_split(endings, 1, FRACTIONS, block_size)
    assert_partition(subsets, endings)
    owner: dict[tuple[int, int], str] = {}
    for split, items in subsets.items():
        for ending in items:
            row, col = parse_ending(ending)
            block = (row // block_size, col // block_size)
            assert owner.setdefault(block, split) == split, f"block {block} is split over subsets"
    assert len(set(owner.values())) == 3, "each subset gets at least one block"
    largest_block = block_size * block_size
    n = len(endings)
    assert int(n * 0.2) <= len(subsets["valid"]) < int(n * 0.2) + largest_block
    assert int(n * 0.8) <= len(subsets["valid"]) + len(subsets["train"]) < int(n * 0.8) + largest_block


def test_block_split_is_deterministic_and_differs_from_random() -> None:
    endings = grid_endings(12, 12)
    assert block_split(endings, 1, FRACTIONS, 4) == block_split(endings[::-1], 1, FRACTIONS, 4)
    assert block_split(endings, 1, FRACTIONS, 4) != block_split(endings, 5, FRACTIONS, 4)
    assert block_split(endings, 1, FRACTIONS, 4) != random_split(endings, 1, FRACTIONS)


def test_make_split_dispatches() -> None:
    endings = grid_endings(8, 8)
    assert make_split(endings, "random", 1, FRACTIONS, 4) == random_split(endings, 1, FRACTIONS)
    assert make_split(endings, "block", 1, FRACTIONS, 4) == block_split(endings, 1, FRACTIONS, 4)
