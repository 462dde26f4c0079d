"""Run names and model files under ``models/``: ``{script}_{NN}.keras``, auto-incremented."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from helpers.core.errors import InputError

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


# ---------------------------------------------------------------------- ensembles
_ENSEMBLE_RE = re.compile(r"^(?P<base>.+)_ensemble_(?P<label>\d+|\d{2}(?:_\d{2})+)$")


def parse_runs(text: str) -> list[int]:
    """Run numbers from ``134`` (one digit each) or ``1,3,12`` (comma-separated).

    Raises:
        InputError: If the text is not of either form, a number is 0, or one repeats.
    """
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        numbers = [int(d) for d in text]
    elif re.fullmatch(r"\d+(\s*,\s*\d+)+", text):
        numbers = [int(part) for part in text.split(",")]
    else:
        raise InputError(f"--runs '{text}': give run digits (134 = runs 01, 03, 04) or numbers like 1,3,12")
    if 0 in numbers or len(set(numbers)) != len(numbers):
        raise InputError(f"--runs '{text}': run numbers must be positive and distinct")
    return numbers


def ensemble_label(numbers: Sequence[int]) -> str:
    """Name suffix of an ensemble: ``134`` for single-digit runs, else ``01_03_12``."""
    return "".join(str(n) for n in numbers) if max(numbers) < 10 else "_".join(f"{n:02d}" for n in numbers)


def ensemble_name(base: str, numbers: Sequence[int]) -> str:
    """Name of the ensemble of runs ``{base}_{NN}``: ``lstm_random_seq_ensemble_134``."""
    return f"{base}_ensemble_{ensemble_label(numbers)}"


def ensemble_members(models_root: Path, name: str) -> list[str] | None:
    """The runs of an ensemble name (``{base}_ensemble_134``), or None for any other name.

    A saved model of that very name is not an ensemble (the file wins).

    Raises:
        InputError: If the name is not plain, or names runs that do not exist.
    """
    stem = check_model_name(name)
    match = _ENSEMBLE_RE.match(stem)
    if match is None or (models_root / f"{stem}.keras").is_file():
        return None
    label = match["label"]
    numbers = [int(part) for part in label.split("_")] if "_" in label else parse_runs(label)
    if 0 in numbers or len(set(numbers)) != len(numbers):
        raise InputError(f"ensemble '{stem}': run numbers must be positive and distinct")
    return [model_path(models_root, f"{match['base']}_{n:02d}").stem for n in numbers]
