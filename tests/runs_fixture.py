"""Stand-in models saved as proper runs: the Keras file with its run record embedded, as training saves it.

Every test that needs a saved model goes through :func:`save_run`, which uses the production
writers (:func:`helpers.train.run_record.make_record` and :func:`helpers.train.run_record.embed_record`),
so the prediction scripts read it with the same :func:`helpers.train.run_record.load_run` as a real
run. :func:`save_old_run` writes a run of before the records (side files only).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers.core.config import Config
from helpers.train.normalisation import Normaliser
from helpers.train.run_record import RunRecord, embed_record, make_record


def tiny_fcn(n_bands: int = 13, n_classes: int = 8, seed: int = 3) -> Any:
    """A per-pixel softmax over the bands (one 1x1 convolution): the smallest model classify.py can use."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((None, None, n_bands)),
                             keras.layers.Conv2D(n_classes, 1, activation="softmax")])


def save_run(model: Any, config: Config, name: str, *, level: str | None = None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             folder: Path | None = None, script: str | None = None, **changes: Any) -> Path:
    """Save a model with its run record embedded, as the training scripts do.

    Args:
        model: The Keras model.
        config: The study area the run is "trained" on (class table, bands, config text).
        name: The run name (the file stem).
        level: Processing level (default: the config's).
        mean: Normalisation means (default: 0 for every band of the record).
        std: Normalisation standard deviations (default: 1).
        folder: Where to save (default: the config's models folder).
        script: The training script (default: the name without its ``_NN``).
        **changes: Record fields to override (``bands``, ``classes``, ``tile_size`` ...).

    Returns:
        The ``.keras`` file.
    """
    level = level or config.level
    n_bands = len(changes.get("bands", config.bands(level)))
    normaliser = Normaliser.from_values(mean if mean is not None else [0.0] * n_bands,
                                        std if std is not None else [1.0] * n_bands)
    record: RunRecord = make_record(config, name, script or name.rsplit("_", 1)[0], level, normaliser,
                                    config.evaluation, {"level": level})
    record = dataclasses.replace(record, **changes)
    folder = folder or config.models_root
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.keras"
    staged = folder / f".{name}.staged.keras"
    model.save(staged)
    embed_record(staged, record)
    os.replace(staged, path)
    return path


def save_old_run(model: Any, config: Config, name: str, mean: Sequence[float], std: Sequence[float],
                 level: str | None = None, folder: Path | None = None) -> Path:
    """Save a model as runs were saved before records: ``.keras`` plus flags, normalisation and config copy."""
    folder = folder or config.models_root
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.keras"
    model.save(path)
    (folder / f"{name}_flags.json").write_text(json.dumps(
        {"script": name.rsplit("_", 1)[0], "run": name, "config": str(config.source),
         "flags": {"level": level or config.level}}), encoding="utf-8")
    (folder / f"{name}_normalisation.json").write_text(json.dumps({"mean": list(mean), "std": list(std)}),
                                                       encoding="utf-8")
    (folder / f"{name}_config.toml").write_text(config.source.read_text(encoding="utf-8"), encoding="utf-8")
    return path
