"""What each output was made from, so that a step re-runs exactly when that changed.

Checking only whether an output exists let a step keep a scene clipped to an old AOI or a GT
raster burnt with an old class table: the later steps then trusted stale data. Every output
therefore gets a record, ``processed/.fingerprints/<output relative to processed/>.json``,
holding a fingerprint of what it was made from:

* the config values the step uses (named by their TOML keys, so a message can name them), and
* every input file's relative name, size and modification time in nanoseconds (a folder, such
  as a ``.SAFE`` product, counts with all its files; a Shapefile with its sidecar files).

A step skips its work only when the output exists, its record exists, and the record equals
the current fingerprint. The record is written after the output was completed (atomically),
so a run interrupted in between leaves the old or no record and the output is rebuilt.
Sizes and times, not content hashes, keep the check cheap on multi-GB stacks; a file rewritten
with the same size within one tick of a coarse file-system clock (FAT: 2 s) would go unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core.io import write_json_atomic

RECORD_DIR = ".fingerprints"
"""Folder under ``processed/`` holding one record per output."""
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
"""The files of a Shapefile that change what is read from it."""
RECORD_VERSION = 1
_SHOWN = 3
"""Changed names listed in a message before 'and N more'."""


@dataclass(frozen=True)
class Fingerprint:
    """What an output is made from.

    Attributes:
        values: Config key -> value (JSON-normalised: lists, not tuples).
        inputs: Input label -> {file name inside it -> [size, mtime_ns]}; empty if it is missing.
    """

    values: dict[str, Any]
    inputs: dict[str, dict[str, list[int]]]

    def as_record(self) -> dict[str, Any]:
        """The JSON document stored for an output."""
        return {"version": RECORD_VERSION, "values": self.values, "inputs": self.inputs}


def file_states(path: Path) -> dict[str, list[int]]:
    """Size and mtime_ns of the files that make up an input, by name.

    Args:
        path: A file, a folder (all files below it, by relative name) or a ``.shp`` (with its
            sidecar files).

    Returns:
        Name -> [size, mtime_ns]; empty if the input does not exist.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        names = [p.relative_to(path).as_posix() for p in files]
    elif path.suffix.lower() == ".shp":
        files = [path.with_suffix(suffix) for suffix in SHAPEFILE_PARTS]
        files += [path.with_suffix(suffix.upper()) for suffix in SHAPEFILE_PARTS]
        files = sorted({p for p in files if p.is_file()})
        names = [p.name for p in files]
    else:
        files = [path] if path.is_file() else []
        names = [path.name] * len(files)
    states = {}
    for name, file in zip(names, files, strict=True):
        stat = file.stat()
        states[name] = [stat.st_size, stat.st_mtime_ns]
    return states


def _label(root: Path, path: Path) -> str:
    """An input's name in a record: relative to the data root when under it (the root may move)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def fingerprint(root: Path, values: Mapping[str, Any], inputs: Iterable[Path]) -> Fingerprint:
    """The current fingerprint of an output's config values and input files.

    Args:
        root: The config's data root (input names are stored relative to it).
        values: Config key -> value the step uses.
        inputs: Input files or folders (missing ones are recorded as empty).

    Returns:
        The fingerprint.
    """
    normalised = json.loads(json.dumps(dict(values), default=str))
    return Fingerprint(normalised, {_label(root, Path(p)): file_states(Path(p)) for p in inputs})


def record_path(processed: Path, output: Path) -> Path:
    """Where the record of an output lives (``processed/.fingerprints/<relative output>.json``)."""
    return processed / RECORD_DIR / f"{output.relative_to(processed).as_posix()}.json"


def read_record(processed: Path, output: Path) -> dict[str, Any] | None:
    """The stored record of an output, or None if there is none (or it is unreadable)."""
    path = record_path(processed, output)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    return data


def write_record(processed: Path, output: Path, current: Fingerprint) -> None:
    """Store an output's fingerprint; call it only after the output is complete."""
    write_json_atomic(record_path(processed, output), current.as_record())


def changes(record: Mapping[str, Any], current: Fingerprint) -> str | None:
    """What differs between a stored record and the current fingerprint, in a few words.

    Returns:
        None if nothing differs, else e.g. ``config classes; input raw/gt/gt.shp (gt.dbf)``.
    """
    stored_values = record.get("values") or {}
    keys = sorted(k for k in {*stored_values, *current.values} if stored_values.get(k) != current.values.get(k))
    stored_inputs = record.get("inputs") or {}
    names = []
    for label in sorted({*stored_inputs, *current.inputs}):
        old, new = stored_inputs.get(label, {}), current.inputs.get(label, {})
        if old == new:
            continue
        if not old or not new:
            names.append(f"{label} ({'missing' if not new else 'new'})")
            continue
        members = sorted(m for m in {*old, *new} if old.get(m) != new.get(m))
        names.append(label if members == [Path(label).name] else f"{label} ({_listing(members)})")
    parts = []
    if keys:
        parts.append(f"config {_listing(keys)}")
    if names:
        parts.append(f"input {_listing(names)}")
    return "; ".join(parts) or None


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def stale_reason(processed: Path, output: Path, current: Fingerprint) -> str | None:
    """Why an output must be (re)built, or None if it is up to date.

    Args:
        processed: The config's ``processed/`` folder.
        output: The output file.
        current: Its current fingerprint.

    Returns:
        None when the output exists and its record equals ``current``; otherwise a reason:
        ``missing``, ``no record of its inputs`` or ``changed: ...``.
    """
    if not output.exists():
        return "missing"
    record = read_record(processed, output)
    if record is None:
        return "no record of its inputs"
    difference = changes(record, current)
    return None if difference is None else f"changed: {difference}"
