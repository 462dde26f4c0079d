"""One reader (and writer) for a trained run: model, normalisation, class table, bands, level, config.

A run is portable: its record (``run_record.json``) is stored *inside* the ``.keras`` archive,
so the model file alone is enough to classify another study area with it. Keras ignores the
extra archive member when it loads the model (in safe mode). The original's side files
(``{run}_config.toml``, ``{run}_flags.json``, ``{run}_normalisation.json``) are still written
beside the model for people; a model saved before records existed is read from those side
files, and a missing or inconsistent one is an error, never a silent fallback to the
config's constants or a recomputation.

A model is named either by its run name (a ``str``: a plain name inside the config's
``models/`` folder, as the original; ``{BASE}_ensemble_134`` names the runs ``{BASE}_01``,
``_03`` and ``_04``) or by a path (a :class:`~pathlib.Path`: a ``.keras`` file or a run folder
anywhere, a folder holding ``{folder name}.keras`` or exactly one ``.keras`` file). The
scripts take the first as the positional ``MODEL_NAME`` and the second as ``--model PATH``
(:func:`add_model_arguments`, :func:`model_spec`).

A random-forest run (:mod:`helpers.train.forest_model`, an addition to the paper's models) is
read the same way: its model file is ``{run}.skops`` (a skops zip archive) with the record
inside; it is loaded without unpickling, through a list of trusted types.
"""

from __future__ import annotations

import argparse
import json
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.core.config import LEVEL_BANDS, Config
from helpers.core.errors import InputError
from helpers.train.normalisation import Normaliser
from helpers.train.runs import check_model_name, ensemble_members, model_path

if TYPE_CHECKING:
    import keras

    from helpers.train.forest_model import ForestModel

FOREST_SUFFIX = ".skops"
"""Suffix of a random-forest run's model file (:data:`helpers.train.forest_model.FOREST_SUFFIX`)."""
MODEL_SUFFIXES: tuple[str, ...] = (".keras", FOREST_SUFFIX)
RECORD_MEMBER = "run_record.json"
"""Name of the record inside the ``.keras`` zip archive."""
RECORD_FORMAT = 1

ModelSpec = str | Path
"""A run name (``str``, inside the config's ``models/``) or a path to a model file or run folder."""


@dataclass(frozen=True)
class RecordClass:
    """One class of the table a run was trained with."""

    id: int
    name: str
    colour: str


