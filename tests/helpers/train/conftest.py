"""The ``area`` fixture of the training-input tests (see :mod:`training_tiles`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_tiles import Area, build_area


@pytest.fixture
def area(tmp_path: Path) -> Area:
    """Tiles of four dates (train, valid, test splits) and a config with identity normalisation."""
    return build_area(tmp_path)
