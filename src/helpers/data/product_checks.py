"""Integrity checks of a Sentinel-2 product before and while step 01 ingests it.

Damaged raw data must stop ingestion instead of turning into wrong pixels:

* **Zip members.** GDAL's ``/vsizip/`` reads members without checking their CRC-32, so a
  member with damaged bytes decodes to a wrong band without a word. Every member step 01 uses
  is therefore streamed once through :mod:`zipfile` (in chunks, nothing extracted to disk),
  which checks its CRC-32, before it is read through ``/vsizip/``.
* **Decoder messages.** GDAL reports some damage only as a warning (OpenJPEG's ``Stream does
  not end with EOC``) and returns the pixels it could make up; rasterio forwards such warnings
  to the ``rasterio._err`` and ``rasterio._env`` loggers. :class:`DecoderMessages` collects them
  during band reads so that the caller turns them into an error naming the file.
  JPEG 2000 code streams carry no checksum, though: bytes damaged inside a ``.jp2`` that is not
  in a zip are caught only where the decoder notices.
* **CRS and extent.** A band file whose CRS cannot be transformed to the study area's (a local,
  engineering CRS), or whose extent leaves out part of the AOI that the other bands cover.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyproj
import rasterio
from rasterio import warp
from rasterio.crs import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from helpers.core.errors import InputError
from helpers.core.io import RASTER_ERRORS, open_raster

CHUNK_BYTES = 1 << 20
"""Bytes read per call while checking a zip member's CRC-32."""
GDAL_LOGGERS = ("rasterio._err", "rasterio._env")
"""The loggers rasterio sends GDAL's (``CPLE_*``) warnings and errors to."""
_CPLE_PREFIX = re.compile(r"^CPLE_\w+(?: in [^:]*)?:\s*")


# ---------------------------------------------------------------------- zip members
@dataclass(frozen=True)
class ZipCheck:
    """What :func:`verify_zip_members` did.

    Attributes:
        members: Members checked.
        compressed_bytes: Their size in the zip.
        seconds: Wall time of the check.
    """

    members: int
    compressed_bytes: int
    seconds: float


def zip_members(archive: Path, gdal_paths: Sequence[str]) -> list[str]:
    """Member names of ``/vsizip/<archive>/<member>`` paths (other paths are left out)."""
    prefix = f"/vsizip/{archive}/"
    return [path[len(prefix):] for path in gdal_paths if path.startswith(prefix)]


