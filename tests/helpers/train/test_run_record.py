"""helpers.train.run_record: one reader for a trained run (embedded record, run folders, older side-file runs)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from runs_fixture import save_old_run, save_run, tiny_fcn

from helpers.core.config import L1C_BANDS, Config, load_config
from helpers.core.errors import InputError
from helpers.train.run_record import (
    RECORD_MEMBER,
    RecordClass,
    add_model_arguments,
    load_run,
    load_runs,
    model_spec,
)

MEAN, STD = [float(100 + b) for b in range(13)], [float(50 + b) for b in range(13)]


@pytest.fixture(scope="module")
def model():
    """One tiny 13-band stand-in model, saved under several names."""
    return tiny_fcn()


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    return load_config(write_config())


def test_an_embedded_record_gives_everything_to_use_the_model(model, config: Config) -> None:
    path = save_run(model, config, "tiny_fcn_01", mean=MEAN, std=STD)
    record = load_run("tiny_fcn_01", config)
    assert (record.name, record.model_path, record.script, record.level) == ("tiny_fcn_01", path, "tiny_fcn", "L1C")
    assert record.bands == L1C_BANDS and record.tile_size == config.tile_size
    assert [(c.id, c.name, c.colour) for c in record.classes] == [(c.id, c.name, c.colour) for c in config.classes]
    np.testing.assert_array_equal(record.normaliser.mean, np.float32(MEAN))
    np.testing.assert_array_equal(record.normaliser.std, np.float32(STD))
    assert record.config_text == config.source.read_text(encoding="utf-8")
    assert record.check_fits(config) == "L1C"
    assert load_run(path, config) == record  # the file named by its path
    assert not list(config.models_root.glob("*_normalisation.json")), "the record needs no side file"
    loaded = record.load_model()
    assert loaded.inputs[0].shape[-1] == 13


def test_a_run_folder_anywhere(model, config: Config, tmp_path: Path) -> None:
    save_run(model, config, "tiny_fcn_01", mean=MEAN, std=STD)
    folder = tmp_path / "elsewhere" / "tiny_fcn_01"
    folder.mkdir(parents=True)
    shutil.copy(config.models_root / "tiny_fcn_01.keras", folder)
    record = load_run(folder, config)
    assert record.model_path == folder / "tiny_fcn_01.keras" and record.name == "tiny_fcn_01"
    renamed = tmp_path / "portable"
    shutil.copytree(folder, renamed)
    assert load_run(renamed, config).model_path == renamed / "tiny_fcn_01.keras"  # the only model in it


def test_an_older_run_is_read_from_its_side_files(model, config: Config) -> None:
    save_old_run(model, config, "old_fcn_01", MEAN, STD)
    record = load_run("old_fcn_01", config)
    assert (record.level, record.bands, record.script) == ("L1C", L1C_BANDS, "old_fcn")
    np.testing.assert_array_equal(record.normaliser.mean, np.float32(MEAN))
    assert record.class_ids == config.class_ids
    assert record.check_fits(config) == "L1C"


def _damage(path: Path, text: str) -> None:
    """Rewrite a model archive with another record member."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist() if name != RECORD_MEMBER}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(RECORD_MEMBER, text)


@pytest.mark.parametrize("case", ["missing_side_file", "damaged_record", "invalid_record", "two_models",
                                  "empty_folder", "unknown", "not_plain", "not_keras", "bad_level_flag"])
