"""Shared helpers of the benchmark scripts: child-process measurement, work folders, output lines.

Each measured piece of work runs in a freshly spawned child process, so its peak resident
set size (RSS) is its own and not the benchmark script's: the child reads its high-water
mark (``VmHWM`` in ``/proc/self/status``, or ``getrusage`` where that is missing) when the
work is done and sends it back with the wall time and the work's return value.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

MB = 1024 * 1024


@dataclass
class Measurement:
    """What one measured call in a child process gave.

    Attributes:
        value: The call's return value (pickled back from the child).
        seconds: Wall time of the call alone (not the child's start-up or imports).
        peak_mb: Peak RSS of the child over its whole life, in MiB (imports included).
        start_mb: RSS of the child just before the call (interpreter and imported libraries).
    """

    value: Any
    seconds: float
    peak_mb: float
    start_mb: float

    @property
    def work_mb(self) -> float:
        """Peak RSS above what the child held before the call."""
        return max(self.peak_mb - self.start_mb, 0.0)


def _status_mb(field: str) -> float | None:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB, None if unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (the peak so far where /proc is missing)."""
    value = _status_mb("VmRSS")
    return value if value is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    value = _status_mb("VmHWM")
    if value is not None:
        return value
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / MB if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux


def _child(conn: Connection, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Entry point of the measuring child: run ``func`` once and send back the figures."""
    try:
        start_mb = current_rss_mb()
        started = time.perf_counter()
        value = func(*args)
        seconds = time.perf_counter() - started
        conn.send(("ok", Measurement(value, seconds, peak_rss_mb(), start_mb)))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent, which re-raises
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def measure_in_child(func: Callable[..., Any], *args: Any) -> Measurement:
    """Run ``func(*args)`` in a fresh (spawned) child process and measure it.

    ``func`` must be a module-level function of an importable module (or of the script run as
    ``__main__``), and its arguments and return value must be picklable. The child starts from
    a new interpreter, so nothing of the parent's memory is counted in its peak.

    Args:
        func: The work to measure.
        *args: Its arguments.

    Returns:
        The measurement.

    Raises:
        RuntimeError: If the work raised (the child's traceback is in the message) or the child died.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, func, args))
    process.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"measuring child for {func.__name__} died (exit code {process.exitcode})") from None
    finally:
        receiver.close()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{func.__name__} failed in the measuring child:\n{payload}")
    return payload


def timed(func: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Call ``func(*args)`` in this process; return its value and wall time in seconds."""
    started = time.perf_counter()
    value = func(*args)
    return value, time.perf_counter() - started


@contextlib.contextmanager
def work_folder(path: str | Path | None, prefix: str) -> Iterator[Path]:
    """The folder for generated inputs and outputs.

    Args:
        path: A folder to use and keep (created if missing), or None for a temporary one.
        prefix: Name prefix of the temporary folder.

    Yields:
        The folder; a temporary one is deleted on exit, even after an error.
    """
    if path is not None:
        folder = Path(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def folder_size_mb(path: Path) -> float:
    """Size of a file, or of every file under a folder, in MiB."""
    if path.is_file():
        return path.stat().st_size / MB
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MB


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as a plain text table, the first column left-aligned and the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


def fmt_seconds(seconds: float) -> str:
    """Seconds with a precision that suits their size."""
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def _result_value(value: object) -> str:
    """One RESULT value: booleans as 1/0, floats to 4 significant digits, text without spaces."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    text = str(value)
    if not text or any(ch.isspace() or ch == "=" for ch in text):
        raise ValueError(f"RESULT values must be non-empty and free of spaces and '=': {text!r}")
    return text


def result_line(figures: dict[str, object]) -> str:
    """The machine-readable last line: ``RESULT key=value key=value ...`` (booleans as 1/0)."""
    return "RESULT " + " ".join(f"{key}={_result_value(value)}" for key, value in figures.items())
