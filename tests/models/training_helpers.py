"""Shared pieces of the training-script tests: tiny flags, config variants, outputs, subprocess runs."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from study_area import demo_settings, write_config_file, write_config_variant

from helpers.core.config import Config, load_config
from helpers.core.paths import REPO_ROOT

TINY = ["--width", "0.0625", "--batch-size", "8", "--steps", "5", "--val-steps", "1", "--seed", "3", "--quiet",
        "--no-eval"]
"""A U-Net with 1/16 of the filters, a few small batches, no test-split evaluation."""
TINY_LSTM = ["--batch-size", "4", "--steps", "4", "--val-steps", "1", "--seed", "3", "--quiet"]


def quiet(message: str) -> None:
    """A printer that prints nothing."""
    del message


def write_config(folder: Path, changes: Mapping[str, Any] | None = None) -> Path:
    """configs/demo.toml with its data, models and reports under ``folder`` and dotted-key ``changes``."""
    return write_config_file(folder / "config.toml", demo_settings(folder), changes)


def config_file(config: Config, name: str, changes: Mapping[str, Any]) -> Path:
    """The config with dotted keys changed (``dates.fixed_sequence``; ``classes.1.name``), saved beside it."""
    return write_config_variant(config.source, name, changes)


def config_variant(config: Config, name: str, changes: Mapping[str, Any]) -> Config:
    """:func:`config_file`, loaded."""
    return load_config(config_file(config, name, changes))


def history(config: Config, run: str) -> list[dict[str, str]]:
    """The rows of a run's ``_history.csv``."""
    with open(config.reports_root / "logs_and_plots" / run / f"{run}_history.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``src/models/{script}.py`` from its own folder, as a user would."""
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / "models" / f"{script}.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT / "src" / "models", timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2, no traceback, one ``error:`` line holding every fragment."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def files_under(folder: Path) -> set[Path]:
    """Every file below a folder (empty if it does not exist)."""
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
