"""Weighted categorical cross-entropy: weights from pixel counts, ignored pixels, serialisation."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from helpers.core.config import load_config
from helpers.core.errors import ConfigError
from helpers.core.paths import REPO_ROOT
from helpers.train.losses import (
    MaskedAccuracy,
    WeightedCategoricalCrossentropy,
    class_weights,
    class_weights_from_counts,
)

PAPER_WEIGHTS = [377.75, 8.60, 5.78, 55.36, 6.99, 425.55, 119.96, 0.0]
EPS = 1e-7


def _loss(loss: keras.losses.Loss, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels 1..n -> channels 0..n-1; label 0 -> all zeros (as the generators encode them)."""
    return np.eye(n_classes + 1, dtype="float32")[labels][..., 1:]


def _reference(y_true: np.ndarray, y_pred: np.ndarray, weights: list[float]) -> float:
    """The original's formula (segmentation_models CategoricalCELoss) over the whole batch."""
    pr = y_pred / y_pred.sum(axis=-1, keepdims=True)
    pr = np.clip(pr, EPS, 1 - EPS)
    return float(-np.mean(y_true * np.log(pr) * np.asarray(weights)))


@pytest.mark.parametrize("name", ["klingenberg.toml", "demo.toml"])
def test_weights_of_the_paper(name: str) -> None:
    weights = class_weights(load_config(REPO_ROOT / "configs" / name))
    assert weights.dtype == np.float32 and weights.shape == (8,)
    np.testing.assert_allclose(weights, PAPER_WEIGHTS, atol=0.005)
    assert float(weights[:7].sum()) == pytest.approx(1000.0, rel=1e-6)


def test_weights_follow_class_ids_and_zero_the_unclassifiable_class() -> None:
    config = load_config(REPO_ROOT / "configs" / "klingenberg.toml")
    shuffled = dataclasses.replace(config, classes=tuple(reversed(config.classes)))
    np.testing.assert_array_equal(class_weights(shuffled), class_weights(config))
    counted = tuple(dataclasses.replace(c, pixel_count=c.pixel_count or 5) for c in config.classes)
    assert class_weights(dataclasses.replace(config, classes=counted))[config.unclassifiable_id - 1] == 0.0
    gap = tuple(dataclasses.replace(c, id=c.id + 1) for c in config.classes)
    with pytest.raises(ConfigError, match="classes"):
        class_weights(dataclasses.replace(config, classes=gap, unclassifiable_id=9))


def test_weights_from_counts() -> None:
    weights = class_weights_from_counts([100, None, 300])
    np.testing.assert_allclose(weights, [750.0, 0.0, 250.0], rtol=1e-6)
    assert weights.dtype == np.float32
    with pytest.raises(ValueError):
        class_weights_from_counts([None, None])
    with pytest.raises(ValueError):
        class_weights_from_counts([10, 0])


def test_hand_computation_on_a_tiny_case() -> None:
    # one sample, 2x2 pixels, 3 classes; the predictions of pixel (1, 1) do not sum to 1
    labels = np.array([[[1, 2], [3, 2]]])
    y_true = _one_hot(labels, 3)
    y_pred = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]],
                        [[0.2, 0.3, 0.5], [0.2, 0.2, 0.4]]]], dtype="float32")
    weights = [2.0, 1.0, 0.5]
    # -(1/(2*2*3)) * sum over pixels of w_true * log(p_true / sum p)
    expected = -(2.0 * np.log(0.7) + 1.0 * np.log(0.8) + 0.5 * np.log(0.5) + 1.0 * np.log(0.2 / 0.8)) / 12
    loss = _loss(WeightedCategoricalCrossentropy(weights), y_true, y_pred)
    assert loss == pytest.approx(expected, rel=1e-6)
    assert loss == pytest.approx(_reference(y_true, y_pred, weights), rel=1e-6)


