"""A forest run's model: probabilities in the run's channel order, saved with skops, loaded only when safe."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier

from helpers.core.config import Config, load_config
from helpers.core.errors import InputError
from helpers.train.forest_model import MONO_SCRIPT, MULTI_SCRIPT, ForestModel, save_forest
from helpers.train.normalisation import Normaliser
from helpers.train.run_record import RECORD_MEMBER, RunRecord, load_run, make_record

BANDS = 13


class Payload:
    """A type no forest file may hold."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Config:
    return load_config(write_config())


def fitted(n_features: int, classes: tuple[int, ...] = (2, 3, 5), seed: int = 0) -> RandomForestClassifier:
    """A small forest on random pixels whose classes are some of the class table's ids."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4000, size=(300, n_features)).astype(np.float32)
    y = np.asarray(classes)[rng.integers(0, len(classes), 300)]
    return RandomForestClassifier(n_estimators=4, min_samples_leaf=2, random_state=seed).fit(x, y)


def record_for(config: Config, name: str, script: str = MONO_SCRIPT, dates: tuple[str, ...] = ()) -> RunRecord:
    identity = Normaliser.from_values([0.0] * BANDS, [1.0] * BANDS)
    record = make_record(config, name, script, config.level, identity, dates or config.fcn_training, {})
    return dataclasses.replace(record, model_path=config.models_root / f"{name}.skops")


def saved(config: Config, forest: RandomForestClassifier, name: str = "random_forest_mono_01",
          script: str = MONO_SCRIPT, dates: tuple[str, ...] = ()) -> RunRecord:
    record = record_for(config, name, script, dates)
    timesteps = len(record.dates) if script == MULTI_SCRIPT else 1
    save_forest(ForestModel(forest, BANDS, timesteps, config.class_ids), record.model_path, record)
    return record


def test_probabilities_are_in_the_run_channel_order(config: Config) -> None:
    forest = fitted(BANDS)
    model = ForestModel(forest, BANDS, 1, config.class_ids)
    tiles = np.random.default_rng(1).integers(0, 4000, size=(3, 4, 5, BANDS)).astype(np.uint16)
    probabilities = model.predict(tiles)
    assert probabilities.shape == (3, 4, 5, len(config.class_ids)) and probabilities.dtype == np.float32
    direct = forest.predict_proba(tiles.reshape(-1, BANDS).astype(np.float32))
    channels = [config.class_ids.index(c) for c in forest.classes_]  # classes 2, 3, 5 -> channels 1, 2, 4
    np.testing.assert_allclose(probabilities.reshape(-1, 8)[:, channels], direct, rtol=1e-6)
    others = [i for i in range(8) if i not in channels]
    assert not probabilities.reshape(-1, 8)[:, others].any(), "classes the forest never saw get 0"
    np.testing.assert_array_equal(np.argmax(probabilities, axis=-1).reshape(-1) + 1,
                                  forest.predict(tiles.reshape(-1, BANDS).astype(np.float32)))


def test_sequences_are_stacked_date_by_date(config: Config) -> None:
    forest = fitted(3 * BANDS)
    model = ForestModel(forest, BANDS, 3, config.class_ids)
    sequences = np.random.default_rng(2).integers(0, 4000, size=(2, 3, 4, 4, BANDS)).astype(np.uint16)
    features = np.moveaxis(sequences, 1, 3).reshape(-1, 3 * BANDS)  # pixel: date 1 bands, date 2 bands, ...
    np.testing.assert_array_equal(np.argmax(model.predict(sequences), axis=-1).reshape(-1) + 1,
                                  forest.predict(features.astype(np.float32)))
    with pytest.raises(ValueError, match=r"expected \(n, 3, H, W, 13\) sequences"):
        model.predict(sequences[:, :2])


def test_a_saved_forest_loads_by_name_with_its_record(config: Config) -> None:
    forest = fitted(BANDS)
    record = saved(config, forest)
    with zipfile.ZipFile(record.model_path) as archive:
        assert RECORD_MEMBER in archive.namelist()
    loaded = load_run("random_forest_mono_01", config)
    assert loaded.is_forest and loaded.script == MONO_SCRIPT and loaded.model_path == record.model_path
    assert (loaded.mean, loaded.std) == ((0.0,) * BANDS, (1.0,) * BANDS), "a forest needs no normalisation"
    model = loaded.load_model()
    pixels = np.random.default_rng(3).integers(0, 4000, size=(50, BANDS)).astype(np.float32)
    np.testing.assert_array_equal(model.forest.predict(pixels), forest.predict(pixels))
    assert load_run(record.model_path.parent, config).name == "random_forest_mono_01", "a run folder holding it"


def test_a_multitemporal_forest_takes_its_dates(config: Config) -> None:
    dates = config.fixed_sequence
    assert len(dates) == 2
    saved(config, fitted(2 * BANDS), "random_forest_multi_01", MULTI_SCRIPT, dates)
    model = load_run("random_forest_multi_01", config).load_model()
    assert (model.timesteps, model.takes_sequences, model.n_features) == (2, True, 2 * BANDS)


def test_a_damaged_file_is_one_line(config: Config) -> None:
    record = saved(config, fitted(BANDS))
    data = record.model_path.read_bytes()
    record.model_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"random_forest_mono_01\.skops: not a readable random-forest model"):
        load_run("random_forest_mono_01", config)


def test_untrusted_types_are_refused_before_anything_is_built(config: Config) -> None:
    record = record_for(config, "random_forest_mono_01")
    record.model_path.parent.mkdir(parents=True)
    sio.dump({"forest": fitted(BANDS), "payload": Payload()}, record.model_path)
    with zipfile.ZipFile(record.model_path, "a") as archive:
        archive.writestr(RECORD_MEMBER, json.dumps(record.to_json()))
    with pytest.raises(InputError, match=r"refused to load: the file holds types that are not trusted "
                                         r"\(test_forest_model\.Payload\)"):
        load_run("random_forest_mono_01", config).load_model()


def test_a_tree_pointing_outside_its_nodes_is_refused(config: Config) -> None:
    forest = fitted(BANDS)
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6  # scikit-learn would follow it without a bounds check
    state["nodes"] = nodes
    tree.__setstate__(state)
    saved(config, forest)
    with pytest.raises(InputError, match=r"tree 1 of the forest has out-of-range node or feature indices"):
        load_run("random_forest_mono_01", config).load_model()


def test_a_forest_of_other_features_than_its_record_is_refused(config: Config) -> None:
    saved(config, fitted(BANDS - 1))
    with pytest.raises(InputError, match=r"the forest takes 12 features per pixel, its run record lists 13 bands x "
                                         r"1 date\(s\) = 13 \(model and record do not belong together\)"):
        load_run("random_forest_mono_01", config).load_model()


def test_a_forest_file_without_a_record_is_refused(config: Config) -> None:
    path = config.models_root / "random_forest_mono_01.skops"
    path.parent.mkdir(parents=True)
    sio.dump(fitted(BANDS), path)
    with pytest.raises(InputError, match=r"random_forest_mono_01\.skops: no run record inside"):
        load_run("random_forest_mono_01", config)
