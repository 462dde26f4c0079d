"""The one writer of Sentinel-2 ``.SAFE`` products: names, metadata XML and band files.

The demo generator writes its products with it, and so do the tests' generated study areas
(``tests/study_area.py``), so that both produce what :mod:`helpers.data.sentinel` reads:
ESA's product and granule names, an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with ESA's element
names (processing baseline, sensing time, radiometric offsets indexed by the band ids of
:data:`helpers.data.sentinel.ESA_BAND_IDS`), and lossless JPEG 2000 (or GeoTIFF) band files.
Every file is written under a temporary name and renamed into place (see
:func:`helpers.core.io.atomic_path`); the metadata file comes last.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from helpers.core.io import atomic_path
from helpers.data.sentinel import ESA_BAND_IDS

TILE_ID = "T33UVS"
"""MGRS tile of the generated products."""
CRS = "EPSG:32633"
"""The tile's UTM zone (33 north)."""
SENSING_CLOCK = "101022"
"""Sensing time of day (HHMMSS) in every name."""
RELATIVE_ORBIT = 22

BAND_RESOLUTION: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "B8A": 20,
}
"""Native resolution (m) of every spectral band."""

_LAUNCH = {"S2A": dt.date(2015, 6, 23), "S2B": dt.date(2017, 3, 7)}
_SOLAR_IRRADIANCE = (1913.57, 1941.63, 1822.61, 1512.79, 1425.56, 1288.32, 1163.19, 1036.39, 955.19,
                     813.04, 367.15, 245.59, 85.25)
"""S2A solar irradiance per ESA band id, for the metadata file."""


@dataclass(frozen=True)
class ProductId:
    """What names a product: level, sensing date, spacecraft, processing baseline and tile.

    Attributes:
        date: Sensing date, ``YYYYMMDD``.
        level: ``L1C`` or ``L2A``.
        spacecraft: ``S2A`` or ``S2B``.
        baseline: Processing baseline, e.g. ``02.04`` (``_N0204_`` in the name).
        tile: MGRS tile id.
    """

    date: str
    level: str = "L1C"
    spacecraft: str = "S2A"
    baseline: str = "02.04"
    tile: str = TILE_ID

    @property
    def calendar_date(self) -> dt.date:
        """The sensing date."""
        return dt.datetime.strptime(self.date, "%Y%m%d").date()

    @property
    def absolute_orbit(self) -> int:
        """An absolute orbit number that grows with the days since the spacecraft's launch."""
        return max(1, round((self.calendar_date - _LAUNCH[self.spacecraft]).days * 14.3))

    @property
    def name(self) -> str:
        """The ``.SAFE`` folder name, as ESA writes it."""
        return (f"{self.spacecraft}_MSI{self.level}_{self.date}T{SENSING_CLOCK}_N{self.baseline.replace('.', '')}"
                f"_R{RELATIVE_ORBIT:03d}_{self.tile}_{self.date}T120000.SAFE")

    @property
    def granule(self) -> str:
        """The ``GRANULE`` sub-folder name."""
        return f"{self.level}_{self.tile}_A{self.absolute_orbit:06d}_{self.date}T{SENSING_CLOCK}"

    @property
    def metadata_name(self) -> str:
        """The product metadata file name."""
        return f"MTD_MSI{self.level}.xml"

    def image_path(self, band: str, resolution: float) -> str:
        """Path of a band file inside the product, without suffix.

        L1C products hold every band once at its native resolution; L2A products hold them in
        ``R10m``, ``R20m`` and ``R60m`` folders, the resolution in the name.
        """
        stem = f"{self.tile}_{self.date}T{SENSING_CLOCK}_{band}"
        granule = f"GRANULE/{self.granule}/IMG_DATA"
        if self.level == "L1C":
            return f"{granule}/{stem}"
        return f"{granule}/R{resolution:g}m/{stem}_{resolution:g}m"


def write_band(path: Path, array: np.ndarray, resolution: float, origin: tuple[float, float],
               crs: str = CRS) -> Path:
    """Write a raster atomically: lossless JPEG 2000 for ``.jp2`` names, GeoTIFF otherwise.

    Args:
        path: Destination; the suffix picks the driver.
        array: 2-D (one band) or 3-D (bands, rows, cols) pixels.
        resolution: Pixel size in CRS units.
        origin: Upper-left corner (x, y).
        crs: Coordinate reference system.

    Returns:
        The path written.
    """
    array = array[np.newaxis] if array.ndim == 2 else array
    profile: dict[str, Any] = {
        "width": array.shape[2], "height": array.shape[1], "count": array.shape[0], "dtype": array.dtype.name,
        "crs": crs, "transform": Affine(resolution, 0.0, origin[0], 0.0, -resolution, origin[1]),
    }
    if path.suffix == ".jp2":  # the codec is named: GDAL would pick a bare codestream for the temporary name
        profile.update(driver="JP2OpenJPEG", CODEC="JP2", QUALITY=100, REVERSIBLE="YES")
    else:
        profile.update(driver="GTiff")
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)
    return path


