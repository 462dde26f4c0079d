"""Fixtures of the training-script tests: one tiny pre-processed demo area per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from training_helpers import quiet, write_config

from helpers.data import pipeline
from helpers.core.config import Config, load_config
from helpers.demo.demo_data import generate_demo


@pytest.fixture(scope="session")
def tiles_area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 168x168 px demo area pre-processed into training tiles (about a dozen tiles per date)."""
    folder = tmp_path_factory.mktemp("training_area")
    config_path = write_config(folder)
    config = load_config(config_path)
    generate_demo(config, seed=1, size=168)
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=quiet)
    return folder


@pytest.fixture
def area(tiles_area: Path, tmp_path: Path) -> Config:
    """The shared tiles with private models/ and reports/ folders.

    At this size the partly covered 2015-12-31 keeps no validation tile, so it leaves the pool.
    """
    text = (tiles_area / "config.toml").read_text(encoding="utf-8")
    assert 'training_pool = ["20151231", ' in text
    text = text.replace('training_pool = ["20151231", ', 'training_pool = [')
    text = text.replace(str(tiles_area / "models"), str(tmp_path / "models"))
    text = text.replace(str(tiles_area / "reports"), str(tmp_path / "reports"))
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture(autouse=True)
def _no_op_determinism_afterwards() -> Iterator[None]:
    """A run with --seed switches on TensorFlow's process-wide op determinism; later tests start without it."""
    yield
    from tensorflow.python.framework import config as tf_config  # the public API can only switch it on

    tf_config.disable_op_determinism()
