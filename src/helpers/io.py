"""Atomic output files and guarded raster/vector reading.

Every output is written under a temporary name in its destination folder and renamed
into place only when complete, so an interrupted step never leaves a truncated file that
a later step would trust. Read errors are turned into :class:`InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from helpers.errors import InputError

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


def _partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    On any exception the temporary file (or folder) is removed and ``final`` is untouched.

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
    except RasterioError as error:
        raise InputError(f"{name}: not a readable raster ({_first_line(error)})") from None
    try:
        yield dataset
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
        except RasterioError as error:
            raise InputError(f"{path}: corrupt raster data ({_first_line(error)})") from None
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


@contextlib.contextmanager
def create_raster(path: str | Path, shape: tuple[int, int], count: int, dtype: str, profile: dict[str, Any],
                  descriptions: list[str] | None = None,
                  tags: dict[str, Any] | None = None) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a new GeoTIFF for writing by windows; it appears at ``path`` only when complete.

    Args:
        path: Destination file.
        shape: (rows, cols).
        count: Number of bands.
        dtype: Pixel type.
        profile: Rasterio profile giving crs and transform (and nodata, if any).
        descriptions: Optional band descriptions.
        tags: Optional dataset tags.

    Yields:
        The open dataset (written under a temporary name; on an exception it is removed).
    """
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **raster_profile(shape, count, dtype, profile)) as dst:
        if descriptions:
            for i, text in enumerate(descriptions, start=1):
                dst.set_band_description(i, text)
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
        yield dst


def write_raster(path: str | Path, data: np.ndarray, profile: dict[str, Any], descriptions: list[str] | None = None,
                 tags: dict[str, Any] | None = None) -> None:
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF, atomically.

    Args:
        path: Destination file.
        data: The pixels.
        profile: Rasterio profile with at least crs and transform.
        descriptions: Optional band descriptions.
        tags: Optional dataset tags.
    """
    array = data[np.newaxis] if data.ndim == 2 else data
    with create_raster(path, array.shape[1:], array.shape[0], array.dtype.name, profile, descriptions, tags) as dst:
        dst.write(array)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
