"""Model builders: exact U-Net replica, FCN + ConvLSTM, rebuilding at other sizes, loading."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from sequence_models import sequence_model_at

from helpers.core.errors import InputError
from helpers.train import models
from helpers.train.losses import WeightedCategoricalCrossentropy

SMALL = 0.125
TILE = 32
STEPS = 6


def _count(weights: list) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def full_unet() -> keras.Model:
    """The full-size FCN of the paper (13 bands, 8 classes), built once."""
    return models.build_unet()


@pytest.fixture(scope="module")
def small_fcn() -> keras.Model:
    keras.utils.set_random_seed(3)
    return models.build_unet(width=SMALL, tile_size=TILE)


@pytest.fixture(scope="module")
def small_sequence(small_fcn: keras.Model) -> keras.Model:
    keras.utils.set_random_seed(4)
    return models.build_fcn_lstm(small_fcn, STEPS, TILE)


@pytest.fixture(scope="module")
def sequences() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, STEPS, TILE, TILE, 13)).astype("float32")


def _perturb_batchnorm(model: keras.Model, seed: int) -> None:
    """Give the BN moving statistics non-trivial values, so inference is not the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                gamma * rng.uniform(0.5, 1.5, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                mean + rng.normal(0, 0.1, mean.shape), var * rng.uniform(0.5, 2.0, var.shape),
            ])


def test_full_size_unet_parameter_count(full_unet: keras.Model) -> None:
    assert full_unet.count_params() == 29_068_744
    assert _count(full_unet.trainable_weights) == 29_064_712
    assert _count(full_unet.non_trainable_weights) == 4_032
    assert full_unet.inputs[0].shape == (None, None, None, 13)
    assert full_unet.outputs[0].shape == (None, None, None, 8)


def test_full_size_fcn_lstm_parameter_count(full_unet: keras.Model) -> None:
    sequence = models.build_fcn_lstm(full_unet, STEPS, TILE)
    assert sequence.count_params() == 29_078_024
    assert sequence.get_layer("bidirectional_convlstm").count_params() == 9_280
    assert _count(sequence.non_trainable_weights) == 4_032


def test_encoder_equals_keras_applications_vgg19(full_unet: keras.Model) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input channels.*", category=UserWarning)
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 13))
    reference = [layer for layer in vgg.layers if not isinstance(layer, keras.layers.InputLayer)]
    ours = [layer for layer in full_unet.layers if not isinstance(layer, keras.layers.InputLayer)][: len(reference)]
    assert [layer.name for layer in ours] == [layer.name for layer in reference]
    assert [type(layer) for layer in ours] == [type(layer) for layer in reference]
    for mine, theirs in zip(ours, reference, strict=True):
        assert [tuple(w.shape) for w in mine.weights] == [tuple(w.shape) for w in theirs.weights], mine.name
        assert mine.get_config().get("activation") == theirs.get_config().get("activation"), mine.name
        assert mine.get_config().get("padding") == theirs.get_config().get("padding"), mine.name
    assert _count(vgg.weights) == sum(layer.count_params() for layer in ours)


def test_decoder_structure_follows_segmentation_models(full_unet: keras.Model) -> None:
    names = [layer.name for layer in full_unet.layers]
    center = [f"center_block{i}_{part}" for i in (1, 2) for part in ("conv", "bn", "relu")]
    assert names[names.index("block5_pool") + 1 : names.index("block5_pool") + 7] == center
    skips = {0: "block5_conv4", 1: "block4_conv4", 2: "block3_conv4", 3: "block2_conv2"}
    for stage, filters in enumerate((256, 128, 64, 32, 16)):
        for half in "ab":
            conv = full_unet.get_layer(f"decoder_stage{stage}{half}_conv")
            assert conv.filters == filters and not conv.use_bias
            full_unet.get_layer(f"decoder_stage{stage}{half}_bn")
            full_unet.get_layer(f"decoder_stage{stage}{half}_relu")
        full_unet.get_layer(f"decoder_stage{stage}_upsampling")
        if stage in skips:
            concat = full_unet.get_layer(f"decoder_stage{stage}_concat")
            sources = [tensor._keras_history.operation.name for tensor in concat.input]
            assert sources == [f"decoder_stage{stage}_upsampling", skips[stage]]
        else:
            assert f"decoder_stage{stage}_concat" not in names
    final = full_unet.get_layer("final_conv")
    assert final.filters == 8 and final.use_bias and final.kernel_size == (3, 3)
    assert names[-2:] == ["final_conv", "softmax"]


def test_small_unet_gives_softmax_maps(small_fcn: keras.Model) -> None:
    x = np.random.default_rng(1).normal(size=(3, TILE, TILE, 13)).astype("float32")
    y = small_fcn.predict(x, verbose=0)
    assert y.shape == (3, TILE, TILE, 8)
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)
    assert small_fcn.get_layer("block1_conv1").filters == 8
    assert small_fcn.get_layer("decoder_stage4b_conv").filters == 2