def test_missing_or_inconsistent_runs_are_one_clear_error(model, config: Config, tmp_path: Path, case: str) -> None:
    spec: str | Path
    if case == "missing_side_file":
        save_old_run(model, config, "old_fcn_01", MEAN, STD)
        (config.models_root / "old_fcn_01_normalisation.json").unlink()
        spec, message = "old_fcn_01", r"old_fcn_01_normalisation\.json: missing; old_fcn_01\.keras has no run record"
    elif case == "damaged_record":
        _damage(save_run(model, config, "tiny_fcn_01"), "{not json")
        spec, message = "tiny_fcn_01", r"tiny_fcn_01\.keras: damaged run record"
    elif case == "invalid_record":
        path = save_run(model, config, "tiny_fcn_01")
        broken = {**load_run(path, config).to_json(), "normalisation": {"mean": MEAN, "std": [0] * 13}}
        _damage(path, json.dumps(broken))
        spec, message = "tiny_fcn_01", r"run_record\.json\]: not a valid run record \(every std must be positive\)"
    elif case == "two_models":
        for name in ("a_01", "b_01"):
            save_run(model, config, name, folder=tmp_path / "runs")
        spec, message = tmp_path / "runs", r"runs: a run folder must hold runs\.keras or exactly one \.keras file " \
                                           r"\(found a_01\.keras, b_01\.keras\)"
    elif case == "empty_folder":
        (tmp_path / "nothing").mkdir()
        spec, message = tmp_path / "nothing", r"\(found none\)"
    elif case == "unknown":
        spec, message = "no_such_01", r"unknown model 'no_such_01'"
    elif case == "not_plain":
        spec, message = "../x", r"not a plain name"
    elif case == "not_keras":
        (tmp_path / "model.h5").write_text("x")
        spec, message = tmp_path / "model.h5", r"model\.h5: not a \.keras model file"
    else:
        save_old_run(model, config, "old_fcn_01", MEAN, STD, level="L3")
        spec, message = "old_fcn_01", r"old_fcn_01_flags\.json: unknown processing level 'L3'"
    with pytest.raises(InputError, match=message):
        load_run(spec, config)


def test_check_fits_names_the_level_bands_and_class_table(model, config: Config, write_config) -> None:
    record = load_run(save_run(model, config, "tiny_fcn_01"), config)
    with pytest.raises(InputError, match=r"was trained on L1C data, but the data are L2A"):
        record.check_fits(config, "L2A")
    narrow = dataclasses.replace(record, bands=L1C_BANDS[:-1], mean=record.mean[:-1], std=record.std[:-1])
    with pytest.raises(InputError, match=r"takes 12 bands \(B01, .*B12\), the L1C data of .* have 13"):
        narrow.check_fits(config)
    renamed = dataclasses.replace(record, classes=(RecordClass(1, "Forest", "#00ff00"), *record.classes[1:]))
    with pytest.raises(InputError, match=r"another class table than .*\(1, 'Forest'\).*copy the run's \[\[classes\]\]"):
        renamed.check_fits(config)
    with pytest.raises(InputError, match=r"the model takes 13 bands, its run record lists 12"):
        narrow.check_model(model)


def test_ensembles_are_runs_of_one_kind(model, config: Config) -> None:
    save_run(model, config, "tiny_fcn_01")
    save_run(model, config, "tiny_fcn_02")
    runs = load_runs("tiny_fcn_ensemble_12", config)
    assert runs.name == "tiny_fcn_ensemble_12" and runs.member_names == ["tiny_fcn_01", "tiny_fcn_02"]
    assert load_runs("tiny_fcn_01", config).member_names == ["tiny_fcn_01"]
    save_run(model, config, "tiny_fcn_03", tile_size=64)
    with pytest.raises(InputError, match=r"ensemble 'tiny_fcn_ensemble_13': runs tiny_fcn_01 and tiny_fcn_03 differ in "
                                         r"tile sizes"):
        load_runs("tiny_fcn_ensemble_13", config)


@pytest.mark.parametrize(("argv", "expected"), [(["m_01"], "m_01"), (["--model", "some/run"], Path("some/run")),
                                                ([], None), (["m_01", "--model", "x.keras"], None),
                                                (["../m_01"], None)])
def test_exactly_one_of_name_and_path(argv: list[str], expected: str | Path | None) -> None:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    if expected is None:
        message = "not a plain name" if argv == ["../m_01"] else "give either MODEL_NAME .* or --model PATH"
        with pytest.raises(InputError, match=message):
            model_spec(args)
    else:
        assert model_spec(args) == expected
