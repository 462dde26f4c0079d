"""Ctrl-C and SIGTERM for the command-line scripts: one line ``interrupted``, never a traceback.

Two phases:

* While a script imports its libraries (TensorFlow, GDAL: seconds), nothing has been written
  yet, so an interrupt simply exits at once: status 130 (SIGINT) or 143 (SIGTERM) and the line
  ``interrupted``. Importing this module first in a script installs that behaviour (only when
  the running program is one of the repository's scripts, never inside a test session).
* While :func:`helpers.core.errors.run_cli` runs the script's ``main``, SIGTERM raises
  :class:`Terminated`, a :class:`KeyboardInterrupt`, exactly as Ctrl-C does, so that every
  ``finally`` and context manager (atomic writes, the study-area lock) cleans up before exit.

Handlers act only in the process that installed them: a forked child gets the default
behaviour, so that pools can still stop their workers with SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

from helpers.core.paths import REPO_ROOT

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
SCRIPT_FOLDERS = ("data_processing", "models", "predict")
"""Folders under ``src/`` whose files are the command-line scripts."""

_owner_pid = os.getpid()
_terminating = False


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that cleanup code written for Ctrl-C runs for it too."""


def exit_status(interrupt: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the shell's 128 + signal number)."""
    return EXIT_SIGTERM if isinstance(interrupt, Terminated) else EXIT_SIGINT


def report_and_exit(status: int, hard: bool) -> NoReturn:
    """Print ``interrupted`` and exit.

    Args:
        status: The exit status.
        hard: Leave with :func:`os._exit` once the output is flushed: after an interrupt,
            interpreter shutdown runs finalisers of half-torn-down libraries (rasterio's
            ``Exception ignored ... EnvError``, TensorFlow threads) that print noise or hang.
            The cleanup that matters (partials, lock) has already run by then.
    """
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        print("interrupted", file=sys.stderr, flush=True)
    if hard:
        os._exit(status)
    sys.exit(status)


def _in_owner(signum: int) -> bool:
    """True in the installing process; in a forked child, re-deliver the signal with the default action."""
    if os.getpid() == _owner_pid:
        return True
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return False


def _exit_at_once(signum: int, frame: FrameType | None) -> None:
    if _in_owner(signum):
        report_and_exit(EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT, hard=True)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _terminating
    if not _in_owner(signum) or _terminating:  # a second SIGTERM must not cut the cleanup short
        return
    _terminating = True
    raise Terminated


def _install(handlers: dict[int, signal.Handlers | object]) -> dict[int, object]:
    """Install handlers in the main thread, leaving a signal that the parent ignores (``nohup``, ``&``) ignored."""
    previous: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum, handler in handlers.items():
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)  # type: ignore[arg-type]
    return previous


def exit_quietly_on_interrupt() -> None:
    """Make Ctrl-C and SIGTERM exit at once with one line, for the import phase of a script."""
    global _owner_pid
    _owner_pid = os.getpid()
    _install({signal.SIGINT: _exit_at_once, signal.SIGTERM: _exit_at_once})


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """For the duration: Ctrl-C raises :class:`KeyboardInterrupt`, SIGTERM raises :class:`Terminated`.

    The previous handlers are restored afterwards, so that the wrapper can run in-process (tests).
    """
    global _owner_pid, _terminating
    _owner_pid, _terminating = os.getpid(), False
    previous = _install({signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated})
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def is_script(main_file: str | None) -> bool:
    """Whether a ``__main__`` file is one of the repository's command-line scripts."""
    if not main_file:
        return False
    path = Path(main_file).resolve()
    return path.parent.parent == REPO_ROOT / "src" and path.parent.name in SCRIPT_FOLDERS


if is_script(getattr(sys.modules.get("__main__"), "__file__", None)):
    exit_quietly_on_interrupt()
