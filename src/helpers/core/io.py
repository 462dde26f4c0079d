"""Atomic output files and guarded raster/vector reading.

Every output is written under a temporary name in its destination folder and renamed
into place only when complete, so an interrupted step never leaves a truncated file that
a later step would trust. Read errors are turned into :class:`InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from helpers.core.errors import InputError
from helpers.core.faults import PARTIAL_RE, note_raster, rebuild_hint

RASTER_ERRORS: tuple[type[Exception], ...] = (RasterioError, CPLE_BaseError)
"""What rasterio raises for GDAL failures (``CPLE_*`` errors are not :class:`RasterioError`)."""

GTIFF_PROFILE: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "zstd",  # as small as deflate here, 4x faster to write and 1.7x faster to read
    "predictor": 2,
    "zstd_level": 1,
    "interleave": "band",  # reading one band (B01, or B03+B08 for NDWI) does not decode the others
    "num_threads": "all_cpus",  # parallel compression; the bytes are the same as single-threaded
    "BIGTIFF": "IF_SAFER",
}
"""Creation options of the pipeline's GeoTIFFs (lossless, tiled, fast to write)."""

COG_OPTIONS: dict[str, Any] = {
    "compress": "ZSTD",
    "level": 1,
    "predictor": "YES",  # floating-point predictor for float32 maps, horizontal differencing for integers
    "blocksize": 256,
    "overviews": "FORCE_USE_EXISTING",  # built on the staging file by create_cog
    # single-threaded: ALL_CPUS made the copy slower on a loaded 2-core machine (0.52 s against 0.30 s
    # for the demo's 9-band probabilities, 3.9 s against 3.4 s for an 8-band 2828x3500 scene)
    "bigtiff": "IF_SAFER",
}
"""Creation options of GDAL's COG driver for the maps a person opens in a GIS or streams over HTTP."""

Categories = Mapping[int, tuple[str, str]]
"""Named, coloured values of a categorical map: ``{value: (name, "#rrggbb")}``, in legend order."""


def _partial_name(final: Path) -> Path:
    """A staging name unique to this process and this call.

    The pid lets :func:`remove_stale_partials` tell a dead writer's leftovers from a live one's;
    the random token keeps two writers of one process (or a reused pid) from sharing a name. The
    form is :data:`helpers.core.faults.PARTIAL_RE`, which error messages use to show the final name.
    """
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


def remove_stale_partials(folder: str | Path, depth: int = 2) -> list[Path]:
    """Remove the temporary files and folders of :func:`atomic_path` left by dead processes.

    A writer killed outright (SIGKILL, power loss) cannot clean up; its partials would pile up
    and waste space. Only names carrying the pid of a process that no longer exists on this
    machine are removed, so a concurrent live writer is never disturbed. The walk is bounded
    (``folder`` and ``depth`` levels of sub-folders, partial folders not entered), so that it
    stays cheap next to folders of many thousands of tiles.

    Args:
        folder: Where to look.
        depth: How many levels of sub-folders to visit below ``folder``.

    Returns:
        The removed paths.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing or unreadable: nothing to clean
        return removed
    for entry in entries:
        match = PARTIAL_RE.match(entry.name)
        if match and not _pid_alive(int(match["pid"])):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        elif depth > 0 and not match and entry.is_dir(follow_symlinks=False):
            removed += remove_stale_partials(entry.path, depth - 1)
    return removed


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    On any exception the temporary file (or folder) is removed and ``final`` is untouched;
    scripts run under :func:`helpers.core.errors.run_cli` turn SIGTERM into such an exception too.
    The temporary name is unique per process and per call, so two writers of one file never
    share it (the last rename wins, and each result is complete).

    Args:
        final: Destination path.

    Yields:
        The temporary path to write to.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(final)
    try:
        yield partial
        if final.is_dir() and partial.is_dir():
            shutil.rmtree(final)
        os.replace(partial, final)
    except BaseException:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write a JSON file (indented, keys in insertion order) atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    """Open a raster for reading; a missing or corrupt file becomes an :class:`InputError`.

    Args:
        path: File path or GDAL path (``/vsizip/...``).

    Yields:
        The open dataset.
    """
    name = str(path)
    if not name.startswith("/vsi") and not Path(name).is_file():
        raise InputError(f"{name}: file not found")
    try:
        dataset = rasterio.open(name)
    except RASTER_ERRORS as error:
        raise InputError(f"{name}: not a readable raster ({_first_line(error)}){_hint(name)}") from None
    try:
        yield dataset
    except RASTER_ERRORS as error:  # a damaged block read inside the caller's ``with``: name the file
        note_raster(error, name)
        raise
    finally:
        dataset.close()


def read_raster(path: str | Path, band: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a whole raster (or one band) with its profile.

    Args:
        path: The raster file.
        band: 1-based band index; None reads every band.

    Returns:
        The array (2-D for one band, 3-D otherwise) and the dataset profile.
    """
    with open_raster(path) as src:
        try:
            data = src.read(band) if band is not None else src.read()
        except RASTER_ERRORS as error:
            raise InputError(f"{path}: corrupt raster data ({_first_line(error)}){_hint(path)}") from None
        return data, dict(src.profile)


