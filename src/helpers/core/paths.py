"""Repository-root resolution, so that scripts work from any working directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The repository root (the folder holding ``src/``, ``configs/`` and ``data/``)."""

DEFAULT_CONFIG = REPO_ROOT / "configs" / "demo.toml"
"""The configuration used when a script gets no ``--config``."""


def resolve_from_root(path: str | Path, root: Path = REPO_ROOT) -> Path:
    """Resolve a path given on the command line or in a config.

    Absolute paths are returned unchanged; relative ones are taken from ``root``
    (the repository root by default), never from the current directory.

    Args:
        path: The path to resolve.
        root: The folder relative paths are based on.

    Returns:
        An absolute path.
    """
    path = Path(path).expanduser()
    return path if path.is_absolute() else (root / path)