def test_batch_mean_equals_the_original_formula() -> None:
    rng = np.random.default_rng(0)
    y_true = _one_hot(rng.integers(0, 9, size=(4, 8, 8)), 8)
    y_pred = rng.uniform(0.0, 1.0, size=(4, 8, 8, 8)).astype("float32")
    loss = _loss(WeightedCategoricalCrossentropy(PAPER_WEIGHTS), y_true, y_pred)
    assert loss == pytest.approx(_reference(y_true, y_pred, PAPER_WEIGHTS), rel=1e-5)
    per_sample = WeightedCategoricalCrossentropy(PAPER_WEIGHTS, reduction=None)(y_true, y_pred)
    assert keras.ops.convert_to_numpy(per_sample).shape == (4,)


@pytest.mark.parametrize("label", [0, 8])
def test_outside_and_unclassifiable_pixels_change_nothing(label: int) -> None:
    rng = np.random.default_rng(label)
    labels = rng.integers(1, 8, size=(2, 4, 4))
    labels[0, 1, 2] = label
    labels[1, 3, 0] = label
    y_true = _one_hot(labels, 8)
    y_pred = rng.uniform(0.01, 1.0, size=(2, 4, 4, 8)).astype("float32")
    loss = WeightedCategoricalCrossentropy(PAPER_WEIGHTS)
    base = _loss(loss, y_true, y_pred)
    predictions = [np.eye(8)[0], np.eye(8)[7], np.full(8, 1 / 8), np.zeros(8), np.array([1e-30] * 7 + [1.0])]
    for prediction in predictions:
        changed = y_pred.copy()
        changed[0, 1, 2] = prediction
        changed[1, 3, 0] = prediction
        assert _loss(loss, y_true, changed) == base


