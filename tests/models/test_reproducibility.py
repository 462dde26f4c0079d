"""Same seed, same machine: the same training history and the same weights (each run in a fresh process)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from training_helpers import TINY, TINY_LSTM

from helpers.core.config import Config, load_config
from helpers.train.models import load_model
from helpers.core.paths import REPO_ROOT

_RUN_BOTH = """
import sys
sys.path.insert(0, {src!r})
from models import baseline_cnn, lstm_random_seq
config = {config!r}
baseline_cnn.train(["--config", config, *{fcn!r}], say=lambda m: None)
lstm_random_seq.train(["--config", config, *{lstm!r}], say=lambda m: None)
"""


def _train_in_a_fresh_process(config: Path) -> None:
    """Train an FCN (augmented) and a random-sequence model of 2 dates from it, in a new interpreter."""
    code = _RUN_BOTH.format(src=str(REPO_ROOT / "src"), config=str(config), fcn=[*TINY, "--epochs", "2"],
                            lstm=[*TINY_LSTM, "--epochs", "2", "--steps", "2", "--timesteps", "2", "--no-eval"])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _history(config: Config, run: str) -> list[dict[str, str]]:
    path = config.reports_root / "logs_and_plots" / run / f"{run}_history.csv"
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_same_seed_gives_the_same_history_and_weights(area: Config, tmp_path: Path) -> None:
    other_dir = tmp_path / "again"
    other_dir.mkdir()
    text = area.source.read_text(encoding="utf-8")
    other_path = other_dir / "config.toml"
    other_path.write_text(text.replace(str(area.models_root), str(other_dir / "models"))
                          .replace(str(area.reports_root), str(other_dir / "reports")), encoding="utf-8")
    other = load_config(other_path)
    _train_in_a_fresh_process(area.source)
    _train_in_a_fresh_process(other.source)
    for run in ("baseline_cnn_01", "lstm_random_seq_01"):
        first, second = _history(area, run), _history(other, run)
        assert len(first) == 2 and first == second, run  # every loss and accuracy, to the last digit
        weights = load_model(area.models_root / f"{run}.keras").get_weights()
        again = load_model(other.models_root / f"{run}.keras").get_weights()
        assert len(weights) == len(again)
        for a, b in zip(weights, again, strict=True):
            np.testing.assert_array_equal(a, b)
