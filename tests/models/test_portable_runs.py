"""A trained run is self-contained: its record is inside the .keras file; a sequence model reads its base from it."""

from __future__ import annotations

import json
import shutil
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from study_area import write_config_file
from training_helpers import TINY, TINY_LSTM, assert_one_line_error, config_variant, files_under, quiet, run_script

from helpers.core.config import Config, load_config
from helpers.train.run_record import RECORD_MEMBER, load_run
from helpers.train.trainers import FCN_SCRIPT, FIXED_SCRIPT
from models import baseline_cnn, lstm_fixed_seq


@pytest.fixture(scope="module")
def fcn_run(tiles_area: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained FCN run (model and side files) in a folder of its own; copy what a test needs."""
    folder = tmp_path_factory.mktemp("fcn_run")
    source = tomllib.loads((tiles_area / "config.toml").read_text(encoding="utf-8"))
    pool = [d for d in source["dates"]["training_pool"] if d != "20151231"]  # keeps no validation tile here
    write_config_file(folder / "config.toml", source, {"dates.training_pool": pool,
                                                        "paths.models_root": str(folder / "models"),
                                                        "paths.reports_root": str(folder / "reports")})
    baseline_cnn.train(["--config", str(folder / "config.toml"), *TINY, "--epochs", "1"], say=quiet)
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()  # a module fixture outlives the per-test reset
    return folder / "models"


def test_the_saved_model_holds_its_run_record(fcn_run: Path, area: Config, tmp_path: Path) -> None:
    alone = tmp_path / "moved" / "baseline_cnn_01.keras"  # the model file alone, away from its side files
    alone.parent.mkdir()
    shutil.copy2(fcn_run / "baseline_cnn_01.keras", alone)
    with zipfile.ZipFile(alone) as archive:
        assert RECORD_MEMBER in archive.namelist()
    record = load_run(alone, area)
    assert (record.name, record.script, record.level) == ("baseline_cnn_01", FCN_SCRIPT, "L1C")
    assert record.bands == tuple(area.bands("L1C"))
    assert [(c.id, c.name) for c in record.classes] == [(c.id, c.name) for c in area.classes]
    assert record.unclassifiable_id == area.unclassifiable_id
    side = json.loads((fcn_run / "baseline_cnn_01_normalisation.json").read_text())
    np.testing.assert_allclose(record.mean, side["mean"])
    np.testing.assert_allclose(record.std, side["std"])
    assert record.flags["width"] == 0.0625 and record.flags["seed"] == 3
    assert record.dates == area.fcn_training and record.tile_size == area.tile_size
    assert record.load_model().count_params() > 0


def test_a_base_given_by_path_from_another_folder(fcn_run: Path, area: Config, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "my_fcn"
    elsewhere.mkdir(parents=True)
    shutil.copy2(fcn_run / "baseline_cnn_01.keras", elsewhere / "my_fcn.keras")  # renamed, no side files
    summary = lstm_fixed_seq.train(["--config", str(area.source), *TINY_LSTM, "--epochs", "1", "--steps", "2",
                                    "--no-eval", "--base-model", str(elsewhere)], say=quiet)
    run = summary["run"]
    assert run == f"{FIXED_SCRIPT}_01"
    flags = json.loads((area.models_root / f"{run}_flags.json").read_text())
    assert flags["flags"]["base_model"] == str(elsewhere)
    base = load_run(elsewhere / "my_fcn.keras", area)
    record = load_run(run, area)
    assert (record.mean, record.std) == (base.mean, base.std), "the base's normalisation, from its record"
    assert record.script == FIXED_SCRIPT and record.dates == area.fixed_sequence


def test_a_base_trained_with_another_class_table_is_refused(fcn_run: Path, area: Config, tmp_path: Path) -> None:
    area.models_root.mkdir(parents=True)
    shutil.copy2(fcn_run / "baseline_cnn_01.keras", area.models_root / "baseline_cnn_01.keras")
    renamed = config_variant(area, "renamed.toml", {"classes.1.name": "Meadow"})
    before = files_under(area.models_root) | files_under(area.reports_root)
    result = run_script(FIXED_SCRIPT, "--config", str(renamed.source), *TINY_LSTM)
    assert_one_line_error(result, "baseline_cnn_01", "another class table", "Meadow")
    assert files_under(area.models_root) | files_under(area.reports_root) == before, "nothing written"


def test_a_base_of_another_level_is_refused(fcn_run: Path, area: Config) -> None:
    area.models_root.mkdir(parents=True)
    shutil.copy2(fcn_run / "baseline_cnn_01.keras", area.models_root / "baseline_cnn_01.keras")
    from helpers.core.errors import InputError

    with pytest.raises(InputError, match=r"was trained on L1C data, but the data are L2A"):
        lstm_fixed_seq.train(["--config", str(area.source), *TINY_LSTM, "--level", "L2A"], say=quiet)
    assert load_config(area.source).level == "L1C"
