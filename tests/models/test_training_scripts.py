"""The three training scripts end to end on a tiny demo study area, with a tiny U-Net.

The demo generator and the pre-processing make real 32x32 training tiles once per session;
each test trains for a few steps with ``--width 0.0625`` (the same builder as the full-size
model, with 1/16 of the filters).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import pipeline
from helpers.config import Config, load_config
from helpers.demo_data import generate_demo
from helpers.errors import InputError
from helpers.models import is_sequence_model, load_model
from helpers.paths import REPO_ROOT
from helpers.trainers import FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT, train

TINY = ["--width", "0.0625", "--batch-size", "8", "--steps", "5", "--val-steps", "1", "--seed", "3", "--quiet",
        "--no-eval"]
TINY_LSTM = ["--batch-size", "4", "--steps", "4", "--val-steps", "1", "--seed", "3", "--quiet"]


def _quiet(message: str) -> None:
    del message


def write_config(folder: Path, **changes: str) -> Path:
    """A copy of configs/demo.toml with its data, models and reports under ``folder``."""
    text = (REPO_ROOT / "configs" / "demo.toml").read_text(encoding="utf-8")
    changes = {'data_root = "data/demo"': f'data_root = "{folder / "data"}"',
               'models_root = "models/demo"': f'models_root = "{folder / "models"}"',
               'reports_root = "reports/demo"': f'reports_root = "{folder / "reports"}"', **changes}
    for old, new in changes.items():
        assert old in text, f"configs/demo.toml no longer contains {old!r}"
        text = text.replace(old, new)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiles_area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 168x168 px demo area pre-processed into training tiles (about a dozen tiles per date)."""
    folder = tmp_path_factory.mktemp("training_area")
    config_path = write_config(folder)
    config = load_config(config_path)
    generate_demo(config, seed=1, size=168)
    pipeline.process_batch(config, config.training_pool, "L1C", "TRAIN", say=_quiet)
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


def history(config: Config, run: str) -> list[dict[str, str]]:
    with open(config.reports_root / "logs_and_plots" / run / f"{run}_history.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_fcn_training_lowers_the_loss_and_writes_every_output(area: Config) -> None:
    summary = train(FCN_SCRIPT, "test", ["--config", str(area.source), *TINY, "--epochs", "6",
                                         "--no-augment", "--learning-rate", "0.01"], say=_quiet)
    run = summary["run"]
    assert run == "baseline_cnn_01"
    losses = [float(row["loss"]) for row in history(area, run)]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    models = area.models_root
    for name in (f"{run}.keras", f"{run}_config.toml", f"{run}_flags.json", f"{run}_normalisation.json"):
        assert (models / name).is_file(), name
    assert not (models / f"{run}_backup").exists(), "the backup is removed after a finished run"
    flags = json.loads((models / f"{run}_flags.json").read_text())
    assert flags["flags"]["width"] == 0.0625 and flags["script"] == FCN_SCRIPT
    assert list((area.reports_root / "logs" / run).rglob("events.out.tfevents.*")), "TensorBoard event files"
    log = (area.reports_root / "logs_and_plots" / run / f"{run}_training_log.txt").read_text()
    assert "wall_time_s" in log and "final_val_categorical_accuracy" in log


def test_saved_model_reloads_and_predicts_the_same(area: Config) -> None:
    train(FCN_SCRIPT, "test", ["--config", str(area.source), *TINY, "--epochs", "1"], say=_quiet)
    model = load_model(area.models_root / "baseline_cnn_01.keras")
    again = load_model(area.models_root / "baseline_cnn_01.keras")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 13)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    assert model.loss.__class__.__name__ == "WeightedCategoricalCrossentropy"


def test_run_numbers_increment(area: Config) -> None:
    for expected in ("baseline_cnn_01", "baseline_cnn_02"):
        assert train(FCN_SCRIPT, "test", ["--config", str(area.source), *TINY, "--epochs", "1"],
                     say=_quiet)["run"] == expected


