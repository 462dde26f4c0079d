"""Script 03b as a user runs it: the mask and its printed shares, and bad input in one line with exit status 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from cloud_scenes import DATE, scl_layer, write_scene

from helpers.core.config import L1C_BANDS, load_config
from helpers.core.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "src" / "data_processing" / "03b_cloud_masks.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def one_error_line(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_script_writes_the_mask_and_prints_the_shares(write_config: Callable[..., Path]) -> None:
    path = write_config()
    config = load_config(path)
    write_scene(config, "L2A", {"SCL": scl_layer()}, (6, 8))
    result = run("2022-04-19", "L2A", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"wrote {DATE}_L2A_clouds.tif: clear 50.0 %, cloud 33.3 %, shadow 16.7 % of the pixels with data; " \
           "no data 12.5 %" in result.stdout
    with rasterio.open(config.cloud_mask_path(DATE, "L2A")) as src:
        assert np.unique(src.read(1)).tolist() == [0, 1, 2, 255]
    again = run(DATE, "L2A", "--config", str(path))
    assert again.returncode == 0 and "up to date, skipped" in again.stdout


def test_script_refuses_an_unknown_level(write_config: Callable[..., Path]) -> None:
    one_error_line(run(DATE, "L3A", "--config", str(write_config())), r"unknown processing level 'L3A'")


def test_script_refuses_a_stack_without_a_needed_band(write_config: Callable[..., Path]) -> None:
    path = write_config()
    config = load_config(path)
    scene = write_scene(config, "L1C", {}, (4, 4), names=tuple(b for b in L1C_BANDS if b != "B12"))
    one_error_line(run(DATE, "--config", str(path)), rf"^error: {scene}: no layer B12 ")
    assert not (config.processed_dir / "clouds").exists()