def test_unet_without_tile_size_takes_any_multiple_of_32() -> None:
    fcn = models.build_unet(n_bands=4, n_classes=3, width=0.0625)
    assert fcn(np.zeros((1, 64, 96, 4), "float32")).shape == (1, 64, 96, 3)
    assert (models.model_bands(fcn), models.model_classes(fcn)) == (4, 3)
    assert not models.is_sequence_model(fcn)


@pytest.mark.parametrize("kwargs", [{"tile_size": 48}, {"tile_size": 16}, {"width": 0}, {"n_bands": 0}])
def test_build_unet_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        models.build_unet(**kwargs)


def test_sequence_model_output_shape(small_sequence: keras.Model, sequences: np.ndarray) -> None:
    y = small_sequence.predict(sequences, verbose=0)
    assert small_sequence.inputs[0].shape == (None, STEPS, TILE, TILE, 13)
    assert y.shape == (2, TILE, TILE, 8)
    assert np.isfinite(y).all() and (y >= 0).all()
    assert models.is_sequence_model(small_sequence)
    assert (models.model_bands(small_sequence), models.model_classes(small_sequence)) == (13, 8)


def test_sequence_model_head_is_the_original_convlstm(small_sequence: keras.Model) -> None:
    head = small_sequence.get_layer("bidirectional_convlstm")
    assert isinstance(head, keras.layers.Bidirectional) and head.merge_mode == "ave"
    for cell in (head.forward_layer, head.backward_layer):
        assert isinstance(cell, keras.layers.ConvLSTM2D)
        assert cell.filters == 8 and cell.kernel_size == (3, 3) and cell.padding == "same"
        assert not cell.return_sequences
        config = cell.get_config()
        assert config["activation"] == "softmax"
        assert keras.activations.get(config["recurrent_activation"]) is models.tf2_hard_sigmoid
    wrapper = small_sequence.get_layer("time_distributed_fcn")
    assert isinstance(wrapper, keras.layers.TimeDistributed)
    assert wrapper.layer.outputs[0] is wrapper.layer.get_layer("final_conv").output


def test_tf2_hard_sigmoid_is_the_keras2_definition() -> None:
    x = np.array([-10.0, -2.5, -1.0, 0.0, 1.0, 2.5, 10.0], "float32")
    expected = np.clip(0.2 * x + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(models.tf2_hard_sigmoid(x)), expected, rtol=1e-6)


def test_sequence_model_shares_the_fcn_weights(small_fcn: keras.Model, small_sequence: keras.Model) -> None:
    inner = small_sequence.get_layer("time_distributed_fcn").layer
    assert inner.get_layer("block1_conv1") is small_fcn.get_layer("block1_conv1")
    fcn_variables = {id(v) for v in small_fcn.weights}
    assert {id(v) for v in inner.weights} == fcn_variables
    assert fcn_variables <= {id(v) for v in small_sequence.weights}
    assert _count(small_sequence.trainable_weights) == _count(small_fcn.trainable_weights) + 9_280


def test_time_distributed_fcn_equals_the_fcn_per_date(small_fcn: keras.Model, small_sequence: keras.Model,
                                                      sequences: np.ndarray) -> None:
    logits = keras.Model(small_sequence.inputs, small_sequence.get_layer("time_distributed_fcn").output)
    per_sequence = logits.predict(sequences, verbose=0)
    cut = keras.Model(small_fcn.inputs, small_fcn.get_layer("final_conv").output)
    per_date = cut.predict(sequences.reshape(-1, TILE, TILE, 13), verbose=0).reshape(per_sequence.shape)
    np.testing.assert_allclose(per_sequence, per_date, rtol=1e-5, atol=1e-5)


def test_time_distributed_fcn_folds_dates_into_one_batch_in_training(small_sequence: keras.Model,
                                                                     sequences: np.ndarray) -> None:
    # as TF 2.2's TimeDistributed: batch normalisation sees all dates of all sequences at once
    wrapper = small_sequence.get_layer("time_distributed_fcn")
    folded = sequences.reshape(-1, TILE, TILE, 13)
    expected = keras.ops.convert_to_numpy(wrapper.layer(folded, training=True)).reshape(2, STEPS, TILE, TILE, 8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(wrapper(sequences, training=True)), expected,
                               rtol=1e-5, atol=1e-5)


def test_training_the_sequence_model_updates_the_fcn(sequences: np.ndarray) -> None:
    keras.utils.set_random_seed(5)
    fcn = models.build_unet(width=0.0625, tile_size=TILE)
    sequence = models.build_fcn_lstm(fcn, 2, TILE)
    before = fcn.get_layer("block1_conv1").get_weights()[0].copy()
    sequence.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy([1.0] * 8))
    labels = np.eye(8, dtype="float32")[np.random.default_rng(2).integers(0, 8, (2, TILE, TILE))]
    sequence.train_on_batch(sequences[:, :2], labels)
    assert not np.array_equal(before, fcn.get_layer("block1_conv1").get_weights()[0])


