"""Known imagery collections: band names, native resolutions and quality-band rules.

This table is data: adding a collection means adding an entry here (and, for a quality band
that is not already a class layer, its ``qa_kind`` mapping in the providers).

Units of eoembed stacks: every optical :class:`~eoembed.items.Stack` a provider returns holds
surface reflectance x 10000 (the Sentinel-2 L2A convention), whatever the collection, so
reflectance = value x :data:`STACK_SCALE` everywhere downstream (composites, models). A
collection's ``scale``/``offset`` describe its *source product's* digital numbers
(reflectance = DN x scale + offset); providers convert with :meth:`Collection.to_stack_units`.
For Sentinel-2 L2A the two conventions coincide (scale 1e-4, offset 0) and values pass through
unchanged.

SAR collections (Sentinel-1) have their own stack units, **linear power** (backscatter
coefficient, unitless), declared by ``units``. What a source holds is declared as data too: a
catalogue asset's ``raster:bands[].unit`` (``"dB"`` or ``"linear"``), a STAC preset's or an
Earth Engine collection's ``units`` (``COPERNICUS/S1_GRD`` is already in dB), else the
collection's ``source_units``; :meth:`Collection.to_stack_units` converts (dB -> linear:
``10 ** (dB / 10)``). A model that wants dB converts back with :func:`linear_to_db`.

Collections without a per-pixel quality band (``qa_band=None``: Sentinel-2 L1C, Sentinel-1)
are composited from every finite observation; Sentinel-1 scenes carry no cloud cover
(``has_cloud_cover=False``), so a sensor on them must keep ``cloudy_pct`` at 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Stack values x STACK_SCALE = surface reflectance, for every optical collection.
STACK_SCALE = 1e-4


@dataclass(frozen=True)
class Collection:
    """Facts about one imagery collection.

    Stack values are always reflectance x 10000 (see :data:`STACK_SCALE`); ``scale`` and
    ``offset`` describe the source product's DN and are applied by the providers through
    :meth:`to_stack_units` (Landsat C2 L2: DN x 0.275 - 2000), so composites and models never
    need to know which collection a stack came from. The ``qa`` array of a stack is likewise
    always uint8 class codes (``qa_kind`` says how the source quality band is turned into them).

    Attributes:
        id: Collection id as used in configs (``"sentinel-2-l2a"``).
        bands: Band names in canonical order.
        native_gsd_m: Native ground sampling distance per band, metres.
        wavelengths_nm: Central wavelength per band, nanometres (``None`` for non-optical).
        qa_band: Name of the per-pixel quality band, or ``None``.
        invalid_qa: Quality-band classes treated as invalid (cloud, shadow, no data, ...),
            in the class space of the stack's ``qa`` (SCL-like codes, 0 = no data).
        scale: Source product: reflectance = DN x ``scale`` + ``offset``.
        nodata: Digital number meaning "no data".
        description: One line for humans.
        qa_names: Class code -> name of the stack's ``qa`` codes.
        offset: See ``scale`` (0 for Sentinel-2 L2A as eoembed reads it).
        qa_kind: How the stored quality band becomes ``qa`` codes: ``"classes"`` (it already
            holds class codes, read as uint8), ``"landsat_qa_pixel"`` or ``"hls_fmask"`` (bit
            flags mapped by :data:`eoembed.providers.presets.QA_DECODERS`).
        has_cloud_cover: Whether scenes carry a scene cloud cover (``eo:cloud_cover``).
        units: Units of the stack values (``"reflectance x 10000"`` or ``"linear power"``).
        source_units: SAR only: units of the source values when the source declares none
            (``"linear"`` or ``"dB"``).
        bandwidths_nm: Spectral bandwidth per band, nanometres (empty or ``None`` = unknown).
    """

    id: str
    bands: tuple[str, ...]
    native_gsd_m: dict[str, float]
    wavelengths_nm: dict[str, float | None]
    qa_band: str | None
    invalid_qa: tuple[int, ...] = ()
    scale: float = 1.0
    nodata: int = 0
    description: str = ""
    qa_names: dict[int, str] = field(default_factory=dict)
    offset: float = 0.0
    qa_kind: str = "classes"
    has_cloud_cover: bool = True
    units: str = "reflectance x 10000"
    source_units: str = ""
    bandwidths_nm: dict[str, float | None] = field(default_factory=dict)

    @property
    def is_sar(self) -> bool:
        return self.units == LINEAR_POWER

    def stack_factors(self) -> tuple[float, float]:
        """``(multiply, add)`` turning source DN into stack units (reflectance x 10000).

        Rounded so that Sentinel-2 L2A gives exactly ``(1.0, 0.0)`` and Landsat C2 L2 exactly
        ``(0.275, -2000.0)``.
        """
        return round(self.scale / STACK_SCALE, 12), round(self.offset / STACK_SCALE, 9)

    def to_stack_units(self, dn: np.ndarray, units: str | None = None) -> np.ndarray:
        """float32 stack values of source digital numbers ``dn`` (NaN stays NaN).

        Identity (same values, no arithmetic) when the source already is reflectance x 10000.
        SAR: ``units`` (what the source declares, default :attr:`source_units`) ``"dB"`` is
        converted to linear power, ``"linear"`` passes through.

        Raises:
            ProviderError: SAR values in units other than dB or linear.
        """
        dn = np.asarray(dn, dtype=np.float32)
        if self.is_sar:
            unit = (units or self.source_units).strip().lower()
            if unit in ("db", "decibel", "decibels"):
                return db_to_linear(dn)
            if unit in ("linear", "linear power", "1", ""):
                return dn
            from eoembed.errors import ProviderError

            raise ProviderError(f"collection {self.id!r}: source units {units!r} are invalid: "
                                "allowed 'dB' or 'linear' (power)")
        mul, add = self.stack_factors()
        if mul == 1.0 and add == 0.0:
            return dn
        return (dn.astype(np.float64) * mul + add).astype(np.float32)


LINEAR_POWER = "linear power"


def db_to_linear(db: np.ndarray) -> np.ndarray:
    """Backscatter in decibels -> linear power, ``10 ** (dB / 10)`` (float32, NaN stays NaN)."""
    return np.power(np.float32(10.0), np.asarray(db, np.float32) / np.float32(10.0)).astype(np.float32)


def linear_to_db(linear: np.ndarray) -> np.ndarray:
    """Linear power -> decibels, ``10 log10(x)`` (float32; 0 -> -inf, negative -> NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.float32(10.0) * np.log10(np.asarray(linear, np.float32))).astype(np.float32)