@dataclass(frozen=True)
class RunRecord:
    """Everything needed to use a trained model on any study area.

    Attributes:
        name: The run name (the model file's stem), e.g. ``baseline_cnn_01``.
        model_path: The ``.keras`` file.
        script: The training script (``baseline_cnn``, ``lstm_fixed_seq``, ``lstm_random_seq``).
        level: Processing level of the training data (L1C or L2A).
        bands: Band (layer) names the model takes, in stack order.
        classes: The class table (id, name, colour); channel ``c - 1`` is class ``c``.
        unclassifiable_id: The class with loss weight 0.
        mean: Per-band means of the normalisation.
        std: Per-band standard deviations of the normalisation.
        tile_size: Training tile side in pixels.
        dates: The dates the run was trained on.
        flags: The flags the run was started with.
        config_text: The training config, verbatim.
    """

    name: str
    model_path: Path
    script: str
    level: str
    bands: tuple[str, ...]
    classes: tuple[RecordClass, ...]
    unclassifiable_id: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tile_size: int
    dates: tuple[str, ...] = ()
    flags: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""

    @property
    def is_forest(self) -> bool:
        """Whether the run is a random forest (a ``.skops`` model file) rather than a Keras model."""
        return self.model_path.suffix == FOREST_SUFFIX

    @property
    def normaliser(self) -> Normaliser:
        """The band standardisation the model was trained with."""
        return Normaliser.from_values(self.mean, self.std)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Class ids in table order."""
        return tuple(c.id for c in self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in table order."""
        return tuple(c.name for c in self.classes)

    @property
    def colours(self) -> dict[int, str]:
        """``{class id: "#rrggbb"}`` of the run's class table (for maps and previews)."""
        return {c.id: c.colour for c in self.classes}

    def to_json(self) -> dict[str, Any]:
        """The record as stored in the archive (paths are not stored: the file may move)."""
        return {"format": RECORD_FORMAT, "run": self.name, "script": self.script, "level": self.level,
                "bands": list(self.bands), "classes": [vars(c) for c in self.classes],
                "unclassifiable_id": self.unclassifiable_id,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "tile_size": self.tile_size, "dates": list(self.dates), "flags": self.flags,
                "config_text": self.config_text}

    def check_fits(self, config: Config, level: str | None = None) -> str:
        """Check that this model can be applied to a study area's data; return the level to use.

        The level is the run's: data of another level have other bands, whatever the
        config's ``sentinel.level`` says.

        Args:
            config: The study area whose stacks or tiles the model will see.
            level: The data's level; None means the run's own level.

        Raises:
            InputError: If the level, the bands or the class table differ (one line naming both).
        """
        level = config.check_level(level or self.level)
        where = f"model '{self.name}' ({self.model_path})"
        if level != self.level:
            raise InputError(f"{where} was trained on {self.level} data, but the data are {level} "
                             f"(give --level {self.level} or use a {level} model)")
        bands = config.bands(level)
        if tuple(bands) != self.bands:
            raise InputError(f"{where} takes {len(self.bands)} bands ({', '.join(self.bands)}), the {level} data of "
                             f"{config.source} have {len(bands)} ({', '.join(bands)})")
        mine = [(c.id, c.name) for c in self.classes]
        theirs = [(c.id, c.name) for c in config.classes]
        if mine != theirs:
            differ = sorted(set(mine) ^ set(theirs)) or "same entries, another order"
            raise InputError(f"{where} was trained with another class table than {config.source} (differing "
                             f"entries (id, name): {differ}); copy the run's [[classes]] into the config")
        if self.unclassifiable_id != config.unclassifiable_id:
            raise InputError(f"{where} was trained with unclassifiable class {self.unclassifiable_id}, "
                             f"{config.source} has ground_truth.unclassifiable_id = {config.unclassifiable_id}")
        return level

    def check_model(self, model: Any) -> None:
        """Check that a (loaded or in-memory) model takes the record's bands and predicts its classes.

        Raises:
            InputError: If the model and its record disagree (a damaged or mixed-up run).
        """
        if self.is_forest:
            n_bands, n_classes = getattr(model, "n_bands", None), getattr(model, "n_classes", None)
            if (n_bands, n_classes) != (len(self.bands), len(self.classes)):
                raise InputError(f"{self.model_path}: the forest takes {n_bands} bands and predicts {n_classes} "
                                 f"classes, its run record lists {len(self.bands)} and {len(self.classes)} (model "
                                 "and record do not belong together)")
            return
        from helpers.train.models import model_bands, model_classes

        if model_bands(model) != len(self.bands):
            raise InputError(f"{self.model_path}: the model takes {model_bands(model)} bands, its run record lists "
                             f"{len(self.bands)} (model and record do not belong together)")
        if model_classes(model) != len(self.classes):
            raise InputError(f"{self.model_path}: the model predicts {model_classes(model)} classes, its run record "
                             f"lists {len(self.classes)} (model and record do not belong together)")

    def load_model(self) -> keras.Model | ForestModel:
        """Load the model (Keras in safe mode, a forest through skops' trusted types) and check it against the record.

        Nothing is unpickled either way.
        """
        if self.is_forest:
            from helpers.train.forest_model import load_forest

            return load_forest(self)
        from helpers.train.models import load_model

        model = load_model(self.model_path)
        self.check_model(model)
        return model


@dataclass(frozen=True)
class RunSet:
    """A model to apply: one run, or the runs of an ensemble (whose outputs are averaged).

    Attributes:
        name: The name outputs and reports are written under (the run's, or the ensemble's).
        members: The runs, all of one level, band list and class table.
    """

    name: str
    members: tuple[RunRecord, ...]

    @property
    def first(self) -> RunRecord:
        """The first run (level, bands and class table are the same for all)."""
        return self.members[0]

    @property
    def member_names(self) -> list[str]:
        """Names of the runs."""
        return [m.name for m in self.members]

    def check_fits(self, config: Config) -> str:
        """:meth:`RunRecord.check_fits` of the runs on a study area; return the level."""
        return self.first.check_fits(config)


# ---------------------------------------------------------------------- writing
def make_record(config: Config, run: str, script: str, level: str, normaliser: Normaliser,
                dates: Sequence[str], flags: dict[str, Any]) -> RunRecord:
    """The record of a run trained on a config's data (the model path is filled in when saved)."""
    classes = tuple(RecordClass(c.id, c.name, c.colour) for c in config.classes)
    return RunRecord(name=run, model_path=config.models_root / f"{run}.keras", script=script, level=level,
                     bands=tuple(config.bands(level)), classes=classes, unclassifiable_id=config.unclassifiable_id,
                     mean=tuple(float(v) for v in normaliser.mean), std=tuple(float(v) for v in normaliser.std),
                     tile_size=config.tile_size, dates=tuple(dates), flags=dict(flags),
                     config_text=config.source.read_text(encoding="utf-8"))


