"""One pre-processing run per study area at a time: ``<data_root>/processed/.lock``.

Two runs of a step on one study area would write the same outputs and staging folders at once
and could leave a mix of both. Every pre-processing script therefore takes this lock (in
:func:`helpers.core.cli.parse`) before it writes anything; a second run refuses at once, naming the
holder, or waits with ``--wait``.

The lock is an ``fcntl.flock`` on an open file, not the file's existence: the kernel releases it
when the holding process ends in any way (even SIGKILL), so a crashed run never blocks the next.
The file records the holder (pid, host, script, start time) for the refusal message and is
removed on release. Because a waiting process may have opened the file just before the holder
removed it, a process that obtains the lock checks that its file is still the one at the path
and otherwise starts over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers.core.errors import InputError

LOCK_NAME = ".lock"


@dataclass
class _Held:
    fd: int
    count: int
    created: list[Path]  # folders made for the lock, innermost first


_held: dict[Path, _Held] = {}  # re-entrant within a process: flock would conflict with itself


def lock_path(processed_dir: Path) -> Path:
    """The lock file of a study area's processed folder."""
    return processed_dir / LOCK_NAME


def describe_holder(path: Path) -> str:
    """``pid 1234, 05_split_into_tiles.py, started 2026-11-30 19:40:02`` from a lock file.

    The holder may be writing the file this very moment, so missing fields read as unknown.
    """
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    pid = f"pid {info.get('pid', '?')}"
    host = info.get("host")
    if host and host != socket.gethostname():
        pid += f" on {host}"
    return f"{pid}, {info.get('script', 'unknown script')}, started {info.get('started', 'at an unknown time')}"


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; returns those created, innermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"{blocking}: is a file, but the study area needs a folder there")
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _open_locked(path: Path, wait: bool, say: Callable[[str], None]) -> tuple[int, list[Path]]:
    """Open ``path`` and flock it; returns the descriptor and the folders created for it."""
    while True:
        created = _make_folders(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder was removed by a releasing run in between: again
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = describe_holder(path)
                if not wait:
                    raise InputError(f"{path}: another run holds this study area ({holder}); "
                                     "wait for it to finish") from None
                say(f"waiting for the run holding {path} ({holder}) to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                return fd, created
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file we opened; lock the current one


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _write_holder(fd: int, script: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "script": script,
            "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)


def acquire(processed_dir: Path, script: str | None = None, wait: bool = False,
            say: Callable[[str], None] | None = None) -> Path:
    """Take the study-area lock (re-entrant within one process).

    Args:
        processed_dir: The study area's ``processed/`` folder (created if missing).
        script: Name recorded for other runs (default: this program's file name).
        wait: Wait for a holder to finish instead of refusing.
        say: Where the waiting notice goes (default: stderr).

    Returns:
        The lock file.

    Raises:
        InputError: Another process holds the lock and ``wait`` is False.
    """
    path = lock_path(Path(processed_dir)).absolute()
    held = _held.get(path)
    if held is not None:
        held.count += 1
        return path
    fd, created = _open_locked(path, wait, say or (lambda text: print(text, file=sys.stderr, flush=True)))
    try:
        _write_holder(fd, script or Path(sys.argv[0] or "python").name)
    except BaseException:
        os.close(fd)
        raise
    _held[path] = _Held(fd, 1, created)
    return path


def release(path: Path) -> None:
    """Give the lock back: remove the file while still holding it, then close it."""
    held = _held.get(path)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _held[path]
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(held.fd)
    for folder in held.created:  # leave no empty processed/ behind a run that wrote nothing
        try:
            folder.rmdir()
        except OSError:  # not empty: the run wrote something, keep it and its parents
            break


@contextlib.contextmanager
def study_area_lock(processed_dir: Path, script: str | None = None, wait: bool = False,
                    say: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the study-area lock for a ``with`` block; see :func:`acquire` for the arguments."""
    path = acquire(processed_dir, script, wait, say)
    try:
        yield path
    finally:
        release(path)

