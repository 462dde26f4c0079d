"""Model builders: the U-Net FCN with a VGG19 encoder and the FCN + bidirectional ConvLSTM.

The U-Net reproduces ``segmentation_models.Unet('vgg19', encoder_weights=None,
input_shape=(None, None, 13), classes=8)`` of segmentation-models 1.0.1, the model of the
original study, layer for layer (names, order, filters, bias/no-bias, initialisers): for
13 bands and 8 classes it has 29,068,744 parameters. It is written with plain Keras 3
layers, so there is no dependency on the unmaintained ``segmentation_models`` package.

The sequence model applies the FCN (without its softmax) to every date of a sequence and
feeds the per-date class scores to a bidirectional ConvLSTM, as the original
``lstm_fixed_seq.py`` / ``lstm_random_seq.py`` did. Keras 3's ConvLSTM2D needs a fixed
spatial size, so :func:`split_sequence_model` builds its two parts (per-date logits, per-sequence
head) at another window size with the same weights (classification uses large windows), and
the head also at the size of the patches that classification with cloud masks uses.

Precision: the layers follow Keras' global dtype policy (``float32``, the paper's, or a mixed
policy set by :func:`set_precision`), except the final softmax and the ConvLSTM head, which
stay float32 so that the probabilities (and the loss computed from them) keep float32's range
and resolution. :func:`load_model` gives a saved model the policy in force, whatever the
policy it was trained with.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from keras import ops

import helpers.train.losses  # noqa: F401  (registers the loss so that saved models load in safe mode)
from helpers.core.errors import InputError

VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
"""(filters, convolutions) of the five VGG19 blocks, each followed by a 2x2 max-pooling."""

SKIP_LAYERS: tuple[str, ...] = ("block5_conv4", "block4_conv4", "block3_conv4", "block2_conv2")
"""Encoder layers whose outputs feed decoder stages 0..3 (stage 4 has no skip)."""

CENTER_FILTERS = 512
DECODER_FILTERS: tuple[int, ...] = (256, 128, 64, 32, 16)
DOWNSAMPLING = 2 ** len(VGG19_BLOCKS)
"""Input sizes of the U-Net must be multiples of this (32)."""

FCN_LAYER = "time_distributed_fcn"
LSTM_LAYER = "bidirectional_convlstm"
LOGITS_LAYER = "final_conv"
SOFTMAX_LAYER = "softmax"
FLOAT32_LAYERS: frozenset[str] = frozenset({SOFTMAX_LAYER, LSTM_LAYER})
"""Layers computed in float32 whatever the policy: the outputs (probabilities) of both models."""


@keras.saving.register_keras_serializable(package="landcover")
def tf2_hard_sigmoid(x: keras.KerasTensor) -> keras.KerasTensor:
    """The hard sigmoid of TensorFlow 2.2 / Keras 2: ``clip(0.2 * x + 0.5, 0, 1)``.

    It was the default recurrent activation of ``ConvLSTM2D`` when the original models
    were trained. Keras 3 renamed the default to ``sigmoid`` and redefined
    ``"hard_sigmoid"`` as ``clip(x / 6 + 0.5, 0, 1)``, so the old function is kept here.

    Args:
        x: Input tensor.

    Returns:
        The activation, same shape and dtype as ``x``.
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="landcover")
class FoldedTimeDistributed(keras.layers.TimeDistributed):
    """``TimeDistributed`` that folds the time axis into the batch axis.

    The wrapped layer sees one batch of ``batch * timesteps`` samples, as with
    ``tf.keras.layers.TimeDistributed`` of TensorFlow 2.2 when the batch size is not fixed
    (the original's case). Keras 3's ``TimeDistributed`` instead calls the layer once per
    time step, which gives batch normalisation per-date batch statistics and updates its
    moving averages once per date; folding keeps the original's behaviour and runs the
    FCN as one large batch.
    """

    def call(self, inputs: keras.KerasTensor, training: bool | None = None, mask: None = None) -> keras.KerasTensor:
        """Apply the wrapped layer to every time step at once.

        Args:
            inputs: Tensor of shape ``(batch, timesteps, ...)``.
            training: Training mode, passed to the wrapped layer.
            mask: Not supported (must be None).

        Returns:
            Tensor of shape ``(batch, timesteps, ...)`` with the layer's per-sample output.
        """
        if mask is not None:
            raise ValueError(f"{type(self).__name__} does not support masks")
        dynamic = ops.shape(inputs)
        timesteps = inputs.shape[1] if inputs.shape[1] is not None else dynamic[1]
        inner = [s if s is not None else dynamic[2 + i] for i, s in enumerate(inputs.shape[2:])]
        folded = ops.reshape(inputs, (-1, *inner))
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        if isinstance(self.layer, keras.Model) and isinstance(self.layer.input, list | tuple):
            folded = [folded]  # a model whose single input was declared as a list
        outputs = self.layer(folded, **kwargs)
        out_dynamic = ops.shape(outputs)
        out_inner = [s if s is not None else out_dynamic[1 + i] for i, s in enumerate(outputs.shape[1:])]
        return ops.reshape(outputs, (-1, timesteps, *out_inner))