def _check_member(archive: Path, member: str) -> int:
    """Stream one member to its end (zipfile checks the CRC-32 there); return its compressed size."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            info = zipped.getinfo(member)
            with zipped.open(info) as stream:
                while stream.read(CHUNK_BYTES):
                    pass
    except zipfile.BadZipFile as error:
        problem = "bad CRC-32" if "CRC" in str(error) else str(error)
        raise InputError(f"{archive}: damaged zip member {member} ({problem}); the product is corrupt: replace it "
                         f"with an intact copy") from None
    except (zlib.error, EOFError, OSError, NotImplementedError) as error:
        raise InputError(f"{archive}: damaged zip member {member} ({type(error).__name__}: {error}); the product "
                         f"is corrupt: replace it with an intact copy") from None
    return info.compress_size


def verify_zip_members(archive: Path, members: Sequence[str], workers: int | None = None) -> ZipCheck:
    """Check the CRC-32 of zip members by streaming them (no extraction to disk).

    Members are checked in parallel threads (zlib releases the GIL while it inflates and sums),
    each with its own handle on the archive.

    Args:
        archive: The zip file.
        members: Member names to check.
        workers: Threads (default: the number of CPUs, at most the number of members).

    Returns:
        What was checked and how long it took.

    Raises:
        InputError: Naming the archive and the first damaged member.
    """
    started = time.perf_counter()
    if not members:
        return ZipCheck(0, 0, 0.0)
    workers = max(1, min(len(members), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(lambda member: _check_member(archive, member), members))
    return ZipCheck(len(members), sum(sizes), time.perf_counter() - started)


# ---------------------------------------------------------------------- decoder messages
class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_CPLE_PREFIX.sub("", record.getMessage().strip()).splitlines()[0] or "GDAL warning")


class DecoderMessages:
    """The GDAL warnings and errors logged since the last :meth:`take` (see :func:`collect_gdal_messages`)."""

    def __init__(self, collector: _Collector) -> None:
        self._collector = collector

    def take(self) -> list[str]:
        """The messages collected so far, forgetting them."""
        messages, self._collector.messages = self._collector.messages, []
        return messages

    def raise_for(self, name: str) -> None:
        """Raise :class:`InputError` naming ``name`` if GDAL reported anything since the last call.

        Args:
            name: The band file that was being read.
        """
        messages = self.take()
        if messages:
            more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
            raise InputError(f"{name}: damaged band data, GDAL reported while decoding it: {messages[0]}{more}; "
                             f"replace the product with an intact copy")


@contextmanager
def collect_gdal_messages() -> Iterator[DecoderMessages]:
    """Collect GDAL's warnings and errors (as rasterio logs them) while the block runs.

    The handler is attached to rasterio's GDAL loggers, whose level is lowered to WARNING for
    the block if a user raised it. Records still reach the handlers a user configured; without
    any, Python's last-resort handler stays silent (a handler exists), so a warning becomes the
    caller's error line and not a stray line on stderr.

    Yields:
        The collected messages.
    """
    collector = _Collector()
    saved = []
    for name in GDAL_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
        logger.addHandler(collector)
    try:
        yield DecoderMessages(collector)
    finally:
        for logger, level in saved:
            logger.removeHandler(collector)
            logger.setLevel(level)


# ---------------------------------------------------------------------- CRS and extents
def describe_crs(crs: CRS) -> str:
    """``EPSG:32633``, or the kind and name of a CRS without a code (``Engineering CRS 'arbitrary'``)."""
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    try:
        parsed = pyproj.CRS.from_wkt(crs.to_wkt())
    except pyproj.exceptions.CRSError:
        return "an unrecognised CRS"
    return f"{parsed.type_name} {parsed.name!r}"


def band_footprints(band_files: Mapping[str, Sequence[str]], crs: CRS) -> dict[str, BaseGeometry]:
    """Per band, the union of its files' bounds in ``crs``.

    Raises:
        InputError: If a band file has no CRS, or one that cannot be transformed to ``crs``.
    """
    footprints = {}
    for band, paths in band_files.items():
        shapes = []
        for path in paths:
            with open_raster(path) as src:
                if src.crs is None:
                    raise InputError(f"{path}: raster has no CRS")
                try:
                    with rasterio.Env():  # rasterio's error handler: GDAL prints nothing to stderr itself
                        bounds = warp.transform_bounds(src.crs, crs, *src.bounds)
                except RASTER_ERRORS:
                    raise InputError(f"{path}: band file has the CRS {describe_crs(src.crs)}, which cannot be "
                                     f"transformed to the study area's {describe_crs(CRS.from_user_input(crs))} "
                                     f"(a local or engineering CRS has no link to map coordinates)") from None
                shapes.append(box(*bounds))
        footprints[band] = unary_union(shapes)
    return footprints


def check_band_extents(footprints: Mapping[str, BaseGeometry], band_files: Mapping[str, Sequence[str]],
                       aoi: BaseGeometry, resolution: float) -> float:
    """Refuse a band whose extent leaves out part of the AOI that the product covers.

    The bands of one product share one extent. A band file cut to a smaller one would leave
    its part of the AOI at 0 (no data) in that band only, a scene whose bands disagree.

    Args:
        footprints: Band -> footprint in the grid's CRS (:func:`band_footprints`).
        band_files: Band -> its files (the first is named in the message).
        aoi: The AOI in the grid's CRS.
        resolution: The grid's pixel size; a missing part narrower than one pixel is an edge
            effect (rounded bounds) and ignored.

    Returns:
        The share of the AOI that the product covers (0..1); the rest is no data.

    Raises:
        InputError: Naming the band file and the share of the covered AOI it leaves out.
    """
    covered = aoi.intersection(unary_union(list(footprints.values())))
    for band, footprint in footprints.items():
        missing = covered.difference(footprint)
        if not missing.buffer(-resolution / 2).is_empty:
            share = 100 * missing.area / covered.area
            raise InputError(f"{band_files[band][0]}: band {band} does not cover {share:.1f} % of the AOI that the "
                             f"product's other bands cover (its extent {_bounds_text(footprint)} is smaller); the "
                             f"bands of one product must share one extent: replace the band file")
    return covered.area / aoi.area if aoi.area else 0.0


def _bounds_text(geometry: BaseGeometry) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in geometry.bounds) + ")"
