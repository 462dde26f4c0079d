"""Which files of a demo ``raw/`` folder the generator wrote, and replacing only those.

``00_make_demo_data.py --force`` regenerates a demo. A user may have added files to that
``raw/`` folder (notes, a product of their own); regenerating must not delete them. The
completion marker therefore lists every file the generator wrote (its ``files`` key); on
regeneration everything else is an extra that is carried over into the new demo.

The swap keeps the old property that ``raw/`` never looks complete half-way: the new demo is
built in a staging folder, the old ``raw/`` is renamed to ``.raw_demo_previous``, the staging
folder becomes ``raw/``, and the extras are moved back from the previous folder, which is then
removed. If a run is interrupted in between, :func:`recover` finishes the job on the next run,
so a user's file is never lost: at worst it waits in ``.raw_demo_previous``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from helpers.core.errors import InputError

MANIFEST_KEY = "files"
"""Key of the completion marker listing the generator's files (relative POSIX paths)."""

PREVIOUS_NAME = ".raw_demo_previous"
"""The old ``raw/`` folder during a regeneration, next to ``raw/``."""


def list_files(folder: Path, marker_name: str) -> list[str]:
    """Relative POSIX paths of the files and links under ``folder``, without the marker.

    Args:
        folder: A ``raw/`` or staging folder.
        marker_name: The completion marker's name (never an extra, never in the manifest).

    Returns:
        The paths, sorted.
    """
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        found += [(base / d).relative_to(folder).as_posix() for d in dirs if (base / d).is_symlink()]
        found += [(base / f).relative_to(folder).as_posix() for f in files]
    return sorted(p for p in found if p != marker_name)


def _manifest(folder: Path, marker_name: str) -> set[str] | None:
    """The generator's files listed in a folder's marker (None: no marker, or one without a list)."""
    try:
        files = json.loads((folder / marker_name).read_text(encoding="utf-8")).get(MANIFEST_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return set(files) if isinstance(files, list) else None


def _extras(folder: Path, marker_name: str, fallback: set[str]) -> list[str]:
    """Files of ``folder`` that the generator did not write.

    A marker of an older generator has no list; then only the files that the new demo writes
    as well count as the generator's (so a doubtful file is kept, never deleted).
    """
    ours = _manifest(folder, marker_name)
    return [p for p in list_files(folder, marker_name) if p not in (fallback if ours is None else ours)]


def _move_back(previous: Path, raw: Path, extras: Iterable[str]) -> None:
    """Move the extras from the previous folder into ``raw/`` and remove the previous folder."""
    stuck = []
    for relative in extras:
        source, target = previous / relative, raw / relative
        if target.exists() or target.is_symlink():
            stuck.append(relative)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    if stuck:
        raise InputError(f"{previous}: could not move {', '.join(stuck)} back into {raw} (the new demo has a file "
                         "there); they are still in that folder: move them yourself, then remove it")
    shutil.rmtree(previous)


def swap_in(raw: Path, staging: Path, marker_name: str) -> list[str]:
    """Replace ``raw/`` by the complete ``staging`` folder, keeping files the generator did not write.

    Args:
        raw: The ``raw/`` folder (missing, empty or a demo written by the generator).
        staging: The complete new demo (its marker lists its files).
        marker_name: The completion marker's name.

    Returns:
        The kept files (relative paths), carried over into the new ``raw/``.

    Raises:
        InputError: A kept file lies where the new demo writes one (nothing is changed then).
    """
    if not raw.exists():
        os.replace(staging, raw)
        return []
    if not any(raw.iterdir()):
        raw.rmdir()
        os.replace(staging, raw)
        return []
    new = set(list_files(staging, marker_name))
    extras = _extras(raw, marker_name, new)
    clashes = [p for p in extras if p in new or any(str(parent) in new for parent in Path(p).parents)
               or any(n.startswith(f"{p}/") for n in new)]
    if clashes:
        shutil.rmtree(staging)
        raise InputError(f"{raw / clashes[0]}: not written by the demo generator, but the new demo writes a file "
                         "there; move it out of the way and rerun")
    previous = raw.parent / PREVIOUS_NAME
    os.replace(raw, previous)
    os.replace(staging, raw)
    _move_back(previous, raw, extras)
    return extras


def recover(raw: Path, marker_name: str) -> None:
    """Finish a regeneration that was interrupted during :func:`swap_in`.

    Args:
        raw: The ``raw/`` folder.
        marker_name: The completion marker's name.

    Raises:
        InputError: The previous folder is there but ``raw/`` is neither missing nor a demo.
    """
    previous = raw.parent / PREVIOUS_NAME
    if not previous.is_dir():
        return
    if not raw.exists():  # stopped between the two renames: the old demo goes back
        os.replace(previous, raw)
    elif (raw / marker_name).is_file():  # stopped while moving the extras back
        _move_back(previous, raw, _extras(previous, marker_name, set(list_files(raw, marker_name))))
    else:
        raise InputError(f"{previous}: left by an interrupted demo regeneration; move the files you need into "
                         f"{raw}, then remove it")