def raster_profile(shape: tuple[int, int], count: int, dtype: str, profile: dict[str, Any]) -> dict[str, Any]:
    """Creation options of a pipeline GeoTIFF on the grid (crs, transform, nodata) of ``profile``.

    Rasters smaller than one 256-px block are written untiled.
    """
    out = {**GTIFF_PROFILE, **{k: profile[k] for k in ("crs", "transform") if k in profile}}
    out.update(count=count, height=shape[0], width=shape[1], dtype=np.dtype(dtype).name, nodata=profile.get("nodata"))
    if shape[0] < 256 or shape[1] < 256:
        out.update(tiled=False)
        out.pop("blockxsize")
        out.pop("blockysize")
    return out


def colour_map(categories: Categories) -> dict[int, tuple[int, int, int, int]]:
    """The colour table of ``categories`` as rasterio's ``write_colormap`` takes it (opaque RGBA)."""
    return {int(value): (*(int(colour[i:i + 2], 16) for i in (1, 3, 5)), 255)
            for value, (_, colour) in categories.items()}


def category_names_xml(categories: Categories) -> str:
    """A GDAL PAM sidecar (``.aux.xml``) naming the values of band 1.

    GeoTIFF has no tag for category names, so GDAL keeps them in this sidecar and rasterio has no
    call to write it; GDAL (and QGIS through it) reads the list back as the band's category names,
    entry ``i`` naming value ``i`` (values without a category get an empty name).
    """
    names = [""] * (max(categories) + 1)
    for value, (name, _) in categories.items():
        names[int(value)] = name
    lines = "\n".join(f"      <Category>{escape(name)}</Category>" for name in names)
    return (f'<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n{lines}\n    </CategoryNames>\n'
            "  </PAMRasterBand>\n</PAMDataset>\n")


def aux_path(path: str | Path) -> Path:
    """GDAL's PAM sidecar of a raster (``<name>.aux.xml``)."""
    path = Path(path)
    return path.with_name(path.name + ".aux.xml")