def test_build_fcn_lstm_rejects_a_fixed_fcn_of_another_size(small_fcn: keras.Model) -> None:
    with pytest.raises(ValueError, match="32x32"):
        models.build_fcn_lstm(small_fcn, STEPS, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        models.build_fcn_lstm(small_fcn, STEPS, 40)


def test_split_rejects_a_single_date_model(small_fcn: keras.Model) -> None:
    with pytest.raises(ValueError, match="not a sequence model"):
        models.split_sequence_model(small_fcn, TILE)


def test_split_parts_compose_to_the_model_at_another_size(small_sequence: keras.Model,
                                                          sequences: np.ndarray) -> None:
    _perturb_batchnorm(small_sequence.get_layer("time_distributed_fcn").layer, seed=3)
    big = np.tile(sequences, (1, 1, 2, 2, 1))  # (2, dates, 64, 64, 13)
    n, dates = big.shape[:2]
    logits, head_for = models.split_sequence_model(small_sequence, 64)
    per_date = logits.predict(big.reshape(n * dates, 64, 64, 13), verbose=0).reshape(n, dates, 64, 64, 8)
    whole = sequence_model_at(small_sequence, 64).predict(big, verbose=0)
    np.testing.assert_allclose(head_for(dates).predict(per_date, verbose=0), whole, atol=1e-6)
    shorter = sequence_model_at(small_sequence, 64, timesteps=2).predict(big[:, 1:3], verbose=0)
    np.testing.assert_allclose(head_for(2).predict(per_date[:, 1:3], verbose=0), shorter, atol=1e-6)
    assert head_for(2) is head_for(2) is head_for(2, 64)  # built once per sequence length
    for steps, scores in ((dates, per_date), (2, per_date[:, 1:3])):
        on_window = head_for(steps).predict(scores, verbose=0)
        for y, x in ((0, 0), (12, 12), (24, 24), (0, 24)):  # corners of the window, and inside it
            crop = head_for(steps, 40).predict(scores[:, :, y: y + 40, x: x + 40], verbose=0)
            # valid: all but ``steps`` px on each side inside the window (the window's edge pads alike)
            top, left = (0 if y == 0 else steps), (0 if x == 0 else steps)
            bottom, right = (40 if y == 24 else 40 - steps), (40 if x == 24 else 40 - steps)
            np.testing.assert_allclose(crop[:, top:bottom, left:right],
                                       on_window[:, y + top: y + bottom, x + left: x + right], atol=1e-6)
            if y > 0:  # just inside the margin, the crop's own padding shows: the comparison is a real one
                assert not np.allclose(crop[:, steps - 1], on_window[:, y + steps - 1, x: x + 40], atol=1e-6)
    assert head_for(2, 40) is head_for(2, 40) and head_for(2, 40).inputs[0].shape == (None, 2, 40, 40, 8)
    with pytest.raises(ValueError, match="at least 1 px"):
        head_for(2, 0)


def test_saved_model_reloads_with_its_loss(small_fcn: keras.Model, small_sequence: keras.Model,
                                           sequences: np.ndarray, tmp_path: Path) -> None:
    weights = [377.75, 8.6, 5.78, 55.36, 6.99, 425.55, 119.96, 0.0]
    for model, x in ((small_fcn, sequences[:, 0]), (small_sequence, sequences)):
        model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy(weights))
        model.optimizer.build(model.trainable_variables)  # as after training: its state is saved too
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = models.load_model(path)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        assert isinstance(loaded.loss, WeightedCategoricalCrossentropy)
        assert loaded.loss.class_weights == pytest.approx(weights)
        assert loaded.count_params() == model.count_params()
    rebuilt = sequence_model_at(loaded, 64)
    assert rebuilt.predict(np.tile(sequences, (1, 1, 2, 2, 1)), verbose=0).shape == (2, 64, 64, 8)


def test_load_model_reports_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "baseline_cnn_01.keras"
    with pytest.raises(InputError) as info:
        models.load_model(path)
    assert str(path) in str(info.value) and "not found" in str(info.value)
    assert "\n" not in str(info.value)


def test_load_model_reports_a_junk_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.keras"
    path.write_bytes(b"this is not a zip archive\n" * 10)
    with pytest.raises(InputError) as info:
        models.load_model(path)
    assert str(info.value).startswith(f"{path}: not a readable Keras model")
    assert "\n" not in str(info.value)


def test_load_model_refuses_unsafe_code(tmp_path: Path) -> None:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(InputError, match="lambda") as info:
        models.load_model(path)
    assert str(info.value).startswith(f"{path}: not a readable Keras model")


def test_load_model_reports_an_archive_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no model here")
    with pytest.raises(InputError) as info:
        models.load_model(path)
    assert str(info.value).startswith(f"{path}: not a readable Keras model")
