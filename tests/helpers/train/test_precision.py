"""Mixed precision: 16-bit layers, float32 outputs, and saved models rebuilt in the policy in force."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers.train import models

TILE = 32


@pytest.fixture
def policy() -> Iterator[None]:
    """Restore the global float32 policy after the test, whatever it set."""
    yield
    models.set_precision("float32")


def _small_pair() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(5)
    fcn = models.build_unet(n_bands=4, n_classes=3, width=0.0625, tile_size=TILE)
    return fcn, models.build_fcn_lstm(fcn, timesteps=2, tile_size=TILE)


def test_mixed_policy_keeps_the_outputs_float32(policy: None) -> None:
    models.set_precision("mixed_bfloat16")
    fcn, sequence = _small_pair()
    assert fcn.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert fcn.get_layer("block1_conv1").variable_dtype == "float32"
    assert fcn.get_layer(models.SOFTMAX_LAYER).compute_dtype == "float32"
    assert sequence.get_layer(models.LSTM_LAYER).compute_dtype == "float32"
    x = np.random.default_rng(0).normal(size=(2, 2, TILE, TILE, 4)).astype(np.float32)
    assert np.asarray(fcn(x[:, 0])).dtype == np.float32
    assert np.asarray(sequence(x)).dtype == np.float32


def test_loaded_models_take_the_policy_in_force(tmp_path: Path, policy: None) -> None:
    fcn, sequence = _small_pair()
    x = np.random.default_rng(1).normal(size=(2, 2, TILE, TILE, 4)).astype(np.float32)
    reference = {"fcn": np.asarray(fcn(x[:, 0])), "sequence": np.asarray(sequence(x))}
    for name, model in (("fcn", fcn), ("sequence", sequence)):
        model.save(tmp_path / f"{name}.keras")
    models.set_precision("mixed_bfloat16")
    loaded = {name: models.load_model(tmp_path / f"{name}.keras") for name in reference}
    assert loaded["fcn"].get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert loaded["fcn"].get_layer(models.SOFTMAX_LAYER).compute_dtype == "float32"
    inner = loaded["sequence"].get_layer(models.FCN_LAYER).layer
    assert inner.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert loaded["sequence"].get_layer(models.LSTM_LAYER).compute_dtype == "float32"
    mixed = {"fcn": np.asarray(loaded["fcn"](x[:, 0])), "sequence": np.asarray(loaded["sequence"](x))}
    for name, probabilities in mixed.items():
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities, reference[name], atol=0.05, err_msg=name)  # bfloat16: ~3 digits
    loaded["fcn"].save(tmp_path / "mixed.keras")
    models.set_precision("float32")
    again = models.load_model(tmp_path / "mixed.keras")
    assert again.get_layer("block1_conv1").compute_dtype == "float32"
    np.testing.assert_allclose(np.asarray(again(x[:, 0])), reference["fcn"], atol=1e-6)


def test_a_model_of_the_policy_in_force_is_not_rebuilt() -> None:
    fcn, _ = _small_pair()
    assert models.with_precision(fcn) is fcn
