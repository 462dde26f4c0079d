"""What the training scripts refuse before they train (one line, nothing written), the monitor, a diverged loss."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from study_area import DELETE
from training_helpers import (
    TINY,
    TINY_LSTM,
    assert_one_line_error,
    config_file,
    config_variant,
    files_under,
    quiet,
    run_script,
)

from helpers.core.config import Config
from helpers.core.errors import InputError
from helpers.train.fitting import early_stopping
from helpers.train.trainers import FCN_SCRIPT, start_run
from helpers.train.training import FCN_BATCH, WIDTH
from models import baseline_cnn, lstm_fixed_seq, lstm_random_seq


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "0"], r"^--epochs 0: must be at least 1 \(an untrained model is no run\)$"),
    (["--epochs", "-3"], r"^--epochs -3: must be at least 1"),
    (["--steps", "0"], r"^--steps 0: must be at least 1$"),
    (["--val-steps", "0"], r"^--val-steps 0: must be at least 1$"),
    (["--batch-size", "0"], r"^--batch-size 0: must be at least 1$"),
    (["--width", "0"], r"^--width 0\.0: must be above 0$"),
    (["--width", "-0.5"], r"^--width -0\.5: must be above 0$"),
    (["--learning-rate", "inf"], r"^--learning-rate inf: must be a finite number$"),
    (["--learning-rate", "nan"], r"^--learning-rate nan: must be a finite number$"),
    (["--learning-rate", "0"], r"^--learning-rate 0\.0: must be above 0$"),
    (["--patience", "-1"], r"^--patience -1: must be at least 0$"),
    (["--seed", "-1"], r"^--seed -1: must be in 0\.\.4294967295$"),
    (["--logical-cpus", "0"], r"^--logical-cpus 0: must be at least 1$"),
])
def test_bad_flags_are_refused_before_anything_is_written(area: Config, flags: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        baseline_cnn.train(["--config", str(area.source), "--quiet", *flags], say=quiet)
    assert not files_under(area.models_root) and not files_under(area.reports_root)


def test_a_sequence_needs_two_timesteps(area: Config) -> None:
    with pytest.raises(InputError, match=r"^--timesteps 1: a sequence model needs at least 2 timesteps$"):
        lstm_random_seq.train(["--config", str(area.source), *TINY_LSTM, "--timesteps", "1"], say=quiet)
    one = config_file(area, "one.toml", {"training.timesteps": 1})  # refused by the config or by the script
    with pytest.raises(InputError, match=r"one\.toml: .*training\.timesteps"):
        lstm_random_seq.train(["--config", str(one), *TINY_LSTM], say=quiet)
    assert not files_under(area.models_root)


def test_a_pool_smaller_than_the_timesteps_names_the_pool(area: Config) -> None:
    pool = list(area.training_pool[:3])
    small = config_variant(area, "small.toml", {"dates.training_pool": pool, "dates.fcn_training": pool,
                                                "dates.fixed_sequence": pool, "dates.evaluation": pool,
                                                "dates.reference": pool[-1]})
    with pytest.raises(InputError, match=r"small\.toml: lstm_random_seq\.py draws 6 dates per sequence, but "
                                         r"dates\.training_pool has 3; .*--timesteps 3 or fewer"):
        lstm_random_seq.train(["--config", str(small.source), *TINY_LSTM], say=quiet)
    assert not files_under(area.models_root)


def test_a_fixed_sequence_of_one_date_names_the_key(area: Config) -> None:
    one = config_variant(area, "one_date.toml", {"dates.fixed_sequence": [area.training_pool[0]]})
    result = run_script("lstm_fixed_seq", "--config", str(one.source), *TINY_LSTM)
    assert_one_line_error(result, f"{one.source}: lstm_fixed_seq.py needs at least 2 dates in dates.fixed_sequence "
                                  "(it has 1)")
    assert not files_under(area.models_root)


def test_an_fcn_without_dates_names_the_key(area: Config) -> None:
    try:
        empty = config_variant(area, "no_fcn.toml", {"dates.fcn_training": []})
    except InputError as error:  # the config itself may refuse an empty list: then it names the key too
        assert "dates.fcn_training" in str(error)
        return
    with pytest.raises(InputError, match=r"baseline_cnn\.py needs at least 1 date in dates\.fcn_training \(it has 0\)"):
        baseline_cnn.train(["--config", str(empty.source), *TINY], say=quiet)


def test_training_needs_ground_truth(area: Config) -> None:
    no_gt = config_variant(area, "no_gt.toml", {"ground_truth.file": DELETE})
    for script in (baseline_cnn, lstm_fixed_seq, lstm_random_seq):
        with pytest.raises(InputError, match=rf"^{no_gt.source} has no ground_truth\.file; training needs "
                                             r"ground truth \(a classification-only study area\)$"):
            script.train(["--config", str(no_gt.source), "--quiet"], say=quiet)
    assert not files_under(area.models_root)


def test_the_monitor_comes_from_the_flag_else_the_config_else_masked_accuracy(area: Config) -> None:
    def monitored(config: Config, *flags: str) -> str:
        run = start_run(FCN_SCRIPT, "test", ["--config", str(config.source), *flags], batch=FCN_BATCH,
                        settings=[WIDTH], say=quiet)
        return early_stopping(run, min_delta=0.01, baseline=0.5).monitor

    assert monitored(area) == "val_masked_accuracy"
    assert monitored(area, "--monitor", "categorical_accuracy") == "val_categorical_accuracy"
    original = config_variant(area, "original.toml", {"training.monitor": "categorical_accuracy"})
    assert monitored(original) == "val_categorical_accuracy"
    assert monitored(original, "--monitor", "masked_accuracy") == "val_masked_accuracy"
    with pytest.raises(SystemExit):  # argparse: an unknown choice
        monitored(area, "--monitor", "accuracy")


def test_a_run_monitoring_categorical_accuracy_says_so(area: Config) -> None:
    summary = baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "2", "--monitor",
                                  "categorical_accuracy"], say=quiet)
    assert summary["monitor"] == "val_categorical_accuracy"
    assert summary["final_val_masked_accuracy"] is not None


def test_a_diverged_loss_saves_no_model(area: Config) -> None:
    diverged = r"^baseline_cnn_01: the training loss became (nan|inf) in epoch \d+, batch \d+; no model was saved"
    with pytest.raises(InputError, match=diverged):
        baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "3", "--learning-rate", "1e30"],
                           say=quiet)
    assert not (area.models_root / "baseline_cnn_01.keras").exists()
    assert not (area.models_root / "baseline_cnn_01_backup").exists()
    assert not (area.reports_root / "logs_and_plots" / "baseline_cnn_01" / "baseline_cnn_01_training_summary.json"
                ).exists()


class _NoDeterministicKernel(keras.callbacks.Callback):
    """Raises what TensorFlow raises for an op without a deterministic kernel (GPUs have some)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise tf.errors.UnimplementedError(None, None, "A deterministic GPU implementation of SomeOp is not "
                                                       "currently available.")


def test_an_op_without_a_deterministic_kernel_names_the_way_out(area: Config) -> None:
    with pytest.raises(InputError, match=r"^baseline_cnn_01: TensorFlow has no deterministic kernel for an op on this "
                                         r"device \(A deterministic GPU implementation of SomeOp .*\); train with "
                                         r"--no-determinism"):
        baseline_cnn.train(["--config", str(area.source), *TINY, "--epochs", "1"], say=quiet,
                           extra_callbacks=[_NoDeterministicKernel()])
    assert not (area.models_root / "baseline_cnn_01.keras").exists()