@pytest.mark.parametrize("script", [FIXED_SCRIPT, RANDOM_SCRIPT])
def test_lstm_training_from_the_newest_fcn(area: Config, script: str) -> None:
    train(FCN_SCRIPT, "test", ["--config", str(area.source), *TINY, "--epochs", "1"], say=_quiet)
    summary = train(script, "test", ["--config", str(area.source), *TINY_LSTM, "--epochs", "6", "--no-augment",
                                     "--learning-rate", "0.01"], say=_quiet)
    run = summary["run"]
    assert run == f"{script}_01"
    losses = [float(row["loss"]) for row in history(area, run)]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    model = load_model(area.models_root / f"{run}.keras")
    assert is_sequence_model(model)
    flags = json.loads((area.models_root / f"{run}_flags.json").read_text())
    assert flags["flags"]["base_model"] == "baseline_cnn_01"


class _Interrupt(keras.callbacks.Callback):
    """Stops the process-level run after an epoch, as a Ctrl-C would."""

    def __init__(self, after_epoch: int) -> None:
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


def test_resume_continues_from_the_saved_epoch(area: Config) -> None:
    args = ["--config", str(area.source), *TINY, "--epochs", "4"]
    with pytest.raises(InputError, match="interrupted; continue it with --resume baseline_cnn_01"):
        train(FCN_SCRIPT, "test", args, say=_quiet, extra_callbacks=[_Interrupt(after_epoch=1)])
    assert (area.models_root / "baseline_cnn_01_backup").is_dir()
    assert not (area.models_root / "baseline_cnn_01.keras").exists()
    summary = train(FCN_SCRIPT, "test", ["--config", str(area.source), "--resume", "--quiet"], say=_quiet)
    assert summary["run"] == "baseline_cnn_01"
    assert summary["first_epoch"] == 2, "epochs 0 and 1 were done before the interruption"
    assert [int(row["epoch"]) for row in history(area, "baseline_cnn_01")] == [0, 1, 2, 3]
    assert (area.models_root / "baseline_cnn_01.keras").is_file()


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / "models" / f"{script}.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT / "src" / "models", timeout=600)


def test_mirrored_strategy_trains_on_two_logical_cpus(area: Config) -> None:
    with_eval = [flag for flag in TINY if flag != "--no-eval"]
    result = run_script(FCN_SCRIPT, "--config", str(area.source), *with_eval, "--epochs", "1", "--strategy",
                        "mirrored", "--logical-cpus", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "2 replica(s)" in result.stdout
    assert (area.models_root / "baseline_cnn_01.keras").is_file()
    metrics = area.reports_root / "logs_and_plots" / "baseline_cnn_01" / "metrics.json"
    assert json.loads(metrics.read_text())["split"] == "test", "the script evaluates after training"


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_no_tiles_for_a_configured_date(tmp_path: Path, tiles_area: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    result = run_script(FCN_SCRIPT, "--config", str(config), *TINY, "--epochs", "1")
    _assert_one_line_error(result, "20160403")
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_unknown_base_model(area: Config) -> None:
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "baseline_cnn_77")
    _assert_one_line_error(result, "unknown model 'baseline_cnn_77'")
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "../x")
    _assert_one_line_error(result, "not a plain name")


def test_base_model_of_the_wrong_shape(area: Config) -> None:
    from helpers.models import build_unet

    area.models_root.mkdir(parents=True)
    build_unet(n_bands=4, n_classes=8, width=0.0625).save(area.models_root / "baseline_cnn_05.keras")
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "baseline_cnn_05")
    _assert_one_line_error(result, "base model of the wrong shape")


def test_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"seed = 1": "seed = \"one\""})
    result = run_script(FCN_SCRIPT, "--config", str(config))
    _assert_one_line_error(result, "split.seed")


def test_help_of_every_training_script() -> None:
    for script in (FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT):
        result = run_script(script, "--help")
        assert result.returncode == 0 and "--strategy" in result.stdout
