"""One reader (and writer) for a trained run: model, normalisation, class table, bands, level, config.

A run is portable: its record (``run_record.json``) is stored *inside* the ``.keras`` archive,
so the model file alone is enough to classify another study area with it. Keras ignores the
extra archive member when it loads the model (in safe mode). The original's side files
(``{run}_config.toml``, ``{run}_flags.json``, ``{run}_normalisation.json``) are still written
beside the model for people; a model saved before records existed is read from those side
files, and a missing or inconsistent one is an error, never a silent recomputation.

A model is named on the command line either by its run name (a plain name inside the
config's ``models/`` folder, as the original) or by a path: a ``.keras`` file or a run folder
anywhere (a folder holding ``{folder name}.keras`` or exactly one ``.keras`` file).
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.config import LEVEL_BANDS, Config
from helpers.errors import InputError
from helpers.normalisation import Normaliser
from helpers.runs import check_model_name, model_path

if TYPE_CHECKING:
    import keras

RECORD_MEMBER = "run_record.json"
"""Name of the record inside the ``.keras`` zip archive."""
RECORD_FORMAT = 1


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
    def normaliser(self) -> Normaliser:
        """The band standardisation the model was trained with."""
        return Normaliser.from_values(self.mean, self.std)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Class ids in table order."""
        return tuple(c.id for c in self.classes)

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

        Args:
            config: The study area whose stacks the model will see.
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
            raise InputError(f"{where} takes bands {', '.join(self.bands)}, the {level} stacks of "
                             f"{config.source} have {', '.join(bands)}")
        mine = [(c.id, c.name) for c in self.classes]
        theirs = [(c.id, c.name) for c in config.classes]
        if mine != theirs:
            differ = sorted(set(mine) ^ set(theirs))
            raise InputError(f"{where} was trained with another class table than {config.source} (differing "
                             f"entries (id, name): {differ}); copy the run's [[classes]] into the config")
        return level

    def load_model(self) -> keras.Model:
        """Load the Keras model in safe mode (nothing is unpickled)."""
        from helpers.models import load_model

        return load_model(self.model_path)


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


# ---------------------------------------------------------------------- reading
def resolve_model_file(spec: str | Path, config: Config) -> Path:
    """The ``.keras`` file named by a run name (inside ``models/``) or by a path (file or run folder).

    A spec with a path separator, a ``.keras`` suffix that exists as given, or an existing
    folder is a path (relative paths are taken from the current directory, as any path typed on
    the command line); anything else is a run name in the config's ``models/`` folder.

    Raises:
        InputError: If nothing is found, or a folder holds no or several models.
    """
    text = str(spec)
    candidate = Path(text).expanduser()
    is_path = "/" in text or "\\" in text or candidate.is_dir() or (text.endswith(".keras") and candidate.is_file())
    if not is_path:
        return model_path(config.models_root, check_model_name(text))
    candidate = candidate.resolve()
    if candidate.is_dir():
        named = candidate / f"{candidate.name}.keras"
        if named.is_file():
            return named
        found = sorted(candidate.glob("*.keras"))
        if len(found) != 1:
            listing = ", ".join(p.name for p in found[:5])
            raise InputError(f"{candidate}: a run folder must hold {candidate.name}.keras or exactly one .keras file"
                             + (f" (found {listing})" if found else " (found none)"))
        return found[0]
    if not candidate.is_file():
        raise InputError(f"{candidate}: model file not found")
    if candidate.suffix != ".keras":
        raise InputError(f"{candidate}: not a .keras model file")
    return candidate


def load_run(spec: str | Path, config: Config) -> RunRecord:
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
        raise InputError(f"{path}: not a readable Keras model ({error})") from None
    if raw is None:
        return _record_from_side_files(path)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: damaged run record ({error})") from None
    return _record_from_json(data, path, f"{path} [{RECORD_MEMBER}]")


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
        if len(record.mean) != len(record.bands):
            raise ValueError(f"{len(record.mean)} normalisation values for {len(record.bands)} bands")
        record.normaliser  # noqa: B018  (validates: equal lengths, positive finite std)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{source}: not a valid run record ({error})") from None
    return record


def _record_from_side_files(path: Path) -> RunRecord:
    """An older run: the record rebuilt from ``_flags.json``, ``_normalisation.json`` and ``_config.toml``."""
    from helpers.config import load_config

    stem, folder = path.stem, path.parent
    files = {kind: folder / f"{stem}_{kind}" for kind in ("flags.json", "normalisation.json", "config.toml")}
    for kind, side in files.items():
        if not side.is_file():
            raise InputError(f"{side}: missing; {path.name} has no run record, so its {kind} must lie beside it "
                             "(copy the run's side files along with the model)")
    try:
        flags = json.loads(files["flags.json"].read_text(encoding="utf-8"))
        norm = json.loads(files["normalisation.json"].read_text(encoding="utf-8"))
        config_text = files["config.toml"].read_text(encoding="utf-8")
        tomllib.loads(config_text)
    except (json.JSONDecodeError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{folder / stem}_*: unreadable run side file ({error})") from None
    trained = load_config(files["config.toml"])
    run_flags = flags.get("flags", {}) if isinstance(flags, dict) else {}
    level = trained.check_level(run_flags.get("level"))
    data = {"format": RECORD_FORMAT, "script": flags.get("script", stem.rsplit("_", 1)[0]), "level": level,
            "bands": list(trained.bands(level)),
            "classes": [{"id": c.id, "name": c.name, "colour": c.colour} for c in trained.classes],
            "unclassifiable_id": trained.unclassifiable_id, "normalisation": norm, "tile_size": trained.tile_size,
            "flags": run_flags, "config_text": config_text}
    return _record_from_json(data, path, str(files["normalisation.json"]))