#: Sentinel-2A MSI bandwidths (nm), with the central wavelengths above taken from the same table: ESA,
#: Sentinel-2 MSI User Guide / spectral response functions COPE-GSEG-EOPG-TN-15-0007 (S2A columns).
S2_BANDWIDTHS_NM = {"B01": 21.0, "B02": 66.0, "B03": 36.0, "B04": 31.0, "B05": 15.0, "B06": 15.0, "B07": 20.0,
                    "B08": 106.0, "B8A": 21.0, "B09": 20.0, "B10": 31.0, "B11": 91.0, "B12": 175.0}

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")

#: Sentinel-2 Scene Classification Layer classes (ESA L2A product definition).
SCL_CLASSES = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows",
    4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
    8: "cloud_medium_probability", 9: "cloud_high_probability", 10: "thin_cirrus", 11: "snow",
}

SENTINEL2_L2A = Collection(
    id="sentinel-2-l2a",
    bands=S2_BANDS,
    native_gsd_m={"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                  "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20},
    wavelengths_nm={"B01": 442.7, "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1,
                    "B06": 740.5, "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B09": 945.1,
                    "B11": 1613.7, "B12": 2202.4},
    qa_band="SCL",
    invalid_qa=(0, 1, 3, 8, 9, 10),
    scale=1e-4,
    nodata=0,
    description="Sentinel-2 Level-2A surface reflectance x 10000, with Scene Classification Layer",
    qa_names=SCL_CLASSES,
    bandwidths_nm={b: S2_BANDWIDTHS_NM[b] for b in S2_BANDS},
)

#: Landsat 8/9 OLI surface-reflectance bands, USGS names (as in the Collection 2 product files
#: and Earth Engine); the STAC presets map them to the catalogues' common-name asset keys
#: (SR_B1 coastal, SR_B2 blue, SR_B3 green, SR_B4 red, SR_B5 nir08, SR_B6 swir16, SR_B7 swir22).
#: Landsat 4-7 scenes in the same catalogues carry the same common-name assets except coastal,
#: so a sensor without SR_B1 reads them too (with TM/ETM+ band centres, not OLI's).
LANDSAT_SR_BANDS = ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7")