def test_wrong_number_of_classes_is_reported() -> None:
    loss = WeightedCategoricalCrossentropy([1.0, 1.0])
    with pytest.raises(ValueError, match="2 class weights"):
        loss(np.zeros((1, 2, 2, 3), "float32"), np.ones((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError):
        WeightedCategoricalCrossentropy([1.0, -1.0])


def test_config_round_trip() -> None:
    loss = WeightedCategoricalCrossentropy(np.asarray(PAPER_WEIGHTS, dtype=np.float32), name="wcce")
    config = loss.get_config()
    assert isinstance(config["class_weights"], list) and config["name"] == "wcce"
    again = WeightedCategoricalCrossentropy.from_config(config)
    assert again.class_weights == pytest.approx(PAPER_WEIGHTS, abs=1e-4)
    assert again.get_config() == config


def test_serialisation_through_the_registry() -> None:
    loss = WeightedCategoricalCrossentropy(PAPER_WEIGHTS)
    serialised = keras.saving.serialize_keras_object(loss)
    assert serialised["registered_name"] == "landcover>WeightedCategoricalCrossentropy"
    restored = keras.saving.deserialize_keras_object(serialised)
    assert isinstance(restored, WeightedCategoricalCrossentropy)
    assert restored.class_weights == PAPER_WEIGHTS
    rng = np.random.default_rng(1)
    y_true = _one_hot(rng.integers(0, 9, size=(2, 4, 4)), 8)
    y_pred = rng.uniform(0.01, 1.0, size=(2, 4, 4, 8)).astype("float32")
    assert _loss(restored, y_true, y_pred) == _loss(loss, y_true, y_pred)


# ---------------------------------------------------------------------- masked accuracy
def _masked(y_true: np.ndarray, y_pred: np.ndarray, ignored: list[int]) -> float:
    metric = MaskedAccuracy(ignored)
    metric.update_state(y_true, y_pred)
    return float(keras.ops.convert_to_numpy(metric.result()))


def test_masked_accuracy_by_hand() -> None:
    # 2x3 pixels, 3 classes, class 3 unclassifiable (channel 2); label 0 is outside the study area
    labels = np.array([[[1, 2, 0], [3, 2, 1]]])
    predicted = np.array([[[1, 1, 2], [3, 2, 2]]])  # class ids
    y_pred = np.eye(3, dtype="float32")[predicted - 1] * 0.8 + 0.05
    # counted: (0,0) 1->1 hit, (0,1) 2->1 miss, (1,1) 2->2 hit, (1,2) 1->2 miss; label 0 and class 3 left out
    assert _masked(_one_hot(labels, 3), y_pred, [2]) == pytest.approx(2 / 4)
    # Keras' categorical accuracy counts all 6: label 0 is argmax 0 (class 1), so (0,2) is a miss; (1,0) a hit
    categorical = keras.metrics.CategoricalAccuracy()
    categorical.update_state(_one_hot(labels, 3), y_pred)
    assert float(categorical.result()) == pytest.approx(3 / 6)


@pytest.mark.parametrize("label", [0, 8])
def test_outside_and_unclassifiable_pixels_change_nothing_in_the_masked_accuracy(label: int) -> None:
    rng = np.random.default_rng(label)
    labels = rng.integers(1, 8, size=(2, 4, 4))
    y_pred = rng.uniform(0.01, 1.0, size=(2, 4, 4, 8)).astype("float32")
    labels[0, 1, 2] = label
    labels[1, 3, 0] = label
    reference = _masked(_one_hot(labels, 8), y_pred, [7])
    for prediction in (np.eye(8)[0], np.eye(8)[7], np.full(8, 1 / 8)):
        changed = y_pred.copy()
        changed[0, 1, 2] = prediction
        changed[1, 3, 0] = prediction
        assert _masked(_one_hot(labels, 8), changed, [7]) == reference
    kept = np.ones((2, 4, 4), bool)
    kept[0, 1, 2] = kept[1, 3, 0] = False
    hits = (np.argmax(y_pred, -1) + 1 == labels) & kept
    assert reference == pytest.approx(hits.sum() / kept.sum())


def test_masked_accuracy_equals_categorical_accuracy_on_fully_labelled_data() -> None:
    rng = np.random.default_rng(3)
    metric, categorical = MaskedAccuracy([7]), keras.metrics.CategoricalAccuracy()
    for _ in range(3):  # several batches: pixels pooled over them
        y_true = _one_hot(rng.integers(1, 8, size=(4, 8, 8)), 8)
        y_pred = rng.uniform(0.0, 1.0, size=(4, 8, 8, 8)).astype("float32")
        metric.update_state(y_true, y_pred)
        categorical.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(float(categorical.result()), abs=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0, "no pixel counted yet"


def test_masked_accuracy_pools_pixels_over_batches() -> None:
    metric = MaskedAccuracy([7])
    first = _one_hot(np.array([[[1, 1], [0, 0]]]), 8)  # 2 counted, both hit
    second = _one_hot(np.array([[[2, 2], [2, 2]]]), 8)  # 4 counted, none hit
    prediction = np.broadcast_to(np.eye(8, dtype="float32")[0], (1, 2, 2, 8))
    metric.update_state(first, prediction)
    metric.update_state(second, prediction)
    assert float(metric.result()) == pytest.approx(2 / 6)


def test_a_model_saved_with_the_masked_accuracy_reloads_in_safe_mode(tmp_path) -> None:
    metric = MaskedAccuracy([7])
    assert keras.saving.serialize_keras_object(metric)["registered_name"] == "landcover>MaskedAccuracy"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, MaskedAccuracy) and restored.ignored_channels == [7]
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy(PAPER_WEIGHTS),
                  metrics=["categorical_accuracy", MaskedAccuracy([7])])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4, 4, 3)).astype("float32")
    y = _one_hot(rng.integers(0, 9, size=(6, 4, 4)), 8)
    model.train_on_batch(x, y)  # builds the optimiser, so that it is saved and restored too
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert again.evaluate(x, y, verbose=0, return_dict=True)["masked_accuracy"] == pytest.approx(
        scores["masked_accuracy"])
    hits = (np.argmax(model.predict(x, verbose=0), -1) + 1 == np.argmax(y, -1) + 1) & (y.max(-1) > 0) & (
        np.argmax(y, -1) != 7)
    counted = (y.max(-1) > 0) & (np.argmax(y, -1) != 7)
    assert scores["masked_accuracy"] == pytest.approx(hits.sum() / counted.sum(), abs=1e-6)
