"""Any Keras 3 backend: a tiny run trained and classifying under JAX, models moved between backends.

Keras fixes its backend when it is imported, so the JAX side runs in a fresh interpreter with
``KERAS_BACKEND=jax`` (the ``under_jax`` fixture); this process stays on TensorFlow. Each
side writes what it predicted to ``.npy`` files and the other compares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
from scene_stacks import IDENTITY, SHAPE, collect_blocks, make_stacks, write_cloud_mask
from training_helpers import TINY, assert_one_line_error

from helpers.core.config import Config
from helpers.core.paths import REPO_ROOT
from helpers.predict.keras_windows import keras_window_model
from helpers.predict.sliding_windows import predict_scene
from helpers.train import models

RunUnderJax = Callable[[str], subprocess.CompletedProcess[str]]
TILE = 32

_PRELUDE = """
import sys
sys.path[:0] = [{src!r}, {tests!r}]
import numpy as np
"""

_SCENE_PASS = """
from helpers.predict.keras_windows import keras_window_model
from helpers.predict.sliding_windows import predict_scene
from helpers.train.normalisation import Normaliser
from scene_stacks import collect_blocks


def scene_pass(model, stacks, window, margin, masks=None):
    normaliser = Normaliser.from_values([0.0] * 13, [1.0] * 13)
    blocks = predict_scene([keras_window_model(model, window, normaliser)], stacks, [list(range(len(stacks)))], 13,
                           int(model.outputs[0].shape[-1]), window, margin, cloud_masks=masks)
    return collect_blocks(blocks)[0]
"""


@pytest.fixture(scope="module")
def under_jax() -> RunUnderJax:
    """Run Python code in a fresh interpreter with ``KERAS_BACKEND=jax`` (skipped where JAX is not installed)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (requirements.txt installs it)")

    def run(code: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        script = _PRELUDE.format(src=str(REPO_ROOT / "src"), tests=str(REPO_ROOT / "tests")) + code
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    return run


def _scene_pass(model: keras.Model, stacks: list[Path], window: int, margin: int,
                masks: list[Path] | None = None) -> np.ndarray:
    blocks = predict_scene([keras_window_model(model, window, IDENTITY)], stacks, [list(range(len(stacks)))], 13,
                           models.model_classes(model), window, margin, cloud_masks=masks)
    return collect_blocks(blocks)[0]


def test_jax_trains_a_tiny_fcn_and_classifies_a_scene_as_tensorflow_does(area: Config, tmp_path: Path,
                                                                          under_jax: RunUnderJax) -> None:
    stacks, _, _ = make_stacks(tmp_path / "stacks", dates=2)
    code = _SCENE_PASS + f"""
import keras
from models import baseline_cnn
from helpers.train.models import load_model
summary = baseline_cnn.train(["--config", {str(area.source)!r}, *{TINY!r}, "--epochs", "1"], say=print)
assert keras.backend.backend() == "jax" and summary["backend"] == "jax", summary
model = load_model({str(area.models_root / "baseline_cnn_01.keras")!r})
np.save({str(tmp_path / "jax_faithful.npy")!r}, scene_pass(model, {[str(s) for s in stacks]!r}, 32, 8))
np.save({str(tmp_path / "jax_fast.npy")!r}, scene_pass(model, {[str(s) for s in stacks]!r}, 64, 16))
"""
    result = under_jax(code)
    assert "1 replica(s)" in result.stdout and "XLA" in result.stdout
    flags = json.loads((area.models_root / "baseline_cnn_01_flags.json").read_text(encoding="utf-8"))
    assert flags["settings"]["precision"] == "float32" and flags["settings"]["input_workers"] == 2
    model = models.load_model(area.models_root / "baseline_cnn_01.keras")  # saved under JAX, loaded here
    for name, (window, margin) in (("faithful", (32, 8)), ("fast", (64, 16))):
        ours, theirs = _scene_pass(model, stacks, window, margin), np.load(tmp_path / f"jax_{name}.npy")
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)
        inside = ours.sum(axis=1) > 0
        assert (ours.argmax(axis=1) == theirs.argmax(axis=1))[inside].mean() > 0.999, name