#: SCL-like codes :func:`eoembed.providers.presets.landsat_qa_to_classes` gives ``QA_PIXEL``.
LANDSAT_QA_CLASSES = {0: "fill", 3: "cloud_shadow", 4: "clear", 6: "water", 7: "unclassified",
                      8: "cloud_or_dilated_cloud", 10: "cirrus", 11: "snow"}

LANDSAT_C2_L2 = Collection(
    id="landsat-c2-l2",
    bands=LANDSAT_SR_BANDS,
    native_gsd_m={b: 30 for b in LANDSAT_SR_BANDS},
    # OLI band centres (USGS): coastal, blue, green, red, NIR, SWIR 1, SWIR 2
    wavelengths_nm={"SR_B1": 443.0, "SR_B2": 482.0, "SR_B3": 561.5, "SR_B4": 654.5,
                    "SR_B5": 865.0, "SR_B6": 1608.5, "SR_B7": 2200.5},
    qa_band="QA_PIXEL",
    invalid_qa=(0, 3, 8, 10),  # fill, cloud shadow, cloud/dilated cloud, cirrus
    scale=0.0000275,
    offset=-0.2,
    nodata=0,
    description=("Landsat Collection 2 Level-2 surface reflectance (OLI band names SR_B1..SR_B7). "
                 "Source DN: reflectance = DN x 0.0000275 - 0.2; providers return "
                 "reflectance x 10000 (DN x 0.275 - 2000) like Sentinel-2, and QA_PIXEL bit "
                 "flags as SCL-like codes (0 fill, 3 shadow, 8 cloud, 10 cirrus, 11 snow, "
                 "6 water, 4 clear, 7 other)."),
    qa_names=LANDSAT_QA_CLASSES,
    qa_kind="landsat_qa_pixel",
)

S2_L1C_BANDS = S2_BANDS[:10] + ("B10",) + S2_BANDS[10:]

SENTINEL2_L1C = Collection(
    id="sentinel-2-l1c",
    bands=S2_L1C_BANDS,
    native_gsd_m={**SENTINEL2_L2A.native_gsd_m, "B10": 60},
    wavelengths_nm={**SENTINEL2_L2A.wavelengths_nm, "B10": 1373.5},
    qa_band=None,  # the L1C COG catalogues carry no per-pixel class layer
    scale=1e-4,
    nodata=0,
    description=("Sentinel-2 Level-1C top-of-atmosphere reflectance x 10000, 13 bands including "
                 "B10 (cirrus); no per-pixel cloud mask (scene cloud cover only). Baseline 04.00+ "
                 "offsets are removed like L2A's."),
    bandwidths_nm=dict(S2_BANDWIDTHS_NM),
)

SENTINEL1_GRD = Collection(
    id="sentinel-1-grd",
    bands=("VV", "VH"),
    native_gsd_m={"VV": 10, "VH": 10},
    wavelengths_nm={"VV": None, "VH": None},  # C band, 5.405 GHz
    qa_band=None,
    scale=1.0,
    nodata=-32768,
    description=("Sentinel-1 GRD IW backscatter sigma0 (thermal noise removed, calibrated, "
                 "terrain-corrected as Earth Engine's COPERNICUS/S1_GRD), VV and VH; stack values "
                 "in linear power (Earth Engine's dB converted)."),
    has_cloud_cover=False,
    units=LINEAR_POWER,
    source_units="linear",
)

SENTINEL1_RTC = Collection(
    id="sentinel-1-rtc",
    bands=("VV", "VH"),
    native_gsd_m={"VV": 10, "VH": 10},
    wavelengths_nm={"VV": None, "VH": None},
    qa_band=None,
    scale=1.0,
    nodata=-32768,
    description=("Sentinel-1 radiometrically terrain-corrected backscatter gamma0 (Planetary "
                 "Computer sentinel-1-rtc), VV and VH, linear power."),
    has_cloud_cover=False,
    units=LINEAR_POWER,
    source_units="linear",
)

