"""User-facing errors and the command-line wrapper that reports them in one line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


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


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a script's ``main`` and turn bad input into one line on stderr and exit status 2.

    Args:
        main: The script's entry point; it receives ``argv`` and returns an exit status or None.
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    try:
        status = main(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