def metadata_xml(product: ProductId, band_files: Sequence[str] = (), cloud_pct: float = 0.0,
                 offsets: Mapping[int, int] | None = None) -> bytes:
    """A product metadata file with ESA's element names.

    Args:
        product: The product.
        band_files: Band file paths (inside the product, without suffix) listed in the granule.
        cloud_pct: Cloud cover in percent.
        offsets: ESA band id -> additive radiometric offset (``RADIO_ADD_OFFSET`` for L1C,
            ``BOA_ADD_OFFSET`` for L2A; products of baseline 04.00 and later list them).

    Returns:
        The XML document, UTF-8.
    """
    level = f"Level-{product.level[1:]}"
    ns = f"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{level}.xsd"
    root = ET.Element(f"n1:{level}_User_Product", {
        "xmlns:n1": ns, "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:schemaLocation": f"{ns} {ns}",
    })

    def sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, tag, attrs)
        if text is not None:
            element.text = str(text)
        return element

    iso = product.calendar_date.isoformat()
    start = f"{iso}T10:10:22.026Z"
    general = sub(root, "n1:General_Info")
    info = sub(general, "Product_Info")
    sub(info, "PRODUCT_START_TIME", start)
    sub(info, "PRODUCT_STOP_TIME", start)
    sub(info, "PRODUCT_URI", product.name)
    sub(info, "PROCESSING_LEVEL", level)
    sub(info, "PRODUCT_TYPE", f"S2MSI{product.level[1:]}")
    sub(info, "PROCESSING_BASELINE", product.baseline)
    sub(info, "GENERATION_TIME", f"{iso}T12:00:00.000000Z")
    sub(info, "PREVIEW_IMAGE_URL", "Not applicable")
    sub(info, "PREVIEW_GEO_INFO", "Not applicable")
    identifier = (f"G{product.spacecraft}_{product.date}T{SENSING_CLOCK}_{product.absolute_orbit:06d}"
                  f"_N{product.baseline}")
    datatake = sub(info, "Datatake", datatakeIdentifier=identifier)
    sub(datatake, "SPACECRAFT_NAME", f"Sentinel-2{product.spacecraft[-1]}")
    sub(datatake, "DATATAKE_TYPE", "INS-NOBS")
    sub(datatake, "DATATAKE_SENSING_START", start)
    sub(datatake, "SENSING_ORBIT_NUMBER", RELATIVE_ORBIT)
    sub(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    options = sub(info, "Query_Options", completeSingleTile="true")
    sub(options, "PRODUCT_FORMAT", "SAFE")
    granules = sub(sub(info, "Product_Organisation"), "Granule_List")
    granule = sub(granules, "Granule", granuleIdentifier=product.granule, imageFormat="JPEG2000")
    for name in band_files:
        sub(granule, "IMAGE_FILE", name)

    characteristics = sub(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        special = sub(characteristics, "Special_Values")
        sub(special, "SPECIAL_VALUE_TEXT", text)
        sub(special, "SPECIAL_VALUE_INDEX", index)
    order = sub(characteristics, "Image_Display_Order")
    for channel, value in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        sub(order, channel, value)
    if product.level == "L1C":
        sub(characteristics, "QUANTIFICATION_VALUE", 10000, unit="none")
    else:
        sub(sub(characteristics, "QUANTIFICATION_VALUES_LIST"), "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
    if offsets:
        listing, tag = (("Radiometric_Offset_List", "RADIO_ADD_OFFSET") if product.level == "L1C"
                        else ("BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET"))
        offset_list = sub(characteristics, listing)
        for band_id, value in offsets.items():
            sub(offset_list, tag, value, band_id=str(band_id))
    conversion = sub(characteristics, "Reflectance_Conversion")
    doy = product.calendar_date.timetuple().tm_yday
    sub(conversion, "U", f"{1.0 / (1.0 - 0.01672 * np.cos(0.0172 * (doy - 4))) ** 2:.12f}")
    irradiance = sub(conversion, "Solar_Irradiance_List")
    for band_id, value in enumerate(_SOLAR_IRRADIANCE):
        sub(irradiance, "SOLAR_IRRADIANCE", value, bandId=str(band_id), unit="W/m²/µm")
    spectral = sub(characteristics, "Spectral_Information_List")
    for band_id, band in enumerate(ESA_BAND_IDS):
        physical = "B8A" if band == "B8A" else f"B{int(band[1:])}"
        item = sub(spectral, "Spectral_Information", bandId=str(band_id), physicalBand=physical)
        sub(item, "RESOLUTION", BAND_RESOLUTION[band])

    geometric = sub(root, "n1:Geometric_Info")
    crs = sub(geometric, "Coordinate_Reference_System")
    sub(crs, "GEO_TABLES", "EPSG", version="1")
    sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")
    quality = sub(root, "n1:Quality_Indicators_Info")
    sub(quality, "Cloud_Coverage_Assessment", f"{cloud_pct:.4f}")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def write_product(level_dir: Path, product: ProductId, images: Iterable[tuple[str, float, np.ndarray]],
                  origin: tuple[float, float], crs: str = CRS, *, suffix: str = ".jp2", cloud_pct: float = 0.0,
                  offsets: Mapping[int, int] | None = None) -> Path:
    """Write one ``.SAFE`` product: its band files first, the metadata file last.

    Args:
        level_dir: The folder of the level's products (``raw/sentinel/level_L1C``).
        product: The product.
        images: (band, resolution, pixels) of every band file; an L2A band may come at several
            resolutions.
        origin: Upper-left corner (x, y) of every band file.
        crs: CRS of the band files.
        suffix: ``.jp2`` (lossless JPEG 2000, as ESA) or ``.tif``.
        cloud_pct: Cloud cover in percent, for the metadata.
        offsets: Radiometric offsets for the metadata (see :func:`metadata_xml`).

    Returns:
        The ``.SAFE`` folder.
    """
    safe = level_dir / product.name
    listed: dict[str, list[str]] = {}
    for band, resolution, array in images:
        relative = product.image_path(band, resolution)
        target = safe / f"{relative}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_band(target, array, resolution, origin, crs)
        listed.setdefault(band, []).append(relative)
    order = [*ESA_BAND_IDS, *sorted(set(listed) - set(ESA_BAND_IDS))]
    files = [name for band in order for name in listed.get(band, [])]
    with atomic_path(safe / product.metadata_name) as tmp:
        tmp.write_bytes(metadata_xml(product, files, cloud_pct, offsets))
    return safe
