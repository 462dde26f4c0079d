"""One-line descriptions of faults that are not bad input: damaged rasters, unwritable folders.

:func:`helpers.core.errors.run_cli` reports :class:`~helpers.core.errors.InputError` itself; anything else
that escapes a script is passed to :func:`describe_fault`, which turns the faults a user can act
on (a damaged intermediate raster, a read-only or full disk) into the same ``<file>: <problem>``
form, naming the file and the step that rebuilds it. Faults it does not know stay tracebacks:
those are bugs, and their traceback is what a bug report needs.

This module imports only the standard library: it is loaded on the error path of every script,
including scripts that never touched rasterio.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

REPORTED_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENOTDIR, errno.EEXIST,
                          errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENOENT})
"""Errnos of an :class:`OSError` with a file name that are reported as one line (others are bugs)."""

_WRITE_SIGNALS = ("read-only file system", "no space left", "disk quota", "permission denied",
                  "attempt to create", "failed to write", "write failed", "cannot create", "unable to write")
_VAGUE = ("see previous exception",)
_RASTER_FILE = re.compile(r"(?P<path>(?:/vsi\w+/)?[^\s,:'\"`()]*\.(?:tiff?|jp2|vrt|img)"
                          r"(?:\.\d+(?:-[0-9a-z]+)?\.partial)?)(?![\w.])", re.IGNORECASE)
PARTIAL_RE = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)(?:-[0-9a-z]+)?\.partial(?:\..+)?$")
"""Temporary names of :func:`helpers.core.io.atomic_path` (``.<name>.<pid>-<token>.partial``, plus sidecars
such as ``.aux.xml``); the older ``.<name>.<pid>.partial`` form matches too."""
_PARTIAL = re.compile(r"(?<![^/\s'\"`])\.(?P<final>[^/\s'\"`]+?)\.\d+(?:-[0-9a-z]+)?\.partial(?![\w.])")
_TILE_FOLDER = re.compile(r"_tiles_\(\d+x\d+\)$")
_DATED = re.compile(r"^(?P<date>\d{8})_(?P<level>L1C|L2A)_")


def note_raster(error: BaseException, path: str | Path, writing: bool = False) -> None:
    """Attach the raster that an error happened on, unless an inner ``with`` already did.

    GDAL's read errors often say only "Read failed"; the context manager that opened the file
    knows which file it was and records it here for :func:`describe_fault`.

    Args:
        error: The rasterio error passing through.
        path: The dataset's path (the final one, not a temporary name).
        writing: The dataset was open for writing.
    """
    if getattr(error, "raster_path", None) is None:
        error.raster_path = str(path)  # type: ignore[attr-defined]
        error.raster_writing = writing  # type: ignore[attr-defined]


def rebuild_hint(path: str | Path) -> str | None:
    """What to do about a damaged file, from where it lies in the data layout.

    Args:
        path: The damaged file.

    Returns:
        ``rebuild it with <script and arguments> --force`` for a pipeline product, a reminder
        that a raw input must be replaced, or None for a file outside both.
    """
    path = Path(str(path).removeprefix("/vsizip"))
    parts = path.parts
    if "processed" not in parts:
        return "it is a raw input: replace it with an intact copy" if "raw" in parts else None
    name, parent = path.name, path.parent.name
    dated = _DATED.match(name)
    command = None
    if dated and name.endswith("_all_bands.tif"):
        command = f"01_clip_sentinel.py {dated['date']} {dated['level']}"
    elif name == "gt_rasterized.tif":
        command = "02_rasterize_shapefile.py"
    elif name == "gt.tif" or name.startswith("gt_water_masked_"):
        command = "02b_restrict_water_area.py"
    elif name in ("area.tif", "extra_area.tif"):
        command = "03_create_area_tif.py"
    elif dated and name.endswith("_merged.tif"):
        use = " NEW" if "classification_data" in parts else ""
        command = f"04_merge_tifs.py {dated['date']} {dated['level']}{use}"
    elif dated and _TILE_FOLDER.search(parent):
        command = f"05_split_into_tiles.py {dated['date']} {dated['level']}"
    if command is None:
        return "rebuild it by rerunning the step that wrote it with --force"
    return f"rebuild it with {command} --force"


def describe_fault(error: BaseException) -> str | None:
    """The one-line report of a fault, without the ``error:`` prefix (None: not a known fault).

    Args:
        error: What escaped the script's ``main``.

    Returns:
        ``<file>: <problem>`` for a damaged or unwritable raster and for an :class:`OSError` of a
        file that cannot be written or read; None otherwise.
    """
    if _is_raster_error(error):
        return _describe_raster_error(error)
    if isinstance(error, OSError):
        return _describe_os_error(error)
    return None


def _is_raster_error(error: BaseException) -> bool:
    """A rasterio or GDAL (``CPLE_*``) error; rasterio is not imported here if nothing loaded it."""
    errors = sys.modules.get("rasterio.errors")
    gdal = sys.modules.get("rasterio._err")
    return bool((errors and isinstance(error, errors.RasterioError))
                or (gdal and isinstance(error, gdal.CPLE_BaseError)))


def _describe_os_error(error: OSError) -> str | None:
    problem = error.strerror or str(error)
    if error.filename is None:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return f"output: cannot write ({problem})"
        return None
    if error.errno not in REPORTED_ERRNOS:
        return None
    path = _display_path(error.filename)
    if error.errno in (errno.EACCES, errno.EPERM) and os.path.exists(path) and not os.access(path, os.R_OK):
        return f"{path}: cannot read ({problem})"
    if error.errno == errno.ENOENT:  # a file vanished under a step (another process removed it)
        return f"{path}: {problem}"
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{path}: cannot write ({problem}: a file is where a folder is needed)"
    return f"{path}: cannot write ({problem})"


def _describe_raster_error(error: BaseException) -> str:
    messages = [_first_line(e) for e in _chain(error)]
    useful = [m for m in messages if not any(v in m.lower() for v in _VAGUE)] or messages
    noted = next((e for e in _chain(error) if getattr(e, "raster_path", None)), None)
    noted_path: str | None = noted.raster_path if noted is not None else None  # type: ignore[attr-defined]
    named = next((m["path"] for text in messages if (m := _RASTER_FILE.search(text))), None)
    if noted_path and (any(noted_path in m for m in messages) or (named and noted_path.endswith(named))):
        named = noted_path  # the full name, even where a space cut the one found in the message
    path = named or noted_path
    message = _PARTIAL.sub(r"\g<final>", useful[0])  # GDAL names the temporary file of an atomic write
    for prefix in ((path, Path(path).name) if path else ()):
        if message.startswith((f"{prefix}, ", f"{prefix}: ")):
            message = message[len(prefix) + 2:]  # "x.tif, band 2: ..." -> "band 2: ..."
            break
    writing = (any(s in m.lower() for m in messages for s in _WRITE_SIGNALS)
               or type(error).__name__ == "CPLE_NoWriteAccessError"
               or (path == noted_path and noted is not None and noted.raster_writing))  # type: ignore[attr-defined]
    shown = _display_path(path) if path else "raster"
    if writing:
        return f"{shown}: cannot write ({message})"
    hint = rebuild_hint(shown) if path else None
    return f"{shown}: damaged or unreadable raster ({message}); {hint or 'rebuild it with --force'}"


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes, outermost first (bounded: chains can be cyclic)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def final_of_partial(path: str | os.PathLike[str]) -> Path | None:
    """The destination that a temporary atomic-write name stands for (None for other names)."""
    path = Path(path)
    match = PARTIAL_RE.match(path.name)
    return path.with_name(match["final"]) if match else None


def _display_path(name: str | os.PathLike[str]) -> str:
    """A temporary atomic-write name shown as the file it was going to become."""
    final = final_of_partial(name)
    return str(final if final is not None else name)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
