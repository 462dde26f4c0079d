"""A random forest as a run's model: per-pixel class probabilities, saved with skops, loaded without unpickling.

The forest baseline (``src/models/random_forest.py``) is not the paper's: it answers a
reader's first question about any deep land-cover model, how it compares with a per-pixel
random forest on the same tiles. Its run is saved like a Keras run: ``models/{run}.skops``
with the run record (:mod:`helpers.train.run_record`) stored inside the archive, the config
copy and the flags beside it.

A forest sees each pixel on its own: the monotemporal forest the 13 (L1C) band values of one
date, the multitemporal one the band values of all the dates of a sequence stacked, date by
date in chronological order (``date 1 band 1 .. date 1 band 13, date 2 band 1 ..``). The raw
band values are its features: trees split on thresholds, so a standardisation would change
nothing; the record holds mean 0 and standard deviation 1, which the prediction code applies
as an identity.

Loading: ``skops.io`` rebuilds the estimator from a declarative schema and refuses any type
that is not on its list of trusted types, so nothing is unpickled. The tree node storage
(``sklearn.tree._tree.Tree``) is trusted explicitly because every forest needs it; skops
warns that scikit-learn follows its node indices without bounds checks, so every tree's
child and feature indices are checked here before the forest predicts anything.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.errors import InputError
from helpers.train.run_record import FOREST_SUFFIX, RunRecord, embed_record

MONO_SCRIPT = "random_forest_mono"
"""Run family of the monotemporal forest (one date's bands per pixel, dates pooled as the FCN)."""
MULTI_SCRIPT = "random_forest_multi"
"""Run family of the multitemporal forest (the fixed sequence's dates stacked per pixel)."""
FOREST_SCRIPTS: tuple[str, ...] = (MONO_SCRIPT, MULTI_SCRIPT)
TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)
"""Types beyond skops' defaults that a forest file may hold (the trees' node storage, checked on load)."""
_DAMAGED = (OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError, AttributeError, ImportError)
"""What skops raises on a damaged archive (zip, JSON, schema and type errors; untrusted types are TypeErrors)."""
PREDICT_PIXELS = 1 << 16
"""Pixels per ``predict_proba`` call (bounds the float32 copy and the per-tree probability buffers)."""


def machine_jobs() -> int:
    """Cores this process may use (the affinity mask where the OS has one), for ``n_jobs``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def stack_dates(x: np.ndarray) -> np.ndarray:
    """Per-pixel features of date sequences: ``(..., dates, bands)`` -> ``(..., dates * bands)``, date-major."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


@dataclass
class ForestModel:
    """A fitted forest with the run's band count, dates per pixel and class table.

    Attributes:
        forest: The fitted ``RandomForestClassifier`` (its classes are class ids).
        n_bands: Bands per date.
        timesteps: Dates per pixel: 1 for the monotemporal forest, the sequence length for the
            multitemporal one.
        class_ids: The run's class ids in channel order (output channel ``i`` is ``class_ids[i]``).
    """

    forest: Any
    n_bands: int
    timesteps: int
    class_ids: tuple[int, ...]
    _columns: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        known = {c: i for i, c in enumerate(self.class_ids)}
        learned = [int(c) for c in self.forest.classes_]
        unknown = [c for c in learned if c not in known]
        if unknown:
            raise ValueError(f"the forest predicts classes {unknown} that the class table does not have")
        self._columns = np.asarray([known[c] for c in learned], dtype=np.int64)

    @property
    def takes_sequences(self) -> bool:
        """Whether a pixel is a sequence of dates (the multitemporal forest)."""
        return self.timesteps > 1

    @property
    def n_features(self) -> int:
        """Features per pixel: bands x dates."""
        return self.n_bands * self.timesteps

    @property
    def n_classes(self) -> int:
        """Output channels (the run's class table; classes the forest never saw get probability 0)."""
        return len(self.class_ids)

    def pixel_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of pixels, in the run's channel order.

        Args:
            features: ``(pixels, n_features)`` raw band values (any numeric dtype).

        Returns:
            float32 ``(pixels, n_classes)``.
        """
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"expected (pixels, {self.n_features}) features, got shape {features.shape}")
        out = np.zeros((len(features), self.n_classes), dtype=np.float32)
        for start in range(0, len(features), PREDICT_PIXELS):
            chunk = np.asarray(features[start: start + PREDICT_PIXELS], dtype=np.float32)
            out[start: start + len(chunk), self._columns] = self.forest.predict_proba(chunk)
        return out

    def predict(self, x: np.ndarray, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Probability maps of tiles, as a Keras model's ``predict`` (so the scoring code takes either).

        Args:
            x: ``(n, H, W, bands)`` for the monotemporal forest, ``(n, dates, H, W, bands)``
                (dates in chronological order) for the multitemporal one.
            batch_size: Ignored (pixels are predicted in chunks of :data:`PREDICT_PIXELS`).
            verbose: Ignored.

        Returns:
            float32 ``(n, H, W, n_classes)``.
        """
        del batch_size, verbose
        x = np.asarray(x)
        if self.takes_sequences:
            if x.ndim != 5 or x.shape[1] != self.timesteps or x.shape[-1] != self.n_bands:
                raise ValueError(f"expected (n, {self.timesteps}, H, W, {self.n_bands}) sequences, got {x.shape}")
            spatial = (x.shape[0], *x.shape[2:4])
            features = stack_dates(np.moveaxis(x, 1, -2)).reshape(-1, self.n_features)
        else:
            if x.ndim != 4 or x.shape[-1] != self.n_bands:
                raise ValueError(f"expected (n, H, W, {self.n_bands}) tiles, got {x.shape}")
            spatial = x.shape[:3]
            features = x.reshape(-1, self.n_bands)
        return self.pixel_probabilities(features).reshape(*spatial, self.n_classes)