@contextlib.contextmanager
def create_raster(path: str | Path, shape: tuple[int, int], count: int, dtype: str, profile: dict[str, Any],
                  descriptions: list[str] | None = None, tags: dict[str, Any] | None = None,
                  categories: Categories | None = None) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a new GeoTIFF for writing by windows; it appears at ``path`` only when complete.

    Args:
        path: Destination file.
        shape: (rows, cols).
        count: Number of bands.
        dtype: Pixel type.
        profile: Rasterio profile giving crs and transform (and nodata, if any).
        descriptions: Optional band descriptions.
        tags: Optional dataset tags.
        categories: For a one-band uint8/uint16 map of categories (classes, change, clouds): the
            colour table is written into the GeoTIFF and the category names into its
            ``.aux.xml`` sidecar, so that a GIS shows the map in these colours with a legend
            right away. The sidecar is in place before the GeoTIFF appears.

    Yields:
        The open dataset (written under a temporary name; on an exception it is removed).
    """
    if categories is not None and (count != 1 or np.dtype(dtype) not in (np.uint8, np.uint16)):
        raise ValueError(f"{path}: a colour table needs one uint8 or uint16 band, not {count} x {dtype}")
    try:
        with atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **raster_profile(shape, count, dtype, profile)) as dst:
                _describe(dst, descriptions, tags)
                if categories:
                    dst.write_colormap(1, colour_map(categories))
                yield dst
            if categories:
                write_text_atomic(aux_path(path), category_names_xml(categories))
    except RASTER_ERRORS as error:  # e.g. a full disk: name the destination, not the temporary name
        note_raster(error, path, writing=True)
        raise


def _describe(dst: rasterio.io.DatasetWriter, descriptions: list[str] | None, tags: dict[str, Any] | None) -> None:
    for i, text in enumerate(descriptions or [], start=1):
        dst.set_band_description(i, text)
    if tags:
        dst.update_tags(**{k: str(v) for k, v in tags.items()})


def write_raster(path: str | Path, data: np.ndarray, profile: dict[str, Any], descriptions: list[str] | None = None,
                 tags: dict[str, Any] | None = None, categories: Categories | None = None) -> None:
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF, atomically.

    Args:
        path: Destination file.
        data: The pixels.
        profile: Rasterio profile with at least crs and transform.
        descriptions: Optional band descriptions.
        tags: Optional dataset tags.
        categories: Colour table and category names of a one-band map (see :func:`create_raster`).
    """
    array = data[np.newaxis] if data.ndim == 2 else data
    with create_raster(path, array.shape[1:], array.shape[0], array.dtype.name, profile, descriptions, tags,
                       categories) as dst:
        dst.write(array)


def overview_count(shape: tuple[int, int], smallest: int = 256) -> int:
    """Halvings until the longer side fits in ``smallest`` px (at least one, so every COG has overviews)."""
    return max(1, math.ceil(math.log2(max(*shape, 1) / smallest)))


@contextlib.contextmanager
def create_cog(path: str | Path, shape: tuple[int, int], count: int, dtype: str, profile: dict[str, Any],
               descriptions: list[str] | None = None,
               tags: dict[str, Any] | None = None) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a new Cloud Optimized GeoTIFF for writing by windows; it appears at ``path`` only when complete.

    GDAL's COG driver writes only by copying a whole dataset, so the windows go to a staging
    GeoTIFF beside ``path``. When the block closes, averaged overviews down to one 256-px tile
    (an overview pixel of a probability map is the mean probability) are built in the staging
    file, which is then copied into a COG (tiled, ZSTD, :data:`COG_OPTIONS`) and removed. A GIS
    draws the map at any zoom from its overviews; a reader over HTTP fetches only the tiles it needs.

    The staging file is uncompressed: compressing it and building the overviews in the COG copy
    (GDAL's default) took twice as long on the demo, at the price of the uncompressed size on
    disk while the block is open (4 bytes per pixel and band: 317 MB for 8 classes on a
    2828x3500 scene).

    Args:
        path: Destination file.
        shape: (rows, cols).
        count: Number of bands.
        dtype: Pixel type.
        profile: Rasterio profile giving crs and transform (and nodata, if any).
        descriptions: Optional band descriptions (copied into the COG).
        tags: Optional dataset tags (copied into the COG).

    Yields:
        The open staging dataset (on an exception nothing is left behind).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = _partial_name(final)  # a dead writer's staging file is removed by remove_stale_partials
    try:
        options = {key: value for key, value in raster_profile(shape, count, dtype, profile).items()
                   if key not in ("predictor", "zstd_level")} | {"compress": "none"}
        with rasterio.open(staging, "w", **options) as dst:
            _describe(dst, descriptions, tags)
            yield dst
            dst.build_overviews([2 ** i for i in range(1, overview_count(shape) + 1)], Resampling.average)
        with atomic_path(final) as tmp:
            rasterio.shutil.copy(staging, tmp, driver="COG", **COG_OPTIONS)
    except RASTER_ERRORS as error:
        note_raster(error, path, writing=True)
        raise
    finally:
        staging.unlink(missing_ok=True)


def _hint(path: str | Path) -> str:
    hint = rebuild_hint(path)
    return f"; {hint}" if hint else ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
