"""Read a band's category names through GDAL itself (rasterio has no call for them).

The GDAL library bundled in rasterio's wheel is called with ctypes, so the tests see what GDAL
(and QGIS, which reads them the same way) makes of the ``.aux.xml`` sidecar, not what our own
writer meant to write.
"""

from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import rasterio


def _gdal() -> ctypes.CDLL:
    libs = os.path.join(os.path.dirname(rasterio.__file__), os.pardir, "rasterio.libs")
    found = sorted(glob.glob(os.path.join(libs, "libgdal*.so*")))
    lib = ctypes.CDLL(found[0]) if found else ctypes.CDLL(None)  # already loaded by rasterio's extensions
    lib.GDALOpen.restype = ctypes.c_void_p
    lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.GDALGetRasterBand.restype = ctypes.c_void_p
    lib.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALGetRasterColorTable.restype = ctypes.c_void_p
    lib.GDALGetRasterColorTable.argtypes = [ctypes.c_void_p]
    lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    return lib


def category_names(path: str | Path, band: int = 1) -> list[str]:
    """The category names GDAL reports for ``band`` of ``path`` (empty list: none).

    The colour table is asked for first, as QGIS does: GDAL 3.10's GeoTIFF driver loads the
    ``.aux.xml`` sidecar lazily and ``GDALGetRasterCategoryNames`` alone does not trigger it.
    """
    lib = _gdal()
    with rasterio.Env():  # drivers registered
        dataset = lib.GDALOpen(str(path).encode(), 0)
        if not dataset:
            raise OSError(f"{path}: GDAL cannot open it")
        try:
            handle = lib.GDALGetRasterBand(dataset, band)
            lib.GDALGetRasterColorTable(handle)
            names = lib.GDALGetRasterCategoryNames(handle)
            found: list[str] = []
            while names and names[len(found)] is not None:
                found.append(names[len(found)].decode())
            return found
        finally:
            lib.GDALClose(dataset)
