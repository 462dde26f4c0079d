"""User-facing errors and the command-line wrapper that reports them in one line.

Every script ends with ``run_cli(main)``. The wrapper is the one place that decides what a user
sees when a run does not succeed: bad input (:class:`InputError`) and known faults (a damaged
raster, a read-only or full disk, see :mod:`helpers.core.faults`) become ``error: <file>: <problem>``
with exit status 2; Ctrl-C and SIGTERM become ``interrupted`` with 130 or 143 after the
run's cleanup (see :mod:`helpers.core.interrupts`). Resources that must live exactly as long as the
run (the study-area lock) are registered with :func:`hold_until_exit`.

This module stays light (standard library only at import): every script imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import NoReturn, TypeVar

T = TypeVar("T")
_run_resources: contextlib.ExitStack | None = None


class InputError(Exception):
    """Bad input that the user can fix: reported as one line, exit status 2."""


class ConfigError(InputError):
    """An invalid configuration value.

    Args:
        source: The config file.
        key: Dotted key of the offending value (for example ``split.seed``).
        reason: What is wrong with it.
    """

    def __init__(self, source: object, key: str, reason: str) -> None:
        super().__init__(f"{source}: config key '{key}': {reason}")
        self.key = key
        self.reason = reason


def hold_until_exit(resource: AbstractContextManager[T]) -> T:
    """Enter ``resource`` now and exit it when the script's run ends.

    Inside :func:`run_cli` the resource is released when ``main`` returns or fails, before the
    error line is printed; outside it (a ``main`` called directly) at interpreter exit.

    Args:
        resource: A context manager (for example the study-area lock).

    Returns:
        What entering it returned.
    """
    if _run_resources is not None:
        return _run_resources.enter_context(resource)
    value = resource.__enter__()
    atexit.register(resource.__exit__, None, None, None)
    return value


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a script's ``main`` and turn bad input, known faults and interrupts into one line.

    Args:
        main: The script's entry point; it receives ``argv`` and returns an exit status or None.
        argv: Arguments (default: ``sys.argv[1:]``).

    Raises:
        SystemExit: Always: 0 (or ``main``'s status), 2 for bad input or a known fault, 130 or
            143 when interrupted. Unknown errors (bugs) propagate with their traceback.
    """
    global _run_resources
    from helpers.core import interrupts  # here, not at import: interrupts needs helpers.core.paths

    outer = _run_resources
    try:
        with interrupts.interrupts_raise(), contextlib.ExitStack() as resources:
            _run_resources = resources
            try:
                status = main(argv)
            finally:
                _run_resources = outer
    except InputError as error:
        _fail(str(error))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM as interrupts.Terminated
        interrupts.report_and_exit(interrupts.exit_status(interrupt),
                                   hard=getattr(main, "__module__", None) == "__main__")
    except Exception as error:
        from helpers.core.faults import describe_fault

        message = describe_fault(error)
        if message is None:
            raise
        _fail(message)
    sys.exit(status or 0)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
