"""Run names and model files under ``models/``: ``{script}_{NN}.keras``, auto-incremented."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.errors import InputError

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _numbers(models_root: Path, script: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(script)}_(\d+)(?:\.keras|_backup|_config\.toml|_flags\.json)$")
    if not models_root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in models_root.iterdir() if (m := pattern.match(p.name)))


def next_run_name(models_root: Path, script: str) -> str:
    """The next free run name of a script: ``baseline_cnn_01``, ``baseline_cnn_02`` ..."""
    numbers = _numbers(models_root, script)
    return f"{script}_{(numbers[-1] + 1) if numbers else 1:02d}"


def newest_model(models_root: Path, script: str) -> str | None:
    """Name of the newest saved model of a script (highest NN), or None."""
    pattern = re.compile(rf"^{re.escape(script)}_(\d+)\.keras$")
    found = sorted((int(m.group(1)), p.stem) for p in models_root.glob("*.keras") if (m := pattern.match(p.name)))
    return found[-1][1] if found else None


def newest_interrupted_run(models_root: Path, script: str) -> str | None:
    """Newest run of a script that left a BackupAndRestore folder (an interrupted run), or None."""
    pattern = re.compile(rf"^{re.escape(script)}_(\d+)_backup$")
    found = sorted((int(m.group(1)), p.name.removesuffix("_backup")) for p in models_root.glob("*_backup")
                   if p.is_dir() and (m := pattern.match(p.name)))
    return found[-1][1] if found else None


def check_model_name(name: str) -> str:
    """Validate a model name given on the command line (no paths: it must stay inside ``models/``).

    Raises:
        InputError: If the name is empty, contains a path separator or ``..``.
    """
    stem = name.removesuffix(".keras")
    if not stem or not _NAME_RE.match(stem) or ".." in stem or stem.startswith("."):
        raise InputError(f"model name '{name}' is not a plain name inside models/ (no paths, no '..')")
    return stem


def model_path(models_root: Path, name: str) -> Path:
    """Path of an existing model ``models/{name}.keras``.

    Raises:
        InputError: If the name is not plain or the model does not exist.
    """
    stem = check_model_name(name)
    path = models_root / f"{stem}.keras"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in models_root.glob("*.keras"))[:10]) if models_root.is_dir() else ""
        raise InputError(f"{path}: unknown model '{stem}'" + (f" (available: {available})" if available else ""))
    return path