# ---------------------------------------------------------------------- runs of forests
def is_forest_file(path: Path) -> bool:
    """Whether a model file is a forest's (by its suffix)."""
    return path.suffix == FOREST_SUFFIX


def record_timesteps(record: RunRecord) -> int:
    """Dates per pixel of a forest run: its recorded dates for the multitemporal forest, else 1.

    Raises:
        InputError: If the record is not a forest's, or a multitemporal record lists fewer than 2 dates.
    """
    if record.script not in FOREST_SCRIPTS:
        raise InputError(f"{record.model_path}: a forest model file whose run record names the script "
                         f"'{record.script}' (expected one of {', '.join(FOREST_SCRIPTS)})")
    if record.script == MONO_SCRIPT:
        return 1
    if len(record.dates) < 2:
        raise InputError(f"{record.model_path}: a multitemporal forest whose run record lists {len(record.dates)} "
                         "date(s); it needs the 2 or more dates it was trained on")
    return len(record.dates)


def save_forest(model: ForestModel, path: Path, record: RunRecord) -> None:
    """Save a forest with its run record inside, atomically: a staged file, the record, then the rename."""
    import skops.io as sio

    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{FOREST_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sio.dump(model.forest, partial, compression=zipfile.ZIP_DEFLATED, compresslevel=1)  # a fifth of the size
        embed_record(partial, record)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_forest(record: RunRecord) -> ForestModel:
    """Load a forest run's model without unpickling and check it against its record.

    Raises:
        InputError: (one line naming the file) for a damaged archive, a file holding types
            beyond scikit-learn's forest and its trees, an object that is not a random
            forest, trees with out-of-range node or feature indices, or a forest whose feature
            count or classes differ from the record's bands, dates and class table.
    """
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    path = record.model_path
    timesteps = record_timesteps(record)
    try:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        if not untrusted:
            forest = sio.load(path, trusted=list(TRUSTED_TYPES))
    except _DAMAGED as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise InputError(f"{path}: not a readable random-forest model ({type(error).__name__}: {reason})") from None
    if untrusted:
        raise InputError(f"{path}: refused to load: the file holds types that are not trusted "
                         f"({', '.join(untrusted[:5])}); a forest run holds only a scikit-learn random forest")
    if not isinstance(forest, RandomForestClassifier) or not hasattr(forest, "estimators_"):
        raise InputError(f"{path}: holds a {type(forest).__name__}, not a fitted RandomForestClassifier")
    expected = len(record.bands) * timesteps
    if getattr(forest, "n_outputs_", None) != 1 or forest.n_features_in_ != expected:
        raise InputError(f"{path}: the forest takes {forest.n_features_in_} features per pixel, its run record "
                         f"lists {len(record.bands)} bands x {timesteps} date(s) = {expected} (model and record do "
                         "not belong together)")
    check_trees(forest, path)
    forest.n_jobs = machine_jobs()  # the cores of the machine that predicts, not of the one that trained
    try:
        return ForestModel(forest, len(record.bands), timesteps, record.class_ids)
    except ValueError as error:
        raise InputError(f"{path}: {error} (model and record do not belong together)") from None


def check_trees(forest: Any, path: Path) -> None:
    """Check every tree's node arrays before scikit-learn follows them (it does not check bounds).

    A child index must point further down the node array (so no walk loops or leaves the
    array), a split feature must be one of the forest's features and the node values must be
    finite and shaped for the forest's classes.

    Raises:
        InputError: Naming the file and the first bad tree.
    """
    n_features, n_classes = int(forest.n_features_in_), len(forest.classes_)
    for index, estimator in enumerate(forest.estimators_):
        tree = getattr(estimator, "tree_", None)
        if tree is None or not _tree_is_sound(tree, n_features, n_classes):
            raise InputError(f"{path}: tree {index} of the forest has out-of-range node or feature indices or "
                             "values (a damaged or manipulated model file)")


def _tree_is_sound(tree: Any, n_features: int, n_classes: int) -> bool:
    count = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, value = np.asarray(tree.feature), np.asarray(tree.value)
    if count < 1 or not (len(left) == len(right) == len(feature) == count) or tree.n_features != n_features:
        return False
    if value.shape != (count, 1, n_classes) or not np.all(np.isfinite(value)):
        return False
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        return False
    nodes = np.arange(count)[~leaf]
    inner_left, inner_right, inner_feature = left[~leaf], right[~leaf], feature[~leaf]
    return bool(np.all((inner_left > nodes) & (inner_left < count) & (inner_right > nodes) & (inner_right < count))
                and np.all((inner_feature >= 0) & (inner_feature < n_features)))