def embed_record(model_file: Path, record: RunRecord) -> None:
    """Store the record inside a saved ``.keras`` archive (call it on the staged file before its rename)."""
    with zipfile.ZipFile(model_file, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        if RECORD_MEMBER in archive.namelist():
            raise ValueError(f"{model_file}: already holds a run record")
        archive.writestr(RECORD_MEMBER, json.dumps(record.to_json(), indent=1))


# ---------------------------------------------------------------------- command line
def add_model_arguments(parser: argparse.ArgumentParser, what: str = "a trained run") -> None:
    """The scripts' two ways to name a model: positional ``MODEL_NAME`` or ``--model PATH`` (one of them)."""
    parser.add_argument("model_name", metavar="MODEL_NAME", nargs="?", default=None,
                        help=f"{what}: a run name in the config's models folder, e.g. baseline_cnn_01")
    parser.add_argument("--model", dest="model_path", metavar="PATH", default=None,
                        help="instead of MODEL_NAME: a .keras (or random forest's .skops) file or a run folder "
                             "anywhere (a model trained on "
                             "another study area); outputs are named by the run and written under this config")


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The model named by :func:`add_model_arguments`: a checked plain run name, or a path.

    Raises:
        InputError: If neither or both are given, or the name is not plain.
    """
    name, path = args.model_name, args.model_path
    if (name is None) == (path is None):
        raise InputError("give either MODEL_NAME (a run in the config's models folder) or --model PATH, "
                         + ("not both" if name is not None else "neither was given"))
    return check_model_name(name) if name is not None else Path(path).expanduser()


# ---------------------------------------------------------------------- reading
def resolve_model_file(spec: ModelSpec, config: Config) -> Path:
    """The model file named by a run name (inside ``models/``) or by a path (file or run folder).

    A model file is a ``.keras`` archive, or a random forest's ``.skops`` archive.

    Args:
        spec: A ``str`` is a run name in the config's ``models/`` folder (it must be a plain
            name); a ``Path`` is a model file or run folder (a relative path is taken from the
            current directory, as any path typed on the command line).
        config: The current study area.

    Raises:
        InputError: If nothing is found, a name is not plain, or a folder holds no or several models.
    """
    if not isinstance(spec, Path):
        name = check_model_name(str(spec).removesuffix(FOREST_SUFFIX))
        forest = config.models_root / f"{name}{FOREST_SUFFIX}"
        return forest if forest.is_file() else model_path(config.models_root, name)
    candidate = spec.expanduser().resolve()
    if candidate.is_dir():
        for suffix in MODEL_SUFFIXES:
            named = candidate / f"{candidate.name}{suffix}"
            if named.is_file():
                return named
        found = sorted(p for suffix in MODEL_SUFFIXES for p in candidate.glob(f"*{suffix}"))
        if len(found) != 1:
            listing = ", ".join(p.name for p in found[:5])
            raise InputError(f"{candidate}: a run folder must hold {candidate.name}.keras or exactly one .keras file"
                             + (f" (found {listing})" if found else " (found none)")
                             + f" (a random forest's: {candidate.name}.skops or exactly one .skops file)")
        return found[0]
    if not candidate.is_file():
        raise InputError(f"{candidate}: model file not found")
    if candidate.suffix not in MODEL_SUFFIXES:
        raise InputError(f"{candidate}: not a .keras model file (nor a random forest's .skops)")
    return candidate


def load_run(spec: ModelSpec, config: Config) -> RunRecord:
    """Read a run's record (from its archive, or from the side files of an older run).

    Args:
        spec: Run name or path (see :func:`resolve_model_file`).
        config: The current study area (for ``models/`` and plain names).

    Raises:
        InputError: For a missing model, or a record or side file that is missing, unreadable or
            inconsistent (one line naming the file).
    """
    path = resolve_model_file(spec, config)
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(RECORD_MEMBER) if RECORD_MEMBER in archive.namelist() else None
    except (OSError, zipfile.BadZipFile) as error:
        kind = "random-forest" if path.suffix == FOREST_SUFFIX else "Keras"
        raise InputError(f"{path}: not a readable {kind} model ({error})") from None
    if raw is None:
        if path.suffix == FOREST_SUFFIX:
            raise InputError(f"{path}: no run record inside (a forest run is written by src/models/random_forest.py)")
        return _record_from_side_files(path)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: damaged run record ({error})") from None
    return _record_from_json(data, path, f"{path} [{RECORD_MEMBER}]")


def load_runs(spec: ModelSpec, config: Config) -> RunSet:
    """A run, or the runs of an ensemble name ``{BASE}_ensemble_134`` (a saved model of that name wins).

    Raises:
        InputError: As :func:`load_run`, and for ensemble runs of different levels, bands or
            class tables.
    """
    if isinstance(spec, Path):
        record = load_run(spec, config)
        return RunSet(record.name, (record,))
    name = check_model_name(str(spec))
    members = ensemble_members(config.models_root, name)
    if members is None:
        return RunSet(name, (load_run(name, config),))
    return RunSet(name, tuple(check_same_kind([load_run(m, config) for m in members], name)))


def check_same_kind(records: Sequence[RunRecord], name: str) -> Sequence[RunRecord]:
    """Check that the runs of an ensemble can be averaged: one level, band list, class table and tile size.

    Raises:
        InputError: Naming the ensemble and what differs.
    """
    first = records[0]
    for record in records[1:]:
        for what, mine, theirs in (("processing levels", first.level, record.level),
                                   ("bands", first.bands, record.bands),
                                   ("class tables", first.classes, record.classes),
                                   ("tile sizes", first.tile_size, record.tile_size)):
            if mine != theirs:
                raise InputError(f"ensemble '{name}': runs {first.name} and {record.name} differ in {what} "
                                 "(only runs of one kind can be averaged)")
    return records


def _record_from_json(data: Any, path: Path, source: str) -> RunRecord:
    try:
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"record format {data.get('format')!r}, this version reads {RECORD_FORMAT}")
        level = str(data["level"])
        if level not in LEVEL_BANDS:
            raise ValueError(f"unknown level {level!r}")
        classes = tuple(RecordClass(int(c["id"]), str(c["name"]), str(c["colour"])) for c in data["classes"])
        norm = data["normalisation"]
        record = RunRecord(name=path.stem, model_path=path, script=str(data["script"]), level=level,
                           bands=tuple(str(b) for b in data["bands"]), classes=classes,
                           unclassifiable_id=int(data["unclassifiable_id"]),
                           mean=tuple(float(v) for v in norm["mean"]), std=tuple(float(v) for v in norm["std"]),
                           tile_size=int(data["tile_size"]), dates=tuple(str(d) for d in data.get("dates", ())),
                           flags=dict(data.get("flags") or {}), config_text=str(data.get("config_text", "")))
        if not record.classes or not record.bands:
            raise ValueError("empty class table or band list")
        if len(record.mean) != len(record.bands):
            raise ValueError(f"{len(record.mean)} normalisation values for {len(record.bands)} bands")
        record.normaliser  # noqa: B018  (validates: equal lengths, positive finite std)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{source}: not a valid run record ({error})") from None
    return record


def _record_from_side_files(path: Path) -> RunRecord:
    """An older run: the record rebuilt from ``_flags.json``, ``_normalisation.json`` and ``_config.toml``."""
    from helpers.core.config import load_config

    stem, folder = path.stem, path.parent
    files = {kind: folder / f"{stem}_{kind}" for kind in ("flags.json", "normalisation.json", "config.toml")}
    for kind, side in files.items():
        if not side.is_file():
            raise InputError(f"{side}: missing; {path.name} has no run record, so its {kind} must lie beside it "
                             "(copy the run's side files along with the model)")
    parsed: dict[str, dict[str, Any]] = {}
    for kind, side in files.items():
        try:
            text = side.read_text(encoding="utf-8")
            parsed[kind] = tomllib.loads(text) if kind == "config.toml" else json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InputError(f"{side}: unreadable run side file ({error})") from None
        if not isinstance(parsed[kind], dict):
            raise InputError(f"{side}: unreadable run side file (not a JSON object)")
    flags, norm = parsed["flags.json"], parsed["normalisation.json"]
    run_flags = flags.get("flags", {})
    if not isinstance(run_flags, dict):
        raise InputError(f"{files['flags.json']}: unreadable run side file ('flags' is not an object)")
    trained = load_config(files["config.toml"])
    try:
        level = trained.check_level(run_flags.get("level"))
    except InputError as error:
        raise InputError(f"{files['flags.json']}: {error}") from None
    data = {"format": RECORD_FORMAT, "script": flags.get("script", stem.rsplit("_", 1)[0]), "level": level,
            "bands": list(trained.bands(level)),
            "classes": [{"id": c.id, "name": c.name, "colour": c.colour} for c in trained.classes],
            "unclassifiable_id": trained.unclassifiable_id, "normalisation": norm, "tile_size": trained.tile_size,
            "flags": run_flags, "config_text": files["config.toml"].read_text(encoding="utf-8")}
    return _record_from_json(data, path, str(files["normalisation.json"]))
