"""The three training scripts end to end on a tiny demo study area, with a tiny U-Net.

The demo generator and the pre-processing make real 32x32 training tiles once per session
(``conftest.py``); each test trains for a few steps with ``--width 0.0625`` (the same builder
as the full-size model, with 1/16 of the filters).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from training_helpers import TINY, TINY_LSTM, assert_one_line_error, history, quiet, run_script, write_config

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.train.models import build_unet, is_sequence_model, load_model
from helpers.train.trainers import FCN_SCRIPT, FIXED_SCRIPT, RANDOM_SCRIPT, SCRIPTS
from models import baseline_cnn, lstm_fixed_seq, lstm_random_seq

SCRIPT_MODULES = {FIXED_SCRIPT: lstm_fixed_seq, RANDOM_SCRIPT: lstm_random_seq}


def test_fcn_training_lowers_the_loss_and_writes_every_output(area: Config) -> None:
    summary = baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "6", "--no-augment",
                                  "--learning-rate", "0.01"], say=quiet)
    run = summary["run"]
    assert run == "baseline_cnn_01"
    rows = history(area, run)
    losses = [float(row["loss"]) for row in rows]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert {"val_categorical_accuracy", "val_masked_accuracy", "learning_rate"} <= set(rows[0])
    models = area.models_root
    for name in (f"{run}.keras", f"{run}_config.toml", f"{run}_flags.json", f"{run}_normalisation.json"):
        assert (models / name).is_file(), name
    assert not (models / f"{run}_backup").exists(), "the backup is removed after a finished run"
    assert not list(models.glob(".*partial*")), "no staged file is left"
    flags = json.loads((models / f"{run}_flags.json").read_text())
    assert flags["flags"]["width"] == 0.0625 and flags["script"] == FCN_SCRIPT
    assert flags["settings"]["epochs"] == 6 and flags["settings"]["patience"] == 20
    assert list((area.reports_root / "logs" / run).rglob("events.out.tfevents.*")), "TensorBoard event files"
    log = (area.reports_root / "logs_and_plots" / run / f"{run}_training_log.txt").read_text()
    for key in ("wall_time_s", "final_val_categorical_accuracy", "best_val_masked_accuracy", "monitor"):
        assert key in log, key
    assert summary["monitor"] == "val_masked_accuracy"
    masked = [float(row["val_masked_accuracy"]) for row in rows]
    assert summary["final_val_masked_accuracy"] == pytest.approx(masked[-1])
    assert summary["best_val_masked_accuracy"] == pytest.approx(max(masked))
    assert summary["best_val_categorical_accuracy"] == pytest.approx(
        max(float(row["val_categorical_accuracy"]) for row in rows))
    assert summary["seed"] == 3 and summary["deterministic"] is True


def test_saved_model_reloads_and_predicts_the_same(area: Config) -> None:
    baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "1"], say=quiet)
    model = load_model(area.models_root / "baseline_cnn_01.keras")
    again = load_model(area.models_root / "baseline_cnn_01.keras")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 13)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    assert model.loss.__class__.__name__ == "WeightedCategoricalCrossentropy"


def test_run_numbers_increment(area: Config) -> None:
    for expected in ("baseline_cnn_01", "baseline_cnn_02"):
        assert baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "1"], say=quiet)["run"] == expected


@pytest.mark.parametrize("script", [FIXED_SCRIPT, RANDOM_SCRIPT])
def test_lstm_training_from_the_newest_fcn(area: Config, script: str) -> None:
    baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "1"], say=quiet)
    summary = SCRIPT_MODULES[script].train(["--config", str(area.source), *TINY_LSTM, "--epochs", "6",
                                            "--no-augment", "--learning-rate", "0.01"], say=quiet)
    run = summary["run"]
    assert run == f"{script}_01"
    losses = [float(row["loss"]) for row in history(area, run)]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    model = load_model(area.models_root / f"{run}.keras")
    assert is_sequence_model(model)
    flags = json.loads((area.models_root / f"{run}_flags.json").read_text())
    assert flags["flags"]["base_model"] == "baseline_cnn_01"
    fcn_norm = json.loads((area.models_root / "baseline_cnn_01_normalisation.json").read_text())
    assert json.loads((area.models_root / f"{run}_normalisation.json").read_text()) == fcn_norm


class _Interrupt(keras.callbacks.Callback):
    """Stops the process-level run after an epoch, as a Ctrl-C would."""

    def __init__(self, after_epoch: int) -> None:
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


def test_resume_ends_exactly_as_an_uninterrupted_run(area: Config) -> None:
    # patience 1 with a learning rate this high stops early, so the early-stopping state matters too
    args = ["--config", str(area.source), *TINY, "--epochs", "6", "--patience", "1", "--learning-rate", "0.05"]
    with pytest.raises(InputError, match="interrupted; continue it with --resume baseline_cnn_01"):
        baseline_cnn.train(args, say=quiet, extra_callbacks=[_Interrupt(after_epoch=0)])
    assert (area.models_root / "baseline_cnn_01_backup").is_dir()
    assert not (area.models_root / "baseline_cnn_01.keras").exists()
    resumed = baseline_cnn.train(["--config", str(area.source), "--resume", "--quiet"], say=quiet)
    assert resumed["run"] == "baseline_cnn_01"
    assert resumed["first_epoch"] == 1, "epoch 0 was done before the interruption"
    straight = baseline_cnn.train(args, say=quiet)
    assert straight["run"] == "baseline_cnn_02"
    resumed_rows, straight_rows = history(area, "baseline_cnn_01"), history(area, "baseline_cnn_02")
    assert [int(row["epoch"]) for row in resumed_rows] == [int(row["epoch"]) for row in straight_rows]
    assert resumed_rows == straight_rows, "the same losses and accuracies, epoch by epoch"
    assert 1 < len(straight_rows) < 6, "early stopping ended both runs after the resume"
    assert resumed["best_epoch"] == straight["best_epoch"]
    first, second = (load_model(area.models_root / f"{run}.keras") for run in ("baseline_cnn_01", "baseline_cnn_02"))
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


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


def test_no_tiles_for_a_configured_date(tmp_path: Path, tiles_area: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    result = run_script(FCN_SCRIPT, "--config", str(config), *TINY, "--epochs", "1")
    assert_one_line_error(result, "20160403")
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_unknown_base_model(area: Config) -> None:
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "baseline_cnn_77")
    assert_one_line_error(result, "unknown model 'baseline_cnn_77'")
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "../x")
    assert_one_line_error(result, "x: model file not found")
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "a..b")
    assert_one_line_error(result, "not a plain name")


def test_base_model_of_the_wrong_shape(area: Config) -> None:
    area.models_root.mkdir(parents=True)
    build_unet(n_bands=4, n_classes=8, width=0.0625).save(area.models_root / "baseline_cnn_05.keras")
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "baseline_cnn_05")
    assert_one_line_error(result, "baseline_cnn_05_flags.json: missing", "has no run record")
    # an older run with its side files, but a model of another shape than they say
    (area.models_root / "baseline_cnn_05_flags.json").write_text(json.dumps({"script": FCN_SCRIPT, "flags": {}}))
    (area.models_root / "baseline_cnn_05_normalisation.json").write_text(
        json.dumps({"mean": [1000.0] * 13, "std": [500.0] * 13}))
    (area.models_root / "baseline_cnn_05_config.toml").write_text(area.source.read_text())
    result = run_script(FIXED_SCRIPT, "--config", str(area.source), *TINY_LSTM, "--base-model", "baseline_cnn_05")
    assert_one_line_error(result, "baseline_cnn_05.keras")
    assert "4 bands" in result.stderr or "base model of the wrong shape" in result.stderr


def test_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"split.seed": "one"})
    result = run_script(FCN_SCRIPT, "--config", str(config))
    assert_one_line_error(result, "split.seed")


def test_help_of_every_training_script() -> None:
    for script in SCRIPTS:
        result = run_script(script, "--help")
        assert result.returncode == 0 and "--strategy" in result.stdout
        assert "--monitor" in result.stdout and "training.patience" in result.stdout