#: MODIS bands of the MOD021KM / MYD021KM Level-1B 1 km product that SatVision-TOA takes; the
#: reflective solar bands hold TOA reflectance x 10000 (the optical stack convention), the thermal
#: emissive bands brightness temperature in kelvin (not rescaled).
MODIS_TOA_REFLECTIVE = ("B01", "B02", "B03", "B06", "B07", "B26")
MODIS_TOA_EMISSIVE = ("B20", "B27", "B28", "B29", "B31", "B32", "B33", "B34")

MODIS_TOA = Collection(
    id="modis-toa",
    bands=("B01", "B02", "B03", "B06", "B07", "B20", "B26", "B27", "B28", "B29", "B31", "B32", "B33", "B34"),
    native_gsd_m={b: 1000 for b in MODIS_TOA_REFLECTIVE + MODIS_TOA_EMISSIVE},
    # band centres, MODIS specifications (nm); emissive bands are thermal (micrometres x 1000)
    wavelengths_nm={"B01": 645.0, "B02": 858.5, "B03": 469.0, "B06": 1640.0, "B07": 2130.0, "B20": 3750.0,
                    "B26": 1375.0, "B27": 6715.0, "B28": 7325.0, "B29": 8550.0, "B31": 11030.0, "B32": 12020.0,
                    "B33": 13335.0, "B34": 13635.0},
    qa_band=None,
    scale=1e-4,  # files hold the stack units already (reflectance x 10000; kelvin): no conversion
    nodata=-9999,
    description=("MODIS Terra/Aqua Level-1B 1 km (MOD021KM/MYD021KM) calibrated to top of atmosphere: "
                 "reflective bands B01-B07, B26 as TOA reflectance x 10000, emissive bands B20, B27-B34 "
                 "as brightness temperature in K (e.g. from satpy); local catalogues only (no STAC or "
                 "Earth Engine source serves L1B); no cloud mask (every finite value composited)."),
    has_cloud_cover=False,
    units="TOA reflectance x 10000 (reflective bands); brightness temperature K (emissive bands)",
)

#: HLS v2.0 bands Prithvi uses, named as Prithvi names them; the presets map them to the L30
#: (B02 B03 B04 B05 B06 B07) and S30 (B02 B03 B04 B8A B11 B12) asset keys.
HLS_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
#: SCL-like codes :func:`eoembed.providers.presets.hls_fmask_to_classes` gives ``Fmask``.
HLS_QA_CLASSES = {0: "fill", 3: "cloud_shadow", 4: "clear", 6: "water",
                  8: "cloud_or_adjacent", 10: "cirrus", 11: "snow_ice"}

HLS = Collection(
    id="hls",
    bands=HLS_BANDS,
    native_gsd_m={b: 30 for b in HLS_BANDS},
    # OLI band centres: HLS adjusts S30 to the OLI bandpasses
    wavelengths_nm={"BLUE": 482.0, "GREEN": 561.5, "RED": 654.5, "NIR_NARROW": 865.0,
                    "SWIR_1": 1608.5, "SWIR_2": 2200.5},
    qa_band="Fmask",
    invalid_qa=(0, 3, 8, 10),  # fill, cloud shadow, cloud or adjacent to cloud/shadow, cirrus
    scale=1e-4,
    nodata=-9999,
    description=("Harmonized Landsat Sentinel-2 v2.0 (HLSL30 + HLSS30) surface reflectance x "
                 "10000 at 30 m, Prithvi's six bands; Fmask bit flags as SCL-like codes."),
    qa_names=HLS_QA_CLASSES,
    qa_kind="hls_fmask",
)

COLLECTIONS: dict[str, Collection] = {c.id: c for c in (SENTINEL2_L2A, LANDSAT_C2_L2, SENTINEL2_L1C,
                                                        SENTINEL1_GRD, SENTINEL1_RTC, HLS,
                                                        MODIS_TOA)}


def get_collection(collection_id: str) -> Collection:
    """Return the :class:`Collection` for ``collection_id``.

    Raises:
        SpecError: if the collection is unknown (the message lists the known ones).
    """
    from eoembed.errors import SpecError

    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise SpecError("collection", collection_id, f"one of {sorted(COLLECTIONS)}",
                        "SensorSpec") from None