def scaled(filters: int, width: float) -> int:
    """Filter count of a layer in a model of relative ``width`` (rounded, at least 1).

    Args:
        filters: Filter count at width 1.
        width: Width multiplier.

    Returns:
        ``max(1, round(filters * width))``.
    """
    return max(1, round(filters * width))


def _conv_bn_relu(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Conv3x3 (no bias, He-uniform) + batch normalisation + ReLU, named like segmentation_models."""
    x = keras.layers.Conv2D(
        filters, (3, 3), padding="same", use_bias=False, kernel_initializer="he_uniform", name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def build_vgg19_encoder(inputs: keras.KerasTensor, width: float = 1.0) -> dict[str, keras.KerasTensor]:
    """VGG19 convolutional base with the layer names of ``keras.applications.VGG19``.

    Args:
        inputs: Image tensor ``(batch, height, width, bands)``.
        width: Width multiplier of every filter count.

    Returns:
        Output tensor of every layer by name (``block1_conv1`` ... ``block5_pool``).
    """
    outputs: dict[str, keras.KerasTensor] = {}
    x = inputs
    for block, (filters, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, n_convs + 1):
            name = f"block{block}_conv{conv}"
            x = keras.layers.Conv2D(scaled(filters, width), (3, 3), activation="relu", padding="same", name=name)(x)
            outputs[name] = x
        name = f"block{block}_pool"
        x = keras.layers.MaxPooling2D((2, 2), strides=(2, 2), name=name)(x)
        outputs[name] = x
    return outputs


def build_unet(n_bands: int = 13, n_classes: int = 8, width: float = 1.0, tile_size: int | None = None) -> keras.Model:
    """U-Net with a VGG19 encoder, the FCN of the original study.

    Same architecture as ``segmentation_models.Unet('vgg19', encoder_weights=None,
    classes=n_classes)`` (decoder of upsampling blocks with filters 256/128/64/32/16, batch
    normalisation, 4 skip connections, a centre block after the last pooling).

    Args:
        n_bands: Number of input bands (13 for Level-1C).
        n_classes: Number of output classes (channel ``c - 1`` is class ``c``).
        width: Multiplier of every filter count (1 = the original; e.g. 0.125 for fast
            tests and the demo).
        tile_size: Side of the square input in pixels, a multiple of 32; None accepts any
            size divisible by 32.

    Returns:
        Uncompiled model ``(batch, tile, tile, n_bands) -> (batch, tile, tile, n_classes)``
        ending in a softmax layer named ``softmax``; the logits are the output of
        ``final_conv``.

    Raises:
        ValueError: On a non-positive argument or a tile size that is not a multiple of 32.
    """
    if n_bands < 1 or n_classes < 1:
        raise ValueError(f"n_bands and n_classes must be positive, got {n_bands} and {n_classes}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if tile_size is not None and (tile_size < DOWNSAMPLING or tile_size % DOWNSAMPLING):
        raise ValueError(f"tile_size must be a positive multiple of {DOWNSAMPLING}, got {tile_size}")

    inputs = keras.Input(shape=(tile_size, tile_size, n_bands), name="input")
    encoder = build_vgg19_encoder(inputs, width)
    x = encoder[f"block{len(VGG19_BLOCKS)}_pool"]
    x = _conv_bn_relu(x, scaled(CENTER_FILTERS, width), "center_block1")
    x = _conv_bn_relu(x, scaled(CENTER_FILTERS, width), "center_block2")
    for stage, filters in enumerate(DECODER_FILTERS):
        x = keras.layers.UpSampling2D(size=(2, 2), name=f"decoder_stage{stage}_upsampling")(x)
        if stage < len(SKIP_LAYERS):
            skip = encoder[SKIP_LAYERS[stage]]
            x = keras.layers.Concatenate(axis=-1, name=f"decoder_stage{stage}_concat")([x, skip])
        x = _conv_bn_relu(x, scaled(filters, width), f"decoder_stage{stage}a")
        x = _conv_bn_relu(x, scaled(filters, width), f"decoder_stage{stage}b")
    x = keras.layers.Conv2D(
        n_classes, (3, 3), padding="same", use_bias=True, kernel_initializer="glorot_uniform", name=LOGITS_LAYER
    )(x)
    outputs = keras.layers.Activation("softmax", name=SOFTMAX_LAYER, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="u-vgg19")


def _logits_model(fcn: keras.Model) -> keras.Model:
    """The FCN cut before its softmax (sharing its layers), or the FCN itself if already cut."""
    try:
        logits = fcn.get_layer(LOGITS_LAYER).output
    except ValueError:
        raise ValueError(f"model '{fcn.name}' has no layer '{LOGITS_LAYER}'; build it with build_unet") from None
    if fcn.outputs[0] is logits:
        return fcn
    return keras.Model(fcn.input, logits, name=f"{fcn.name}_logits")


def _convlstm(n_classes: int) -> keras.layers.Bidirectional:
    """The original's bidirectional ConvLSTM head (TF 2.2 defaults made explicit)."""
    cell = keras.layers.ConvLSTM2D(
        n_classes,
        (3, 3),
        padding="same",
        activation="softmax",
        recurrent_activation=tf2_hard_sigmoid,
        return_sequences=False,
        dtype="float32",
    )
    return keras.layers.Bidirectional(cell, merge_mode="ave", name=LSTM_LAYER, dtype="float32")


def _assemble(
    logits: keras.Model, head: keras.layers.Bidirectional, timesteps: int, tile_size: int, name: str
) -> keras.Model:
    """Sequence input -> per-date FCN logits -> bidirectional ConvLSTM."""
    n_bands = model_bands(logits)
    inputs = keras.Input(shape=(timesteps, tile_size, tile_size, n_bands), name="sequence_input")
    x = FoldedTimeDistributed(logits, name=FCN_LAYER)(inputs)
    return keras.Model(inputs, head(x), name=name)


def _check_sequence_size(timesteps: int, tile_size: int) -> None:
    if timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, got {timesteps}")
    if tile_size < DOWNSAMPLING or tile_size % DOWNSAMPLING:
        raise ValueError(f"tile_size must be a positive multiple of {DOWNSAMPLING}, got {tile_size}")


def build_fcn_lstm(fcn: keras.Model, timesteps: int, tile_size: int) -> keras.Model:
    """FCN + bidirectional ConvLSTM of the original study.

    The FCN without its softmax (the logits of ``final_conv``) is applied to every date
    (layer ``time_distributed_fcn``); the per-date class scores go through
    ``Bidirectional(ConvLSTM2D(n_classes, 3x3, padding='same', activation='softmax',
    recurrent_activation=hard_sigmoid of TF 2.2), merge_mode='ave')`` (layer
    ``bidirectional_convlstm``), which returns the last state only.

    Args:
        fcn: A model from :func:`build_unet` (trained or not). Its layers are shared, not
            copied, and stay trainable: training the sequence model fine-tunes them.
        timesteps: Number of dates per sequence.
        tile_size: Side of the square input in pixels (a multiple of 32); fixed because
            Keras 3's ConvLSTM2D needs a static spatial size.

    Returns:
        Uncompiled model ``(batch, timesteps, tile, tile, bands) -> (batch, tile, tile,
        n_classes)``. Its outputs are non-negative but do not sum exactly to 1 (the loss
        renormalises them, as the original's did).

    Raises:
        ValueError: If ``fcn`` has no ``final_conv`` layer, its fixed input size differs from
            ``tile_size``, or the sizes are invalid.
    """
    _check_sequence_size(timesteps, tile_size)
    logits = _logits_model(fcn)
    fixed = tuple(logits.inputs[0].shape[1:3])
    if fixed != (None, None) and fixed != (tile_size, tile_size):
        raise ValueError(f"the FCN takes {fixed[0]}x{fixed[1]} inputs, not {tile_size}x{tile_size}")
    return _assemble(logits, _convlstm(model_classes(logits)), timesteps, tile_size, "fcn_lstm")


def _sequence_layers(model: keras.Model) -> tuple[keras.Model, keras.layers.Bidirectional]:
    """The per-date FCN and the ConvLSTM head of a model from :func:`build_fcn_lstm`."""
    if not is_sequence_model(model):
        raise ValueError(f"model '{model.name}' is not a sequence model (its input is not 5-D)")
    try:
        return model.get_layer(FCN_LAYER).layer, model.get_layer(LSTM_LAYER)
    except ValueError:
        raise ValueError(f"model '{model.name}' has no '{FCN_LAYER}' and '{LSTM_LAYER}' layers") from None


def _copy_fcn(fcn: keras.Model, tile_size: int) -> keras.Model:
    """A copy of an FCN (with its weights) that takes ``tile_size`` x ``tile_size`` inputs."""
    new_input = keras.Input(shape=(tile_size, tile_size, model_bands(fcn)), name=fcn.inputs[0].name)
    structure = [new_input] if isinstance(fcn.input, list | tuple) else new_input
    copy = keras.models.clone_model(fcn, input_tensors=structure)
    copy.set_weights(fcn.get_weights())
    return copy


def _unbuilt_head(head: keras.layers.Bidirectional) -> keras.layers.Bidirectional:
    """A new ConvLSTM head with the configuration of ``head`` (built later, at any size)."""
    config = head.get_config()
    for key in ("layer", "backward_layer"):  # drop the recorded input shape: build at the new size
        if isinstance(config.get(key), dict):
            config[key].pop("build_config", None)
    return keras.layers.Bidirectional.from_config(config)


def split_sequence_model(
    model: keras.Model, tile_size: int
) -> tuple[keras.Model, Callable[[int, int | None], keras.Model]]:
    """A sequence model's two parts at another window size: per date, and per sequence.

    Used to classify several date combinations that share dates: each date's FCN logits are
    computed once and fed to the head of every combination that contains the date. The
    composition ``head(t)(stack of logits(x_i))`` equals the model on ``(x_1 .. x_t)``.

    The head also comes at other sizes, for square patches of a window: with cloud masks a
    pattern of clear dates that fills a small part of a window runs on patches around its
    pixels only (:func:`helpers.predict.clear_dates.combine_clear`). Keras' ConvLSTM2D needs a
    static spatial size, so each size is a model of its own (built and traced once), which is
    why the patches have one fixed size. The head has no downsampling: any size works.

    Args:
        model: A model from :func:`build_fcn_lstm` (or loaded from one).
        tile_size: Side of the square input window (a multiple of 32).

    Returns:
        ``(logits, head_for)``: the FCN cut before its softmax, ``(n, tile, tile, bands) ->
        (n, tile, tile, classes)``, and a function ``head_for(t, size=None)`` giving, for ``t``
        dates, the ConvLSTM head ``(n, t, size, size, classes) -> (n, size, size, classes)``
        (``size`` None: ``tile_size``), built once per ``(t, size)``. All weights are copies,
        the same in every head.

    Raises:
        ValueError: If ``model`` is not such a sequence model or the size is invalid (and, from
            ``head_for``, for fewer than 1 date or a size below 1).
    """
    old_fcn, head = _sequence_layers(model)
    _check_sequence_size(1, tile_size)
    logits = _logits_model(_copy_fcn(old_fcn, tile_size))
    heads: dict[tuple[int, int], keras.Model] = {}

    def head_for(timesteps: int, size: int | None = None) -> keras.Model:
        side = tile_size if size is None else size
        if (timesteps, side) not in heads:
            _check_sequence_size(timesteps, tile_size)
            if side < 1:
                raise ValueError(f"the head's input size must be at least 1 px, got {side}")
            new_head = _unbuilt_head(head)
            inputs = keras.Input(shape=(timesteps, side, side, model_classes(logits)), name="date_scores")
            name = f"{model.name}_head_{timesteps}" + ("" if side == tile_size else f"_{side}px")
            heads[timesteps, side] = keras.Model(inputs, new_head(inputs), name=name)
            new_head.set_weights(head.get_weights())
        return heads[timesteps, side]

    return logits, head_for


def is_sequence_model(model: keras.Model) -> bool:
    """True for a model taking sequences ``(batch, time, height, width, bands)``."""
    return len(model.inputs[0].shape) == 5


def model_bands(model: keras.Model) -> int:
    """Number of input bands of a model (its last input axis)."""
    return int(model.inputs[0].shape[-1])


def model_classes(model: keras.Model) -> int:
    """Number of output classes of a model (its last output axis)."""
    return int(model.outputs[0].shape[-1])


def load_model(path: str | Path) -> keras.Model:
    """Load a saved model in Keras safe mode (nothing is unpickled).

    The project's loss and layers are registered on import of this module, so no
    ``custom_objects`` are needed.

    Args:
        path: A ``.keras`` file.

    Returns:
        The model, compiled if it was saved compiled.

    Raises:
        InputError: If the file is missing or is not a readable Keras model (one line,
            naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a readable Keras model (not a .keras zip archive)")
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        raise InputError(f"{path}: not a readable Keras model ({reason})") from None
    return with_precision(model)


# ---------------------------------------------------------------------- precision
def set_precision(name: str) -> None:
    """Keras' global dtype policy for the models built or loaded from now on.

    Args:
        name: ``float32``, ``mixed_bfloat16`` or ``mixed_float16`` (float16 or bfloat16
            arithmetic, float32 weights; Keras scales the loss of ``mixed_float16`` itself).
    """
    keras.config.set_dtype_policy(name)


def _policies_set(node: Any, name: str) -> bool:
    """Set every dtype policy in a serialised model to ``name``, except in :data:`FLOAT32_LAYERS`; any changed."""
    if isinstance(node, dict):
        inner = node.get("config")
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(inner, dict):
            changed = inner.get("name") != name
            inner["name"] = name
            return changed
        if isinstance(inner, dict) and inner.get("name") in FLOAT32_LAYERS:
            return False
        node = list(node.values())
    if not isinstance(node, list):
        return False
    changed = False
    for item in node:  # every item, not only up to the first change
        changed = _policies_set(item, name) or changed
    return changed


def with_precision(model: keras.Model, name: str | None = None) -> keras.Model:
    """The model with another dtype policy (default: the global one), the same weights.

    Keras stores each layer's policy in the saved model, so a model trained in float32 would
    stay float32 under a mixed global policy (and a mixed one mixed under float32): the model
    is rebuilt from its configuration with the policy and given the weights (float32 in every
    policy). The final softmax and the ConvLSTM head stay float32.

    Args:
        model: A model from this module (built or loaded).
        name: The policy; None means Keras' global one.

    Returns:
        ``model`` itself if it already has the policy, else the rebuilt model (not compiled).
    """
    name = name or keras.config.dtype_policy().name
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    if not _policies_set(config, name):
        return model
    rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
