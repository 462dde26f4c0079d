"""Sentinel-2 products: finding them, reading their metadata, and ingesting them.

A product is a ``.SAFE`` folder, a zipped ``.SAFE`` (read in place through GDAL's
``/vsizip/``, never unpacked), or a flat folder of per-band files named ``*_<band>.jp2|tif``.
Ingestion resamples every band to the scene grid with nearest neighbour (as the original's
``gdalbuildvrt -tr 10 10``), sets pixels outside the AOI to 0 (``gdalwarp -cutline``) and
writes one uint16 GeoTIFF block by block, so memory does not grow with the scene size.
Damaged raw data stops ingestion before anything is written (see :mod:`helpers.data.product_checks`):
zip members are checked against their CRC-32 first, and a warning or error that GDAL reports
while decoding a band is an error naming the band file.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio import warp
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from tqdm import tqdm

from helpers.core.errors import InputError
from helpers.core.grid import SceneGrid
from helpers.core.io import GTIFF_PROFILE, RASTER_ERRORS, atomic_path
from helpers.data.product_checks import (
    ZipCheck,
    band_footprints,
    check_band_extents,
    collect_gdal_messages,
    verify_zip_members,
    zip_members,
)

ESA_BAND_IDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
"""Band order of ``band_id`` attributes in the product metadata (0 = B01 ... 8 = B8A ...)."""

SPECTRAL_BANDS = frozenset(ESA_BAND_IDS)
OFFSET_BASELINE = 4.0
"""Processing baseline from which products carry DN = reflectance * 10000 + 1000."""
DEFAULT_OFFSET = -1000
OFFSET_START_DATE = "20220125"
"""First sensing date of products with baseline >= 04.00 (and so the +1000 offset), YYYYMMDD."""
INGEST_CACHE_MB = 256
"""GDAL block-cache limit while ingesting, in MB."""

_BAND_FILE_RE = re.compile(
    r"(?:^|_)(?:MSK_)?(B0[1-9]|B1[0-2]|B8A|AOT|WVP|SCL|CLDPRB|SNWPRB|CLD|SNW)(?:_(\d+)m)?\.(?:jp2|tiff?)$",
    re.IGNORECASE,
)
_ALIASES = {"CLDPRB": "CLD", "SNWPRB": "SNW"}
_BASELINE_IN_NAME_RE = re.compile(r"_N(\d{2})(\d{2})_")


@dataclass
class ProductMetadata:
    """What the pipeline uses from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` (or the name).

    Attributes:
        sensing_time: PRODUCT_START_TIME, if known.
        processing_baseline: e.g. 4.0, if known.
        offsets: Additive radiometric offset per band (``RADIO_ADD_OFFSET``/``BOA_ADD_OFFSET``).
        source: Where the values came from.
    """

    sensing_time: str | None = None
    processing_baseline: float | None = None
    offsets: dict[str, int] = field(default_factory=dict)
    source: str = "none"

    def offset_for(self, band: str) -> int:
        """Offset to add to the DN of a band (0 for baselines before 04.00 and non-spectral layers)."""
        if band not in SPECTRAL_BANDS or self.processing_baseline is None or self.processing_baseline < OFFSET_BASELINE:
            return 0
        return self.offsets.get(band, DEFAULT_OFFSET)


@dataclass
class Product:
    """A located Sentinel-2 product.

    Attributes:
        path: The ``.SAFE`` folder, ``.zip`` file or band folder.
        kind: "safe", "zip" or "folder".
        band_files: Band name -> GDAL paths of the finest-resolution files (several granules possible).
        metadata: Parsed metadata.
    """

    path: Path
    kind: str
    band_files: dict[str, list[str]]
    metadata: ProductMetadata


def find_product(folder: Path, date: str) -> Path:
    """Find the product of a date in a level folder (its name contains the ``YYYYMMDD`` label).

    Raises:
        InputError: If the folder is missing, or no or several products match.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: Sentinel-2 folder not found")
    matches = sorted(p for p in folder.iterdir() if date in p.name and not p.name.startswith("."))
    matches = [p for p in matches if p.is_dir() or p.suffix.lower() == ".zip"]
    folders = [p for p in matches if p.is_dir()]
    if len(matches) > 1 and len(folders) == 1 and all(
        p == folders[0] or p.stem == folders[0].name or p.stem == folders[0].stem for p in matches
    ):
        matches = folders  # an unpacked .SAFE beside its own zip: use the folder
    if not matches:
        raise InputError(f"{folder}: no product for date {date} (expected a .SAFE folder, .zip or band folder "
                         f"whose name contains {date})")
    if len(matches) > 1:
        raise InputError(f"{folder}: several products match date {date}: {', '.join(p.name for p in matches)}")
    return matches[0]


def open_product(path: Path, bands: Sequence[str]) -> Product:
    """Locate the band files and metadata of a product.

    Args:
        path: ``.SAFE`` folder, zipped ``.SAFE`` or folder of band files.
        bands: Band names that must be present.

    Raises:
        InputError: If a band is missing or the zip is unreadable.
    """
    if path.is_file() and path.suffix.lower() == ".zip":
        kind = "zip"
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                mtd_xml = _read_zip_metadata(archive, members)
        except (zipfile.BadZipFile, OSError) as error:
            raise InputError(f"{path}: not a readable zip file ({error})") from None
        candidates = [(m, f"/vsizip/{path}/{m}") for m in members]
    elif path.is_dir():
        kind = "safe" if path.suffix.upper() == ".SAFE" or (path / "GRANULE").is_dir() else "folder"
        files = sorted(p for p in path.rglob("*") if p.is_file())
        candidates = [(str(p.relative_to(path)), str(p)) for p in files]
        mtd = [p for p in files if p.name in ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")]
        mtd_xml = min(mtd, key=lambda p: len(p.parts)).read_bytes() if mtd else None
    else:
        raise InputError(f"{path}: not a .SAFE folder, .zip file or folder of band files")

    band_files = _select_band_files(candidates, kind)
    missing = [b for b in bands if b not in band_files]
    if missing:
        raise InputError(f"{path}: band file(s) not found: {', '.join(missing)}")
    metadata = parse_metadata(mtd_xml, path.name) if mtd_xml is not None else metadata_from_name(path.name)
    return Product(path, kind, {b: band_files[b] for b in bands}, metadata)


def _read_zip_metadata(archive: zipfile.ZipFile, members: list[str]) -> bytes | None:
    mtd = [m for m in members if m.rsplit("/", 1)[-1] in ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")]
    return archive.read(min(mtd, key=lambda m: m.count("/"))) if mtd else None


def _select_band_files(candidates: list[tuple[str, str]], kind: str) -> dict[str, list[str]]:
    """Group files by band and keep, per band, the finest resolution (all granules of it)."""
    found: dict[str, dict[int, list[str]]] = {}
    for relative, gdal_path in candidates:
        parts = relative.replace("\\", "/").split("/")
        if kind in ("safe", "zip") and not ({"IMG_DATA", "QI_DATA"} & set(parts) and "GRANULE" in parts):
            continue  # DATASTRIP, previews, auxiliary data
        match = _BAND_FILE_RE.search(parts[-1])
        if not match:
            continue
        band = _ALIASES.get(match.group(1).upper(), match.group(1).upper())
        if parts[-1].upper().startswith("MSK_") and band not in ("CLD", "SNW"):
            continue  # per-band quality masks of baseline >= 04.00 (MSK_DETFOO_B01.jp2, MSK_QUALIT_B01.jp2)
        resolution = int(match.group(2)) if match.group(2) else 0
        found.setdefault(band, {}).setdefault(resolution, []).append(gdal_path)
    return {band: by_res[min(by_res)] for band, by_res in found.items()}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_metadata(xml: bytes, product_name: str = "") -> ProductMetadata:
    """Parse the product metadata XML (L1C or L2A).

    Args:
        xml: Content of ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``.
        product_name: Product name, the fallback for the processing baseline.

    Raises:
        InputError: If the XML is malformed.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise InputError(f"{product_name}: product metadata XML is malformed ({error})") from None
    meta = ProductMetadata(source="metadata XML")
    for element in root.iter():
        tag = _local(element.tag)
        text = (element.text or "").strip()
        if tag == "PRODUCT_START_TIME" and text:
            meta.sensing_time = text
        elif tag == "PROCESSING_BASELINE" and text:
            try:
                meta.processing_baseline = float(text)
            except ValueError:
                raise InputError(f"{product_name}: PROCESSING_BASELINE '{text}' is not a number") from None
        elif tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and text:
            band_id = int(element.get("band_id", "-1"))
            if 0 <= band_id < len(ESA_BAND_IDS):
                meta.offsets[ESA_BAND_IDS[band_id]] = int(float(text))
    if meta.processing_baseline is None:
        meta.processing_baseline = metadata_from_name(product_name).processing_baseline
    return meta


def metadata_from_name(product_name: str) -> ProductMetadata:
    """Metadata that can be read off a product name (the ``_Nxxyy_`` processing baseline)."""
    match = _BASELINE_IN_NAME_RE.search(product_name)
    if not match:
        return ProductMetadata()
    return ProductMetadata(processing_baseline=int(match.group(1)) + int(match.group(2)) / 100, source="product name")


def declare_baseline(metadata: ProductMetadata, baseline: str) -> ProductMetadata:
    """Metadata with the processing baseline a config declares (``[sentinel.baselines]``).

    The declared value wins over the metadata and the product name: it is how a user fixes a
    product (e.g. a flat band folder) whose baseline cannot be read off it.

    Args:
        metadata: What was read from the product.
        baseline: The declared baseline, e.g. "05.09".
    """
    return replace(metadata, processing_baseline=float(baseline), source="config [sentinel.baselines]")


def sensing_date(metadata: ProductMetadata, date: str) -> str:
    """The product's sensing date as YYYYMMDD: from its metadata, else the date label it was found by."""
    match = re.match(r"(\d{4})-?(\d{2})-?(\d{2})", metadata.sensing_time or "")
    return "".join(match.groups()) if match else date


def unknown_baseline_warning(product: Product, date: str, config_source: object) -> str | None:
    """A warning for a product that may carry the +1000 offset although nothing says so.

    Products sensed from 2022-01-25 on have baseline >= 04.00 and DN = reflectance x 10000 +
    1000. Without a known baseline the offset cannot be removed, and such a date would sit
    1000 DN above every older date; the user has to declare the baseline.

    Args:
        product: The located product (its metadata after any declared baseline).
        date: The date label (YYYYMMDD) it was found by.
        config_source: The config file, named in the message.

    Returns:
        The warning, or None when the baseline is known or the product is older.
    """
    if product.metadata.processing_baseline is not None or sensing_date(product.metadata, date) < OFFSET_START_DATE:
        return None
    return (f"warning: {product.path.name}: processing baseline unknown for a product sensed on or after "
            f"2022-01-25; its +1000 radiometric offset is NOT removed. Declare it in {config_source} as "
            f'[sentinel.baselines] "{date}" = "05.09" (the value from the product\'s metadata)')


# ---------------------------------------------------------------------- ingestion
def product_footprint(product: Product, crs: object) -> BaseGeometry:
    """Union of the band files' bounds in ``crs``."""
    return unary_union(list(band_footprints(product.band_files, crs).values()))


def verify_product(product: Product, bands: Sequence[str]) -> ZipCheck:
    """Check the CRC-32 of the zip members that ingestion will read (a no-op for other products).

    Raises:
        InputError: Naming the zip and its first damaged member.
    """
    if product.kind != "zip":
        return ZipCheck(0, 0, 0.0)
    paths = [path for band in bands for path in product.band_files[band]]
    return verify_zip_members(product.path, zip_members(product.path, paths))


def _aligned_factor(src: rasterio.DatasetReader, grid: SceneGrid) -> int | None:
    """Integer upsampling factor if ``src`` lies on a coarser version of ``grid``, else None."""
    if src.crs != grid.crs:
        return None
    st, gt = src.transform, grid.transform
    if st.b != 0 or st.d != 0 or st.e != -st.a:
        return None
    factor = st.a / gt.a
    if factor < 1 or abs(factor - round(factor)) > 1e-9:
        return None
    for offset in ((st.c - gt.c) / gt.a, (gt.f - st.f) / gt.a):
        if abs(offset - round(offset)) > 1e-6:
            return None
    return round(factor)


def _paint_aligned(src: rasterio.DatasetReader, factor: int, grid: SceneGrid, block: Window, out: np.ndarray) -> None:
    """Nearest-neighbour upsampling of an aligned source by pixel repetition (exact)."""
    col0 = round((grid.transform.c - src.transform.c) / grid.transform.a) + int(block.col_off)
    row0 = round((src.transform.f - grid.transform.f) / grid.transform.a) + int(block.row_off)
    col1, row1 = col0 + int(block.width), row0 + int(block.height)
    # fine-grid pixel range of the source file, clipped to the block
    c_lo, c_hi = max(col0, 0), min(col1, src.width * factor)
    r_lo, r_hi = max(row0, 0), min(row1, src.height * factor)
    if c_lo >= c_hi or r_lo >= r_hi:
        return
    window = Window(c_lo // factor, r_lo // factor, (c_hi - 1) // factor - c_lo // factor + 1,
                    (r_hi - 1) // factor - r_lo // factor + 1)
    coarse = src.read(1, window=window)
    fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    fine = fine[r_lo - (r_lo // factor) * factor:, c_lo - (c_lo // factor) * factor:]
    fine = fine[: r_hi - r_lo, : c_hi - c_lo]
    target = out[r_lo - row0: r_hi - row0, c_lo - col0: c_hi - col0]
    np.copyto(target, fine, where=fine != 0)


def _paint_warped(src: rasterio.DatasetReader, grid: SceneGrid, block: Window, out: np.ndarray) -> None:
    """Nearest-neighbour reprojection of any source onto a block (other CRS or grid)."""
    block_bounds = warp.transform_bounds(grid.crs, src.crs, *grid.window_bounds(block))
    if box(*block_bounds).disjoint(box(*src.bounds)):
        return
    buffer = np.zeros_like(out)
    warp.reproject(
        source=rasterio.band(src, 1), destination=buffer, src_nodata=0, dst_nodata=0,
        dst_transform=grid.window_transform(block), dst_crs=grid.crs, resampling=Resampling.nearest,
    )
    np.copyto(out, buffer, where=buffer != 0)


def apply_offset(values: np.ndarray, offset: int) -> np.ndarray:
    """Add a radiometric offset to DNs in place of a copy; 0 (no data) stays 0, data stay >= 1."""
    if offset == 0:
        return values
    shifted = values.astype(np.int32) + offset
    np.clip(shifted, 1, np.iinfo(np.uint16).max, out=shifted)
    return np.where(values == 0, 0, shifted).astype(np.uint16)


def ingest_product(product: Product, bands: Sequence[str], grid: SceneGrid, aoi: BaseGeometry, out_path: Path,
                   block_rows: int = 512, progress: bool = False,
                   extra_tags: dict[str, str] | None = None) -> dict[str, str]:
    """Resample, clip and stack a product's bands onto the scene grid as one uint16 GeoTIFF.

    Args:
        product: The located product.
        bands: Bands in output order.
        grid: Target grid (10 m, the AOI's bounds).
        aoi: AOI polygon in the grid's CRS; pixels whose centre is outside become 0.
        out_path: Destination GeoTIFF (written atomically).
        block_rows: Rows per processing block (memory is about 2 bytes x width x rows x 3).
        progress: Show a progress bar.
        extra_tags: Further tags to write (e.g. a warning about the offset).

    Returns:
        The tags written to the file (sensing time, baseline and its source, offset handling,
        ``AOI_COVERED``: the share of the AOI the product covers; the rest is no data, 0).

    Raises:
        InputError: If a zip member is damaged, a band file cannot be read, GDAL reports a
            problem while decoding a band, a band's CRS cannot be transformed, a band's extent
            leaves out part of the AOI that the others cover, or the AOI does not overlap the product.
    """
    verify_product(product, bands)
    footprints = band_footprints({band: product.band_files[band] for band in bands}, grid.crs)
    footprint = unary_union(list(footprints.values()))
    if not footprint.intersects(aoi) or footprint.intersection(aoi).area <= 0:
        raise InputError(f"{product.path}: the AOI does not overlap the scene")
    covered = check_band_extents(footprints, product.band_files, aoi, grid.resolution)
    meta = product.metadata
    offsets = {band: meta.offset_for(band) for band in bands}
    tags = {
        "PRODUCT": product.path.name,
        "SENSING_TIME": meta.sensing_time or "unknown",
        "PROCESSING_BASELINE": f"{meta.processing_baseline:05.2f}" if meta.processing_baseline else "unknown",
        "BASELINE_SOURCE": meta.source,
        "RADIOMETRIC_OFFSET_REMOVED": str(any(offsets.values())),
        "BANDS": ",".join(bands),
        "AOI_COVERED": f"{covered:.4f}",
        **(extra_tags or {}),
    }
    profile = {**GTIFF_PROFILE, **grid.profile(), "count": len(bands), "dtype": "uint16", "nodata": None}
    sources: dict[str, list[rasterio.DatasetReader]] = {}
    try:
        for band in bands:
            sources[band] = []
            for path in product.band_files[band]:
                try:
                    sources[band].append(rasterio.open(path))
                except RasterioError as error:
                    raise InputError(f"{path}: not a readable raster ({str(error).splitlines()[0]})") from None
        # a bounded block cache keeps memory independent of the machine's RAM (GDAL's default is 5 % of it)
        with rasterio.Env(GDAL_CACHEMAX=INGEST_CACHE_MB), atomic_path(out_path) as tmp, \
                rasterio.open(tmp, "w", **profile) as dst, collect_gdal_messages() as messages:
            blocks = list(grid.row_blocks(block_rows))
            bar = tqdm(blocks, desc=f"ingest {product.path.name[:40]}", disable=None if progress else True, leave=False)
            for block in bar:
                inside = grid.inside_mask(aoi, block)
                for index, band in enumerate(bands, start=1):
                    out = np.zeros((int(block.height), int(block.width)), dtype=np.uint16)
                    if inside.any():
                        for src in sources[band]:
                            messages.take()  # only what this read reports counts against its file
                            try:
                                factor = _aligned_factor(src, grid)
                                if factor is not None:
                                    _paint_aligned(src, factor, grid, block, out)
                                else:
                                    _paint_warped(src, grid, block, out)
                            except RASTER_ERRORS as error:
                                messages.take()
                                raise InputError(f"{src.name}: corrupt raster data "
                                                 f"({str(error).splitlines()[0]})") from None
                            messages.raise_for(src.name)
                        out = apply_offset(out, offsets[band])
                        out[~inside] = 0
                    dst.write(out, index, window=block)
            for index, band in enumerate(bands, start=1):
                dst.set_band_description(index, band)
            dst.update_tags(**tags)
    finally:
        for opened in sources.values():
            for src in opened:
                src.close()
    return tags
