"""Pytest fixtures over the generated study areas of :mod:`study_area`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from study_area import StudyArea, base_settings, build_study_area, write_config_file


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> StudyArea:
    """The standard study area, generated once per session; never modify it, copy it.

    Returns:
        Two L1C training dates (20160403, 20160522 = reference) and one baseline-04.00 new
        date (20220419), GT, AOI and config.
    """
    return build_study_area(tmp_path_factory.mktemp("template"))


@pytest.fixture
def study_area(study_template: StudyArea, tmp_path: Path) -> StudyArea:
    """A private copy of the standard study area that a test may change freely.

    Returns:
        The copy, with its own config under ``tmp_path``.
    """
    return study_template.copy_to(tmp_path)


@pytest.fixture
def make_study_area(tmp_path: Path) -> Callable[..., StudyArea]:
    """Factory for study areas with other dates or baselines than the standard one.

    Returns:
        ``make(name, training=..., new=..., offset_dates=...) -> StudyArea`` writing under
        ``tmp_path/name`` (see :func:`build_study_area`).
    """

    def make(name: str = "area", **options: tuple[str, ...]) -> StudyArea:
        folder = tmp_path / name
        folder.mkdir()
        return build_study_area(folder, **options)

    return make


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a config variant (no data needed) under ``tmp_path``.

    Returns:
        ``write(changes=None, name="config.toml") -> Path``: the demo config adapted to a
        generated area with dotted-key ``changes`` applied (:data:`DELETE` removes a key).
    """

    def write(changes: Mapping[str, Any] | None = None, name: str = "config.toml") -> Path:
        return write_config_file(tmp_path / name, base_settings(tmp_path / "data"), changes)

    return write