def test_models_saved_under_tensorflow_predict_the_same_under_jax_and_back(tmp_path: Path,
                                                                           under_jax: RunUnderJax) -> None:
    keras.utils.set_random_seed(7)
    fcn = models.build_unet(n_bands=13, n_classes=5, width=0.0625)
    sequence = models.build_fcn_lstm(fcn, timesteps=3, tile_size=TILE)
    x = np.random.default_rng(2).normal(size=(2, 3, TILE, TILE, 13)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    fcn.save(tmp_path / "tf_fcn.keras")
    sequence.save(tmp_path / "tf_sequence.keras")
    code = f"""
import keras
from helpers.train import models
folder = {str(tmp_path)!r}
x = np.load(folder + "/x.npy")
for name in ("fcn", "sequence"):
    model = models.load_model(folder + f"/tf_{{name}}.keras")
    np.save(folder + f"/jax_of_tf_{{name}}.npy", np.asarray(model.predict_on_batch(x[:, 0] if name == "fcn" else x)))
keras.utils.set_random_seed(8)
fcn = models.build_unet(n_bands=13, n_classes=5, width=0.0625)
sequence = models.build_fcn_lstm(fcn, timesteps=3, tile_size={TILE})
for name, model in (("fcn", fcn), ("sequence", sequence)):
    model.save(folder + f"/jax_{{name}}.keras")
    np.save(folder + f"/jax_{{name}}.npy", np.asarray(model.predict_on_batch(x[:, 0] if name == "fcn" else x)))
"""
    under_jax(code)
    for name, model in (("fcn", fcn), ("sequence", sequence)):
        inputs = x[:, 0] if name == "fcn" else x
        np.testing.assert_allclose(np.load(tmp_path / f"jax_of_tf_{name}.npy"), model.predict_on_batch(inputs),
                                   atol=1e-5, err_msg=f"{name} saved under TensorFlow, predicted under JAX")
        saved_under_jax = models.load_model(tmp_path / f"jax_{name}.keras")
        np.testing.assert_allclose(saved_under_jax.predict_on_batch(inputs), np.load(tmp_path / f"jax_{name}.npy"),
                                   atol=1e-5, err_msg=f"{name} saved under JAX, predicted under TensorFlow")


def test_tf_distribute_strategies_are_refused_under_jax(area: Config, under_jax: RunUnderJax) -> None:
    del under_jax  # only its skip where JAX is missing
    script = REPO_ROOT / "src" / "models" / "baseline_cnn.py"
    result = subprocess.run([sys.executable, str(script), "--config", str(area.source), *TINY, "--strategy",
                             "mirrored"], capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"},
                            timeout=600)
    assert_one_line_error(result, "--strategy mirrored", "KERAS_BACKEND=tensorflow")


def test_a_sequence_model_with_cloud_masks_classifies_under_jax_as_under_tensorflow(tmp_path: Path,
                                                                                  under_jax: RunUnderJax) -> None:
    keras.utils.set_random_seed(9)
    sequence = models.build_fcn_lstm(models.build_unet(n_bands=13, n_classes=5, width=0.0625), timesteps=3,
                                     tile_size=TILE)
    sequence.save(tmp_path / "sequence.keras")
    stacks, _, _ = make_stacks(tmp_path / "stacks", dates=3)
    masks = []
    for date in range(3):  # a cloud and its shadow on two of the dates
        mask = np.zeros(SHAPE, dtype=np.uint8)
        mask[10 + 30 * date: 30 + 30 * date, 20: 50] = 1 if date else 0
        mask[30 + 30 * date: 36 + 30 * date, 20: 50] = 2 if date else 0
        masks.append(write_cloud_mask(tmp_path / f"mask_{date}.tif", mask))
    code = _SCENE_PASS + f"""
from helpers.train.models import load_model
model = load_model({str(tmp_path / "sequence.keras")!r})
np.save({str(tmp_path / "jax.npy")!r}, scene_pass(model, {[str(s) for s in stacks]!r}, 64, 16,
                                                  {[str(m) for m in masks]!r}))
"""
    under_jax(code)
    ours = _scene_pass(sequence, stacks, 64, 16, masks)
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), ours, atol=1e-5)
    assert not np.allclose(ours, _scene_pass(sequence, stacks, 64, 16))  # the masks changed the maps
