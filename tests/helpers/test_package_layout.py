"""The library's stages: one sub-package each, and imports that only go downwards.

``core`` imports nothing of the project above it; ``data`` and ``train`` never import
``predict``; no script imports another script; no module is much over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.core.paths import REPO_ROOT

HELPERS = REPO_ROOT / "src" / "helpers"
STAGES = ("core", "data", "train", "predict", "demo")
FORBIDDEN = {"core": {"data", "train", "predict", "demo"}, "data": {"train", "predict", "demo"},
             "train": {"predict", "demo"}, "predict": {"demo"}, "demo": {"train", "predict"}}
"""Stage -> stages its modules must not import (at module level or inside functions)."""
SCRIPT_FOLDERS = ("data_processing", "models", "predict")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_every_module_lives_in_a_stage() -> None:
    loose = [p.name for p in HELPERS.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    assert sorted(p.name for p in HELPERS.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_imports_only_go_downwards(stage: str) -> None:
    offences = []
    for path in sorted((HELPERS / stage).glob("*.py")):
        for name in _imported_modules(path):
            parts = name.split(".")
            if parts[0] == "helpers" and len(parts) > 1 and parts[1] in FORBIDDEN[stage]:
                offences.append(f"{path.name} imports {name}")
    assert offences == []


def test_scripts_never_import_scripts() -> None:
    offences = []
    for folder in SCRIPT_FOLDERS:
        for path in sorted((REPO_ROOT / "src" / folder).glob("*.py")):
            for name in _imported_modules(path):
                if name.split(".")[0] in SCRIPT_FOLDERS:
                    offences.append(f"{folder}/{path.name} imports {name}")
    assert offences == []


def test_modules_stay_readable() -> None:
    long = {p.relative_to(HELPERS).as_posix(): n for p in HELPERS.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 550}
    assert long == {}
