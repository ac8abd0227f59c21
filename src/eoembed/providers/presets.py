"""STAC catalogue presets: where a catalogue is, what its assets are called, how to read them.

A :class:`StacPreset` names a STAC API (URL, whether its asset URLs need signing) and, per
eoembed collection id, a :class:`CollectionPreset`: the catalogue's own collection id, the
asset key of every eoembed band name, the quality asset and how to turn it into the
SCL-like classes :mod:`eoembed.composite` masks with, and the digital-number convention.

Digital numbers: providers return Sentinel-2 L2A reflectance x 10000 with no offset (the
convention of :data:`eoembed.collections.SENTINEL2_L2A`). Scenes of processing baseline
04.00 and later (ESA, from 2022-01-25) carry ``BOA_ADD_OFFSET = -1000``: their stored DN is
reflectance x 10000 + 1000. :func:`s2_dn_offset` finds the offset per item (the asset's
``raster:bands`` offset/scale when the catalogue states it, else ``s2:processing_baseline``,
else the acquisition date) and the provider adds it to the DN.

Landsat Collection 2 Level-2 (:data:`eoembed.collections.LANDSAT_C2_L2`: bands ``SR_B1``..
``SR_B7`` + ``QA_PIXEL``, reflectance = DN x 0.0000275 - 0.2): both catalogues name the assets
by common name (``coastal, blue, green, red, nir08, swir16, swir22, qa_pixel``), mapped here to
the USGS/OLI names; only ``landsat-8``/``landsat-9`` items are taken (the OLI band names do not
fit Landsat 4-7). Providers convert the DN to reflectance x 10000 and
:func:`landsat_qa_to_classes` maps ``QA_PIXEL`` to SCL-like codes (0 no data, 3 shadow,
8 cloud, 10 cirrus, 11 snow, 6 water, 4 clear, 7 other) so the same invalid-class mask
(:attr:`~eoembed.collections.Collection.invalid_qa`) applies.

Sentinel-2 L1C (13 bands, incl. B10 ``cirrus``): Earth Search ``sentinel-2-l1c`` (common-name
asset keys; its assets are the original JPEG 2000 files in the requester-pays ``sentinel-s2-l1c``
bucket, so reading needs AWS credentials and ``AWS_REQUEST_PAYER=requester``); no quality asset.

Sentinel-1: the Planetary Computer's ``sentinel-1-rtc`` (gamma0, linear power, assets ``vv``/``vh``)
serves :data:`~eoembed.collections.SENTINEL1_RTC`. Its ``sentinel-1-grd`` holds Level-1 GRD digital
numbers in radar geometry (not calibrated, not map-projected), so no preset reads it as backscatter.

HLS v2.0: one eoembed collection ``hls`` over both catalogue collections ``hls2-l30`` and
``hls2-s30`` (:attr:`CollectionPreset.variants`: the same eoembed band has another asset key in
each, e.g. ``NIR_NARROW`` = ``B05`` / ``B8A``); ``Fmask`` bit flags become SCL-like codes
(:func:`hls_fmask_to_classes`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eoembed.errors import ConfigError

__all__ = ["CollectionPreset", "PRESETS", "QA_DECODERS", "QA_ENCODINGS", "StacPreset", "S2_BOA_ADD_OFFSET",
           "get_preset", "hls_fmask_to_classes", "landsat_qa_to_classes", "s2_dn_offset"]

#: BOA_ADD_OFFSET of Sentinel-2 L2A processing baseline 04.00+, in DN.
S2_BOA_ADD_OFFSET = -1000.0
#: First acquisitions processed with baseline 04.00.
S2_BASELINE_04_START = dt.datetime(2022, 1, 25, tzinfo=dt.timezone.utc)

_S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_S2_COMMON = dict(zip(_S2, ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
                            "nir", "nir08", "nir09", "swir16", "swir22")))
#: Landsat 8/9 OLI surface-reflectance bands by USGS name -> common asset key.
_LANDSAT = {"SR_B1": "coastal", "SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir08",
            "SR_B6": "swir16", "SR_B7": "swir22"}
_OLI = ("landsat-8", "landsat-9")
_S2_L1C_COMMON = {**_S2_COMMON, "B10": "cirrus"}
_S1_PC = {"VV": "vv", "VH": "vh"}
_HLS_L30 = dict(zip(("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"),
                    ("B02", "B03", "B04", "B05", "B06", "B07")))
_HLS_S30 = dict(zip(("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"),
                    ("B02", "B03", "B04", "B8A", "B11", "B12")))


@dataclass(frozen=True)
class CollectionPreset:
    """How one collection is stored in one catalogue.

    Attributes:
        remote_id: The catalogue's collection id.
        assets: eoembed band name -> asset key (bands not listed use their own name).
        qa_asset: Asset key of the quality band, or ``None``.
        qa_kind: ``"classes"`` (values are SCL classes) or ``"landsat_qa_pixel"`` (bit flags).
        dn_offset: ``"s2_baseline"`` (apply :func:`s2_dn_offset`) or ``"none"``.
        scale: Physical value = DN x scale + offset (documentation; the conversion providers
            apply is the collection's, :meth:`eoembed.collections.Collection.to_stack_units`).
        offset: See ``scale``.
        platforms: Item ``platform`` values taken (others skipped client-side); empty = all.
        units: SAR: units of the assets' values (``"dB"`` or ``"linear"``); empty = the
            collection's ``source_units``.
        variants: Further catalogue collections searched together with ``remote_id``, each
            with its own band -> asset key map (HLS: ``hls2-s30`` next to ``hls2-l30``).
    """

    remote_id: str
    assets: dict[str, str] = field(default_factory=dict)
    qa_asset: str | None = None
    qa_kind: str = "classes"
    dn_offset: str = "none"
    scale: float = 1e-4
    offset: float = 0.0
    platforms: tuple[str, ...] = ()
    units: str = ""
    variants: dict[str, dict[str, str]] = field(default_factory=dict)

    def asset(self, band: str, remote: str | None = None) -> str:
        """Asset key of eoembed band ``band`` (in catalogue collection ``remote``, if a variant)."""
        return self.variants.get(remote, self.assets).get(band, band)

    def remote_ids(self) -> list[str]:
        """Every catalogue collection searched for this eoembed collection."""
        return [self.remote_id, *self.variants]


@dataclass(frozen=True)
class StacPreset:
    """A STAC API and its collections.

    Attributes:
        name: Preset name used in config (``provider: {name: stac, preset: ...}``).
        url: Root URL of the STAC API.
        sign: Whether asset URLs must be signed with ``planetary_computer`` before reading.
        collections: eoembed collection id -> :class:`CollectionPreset`.
    """

    name: str
    url: str | None
    sign: bool
    collections: dict[str, CollectionPreset]

    def collection(self, collection_id: str) -> CollectionPreset:
        """The :class:`CollectionPreset` of eoembed collection ``collection_id``.

        Raises:
            ConfigError: if this preset does not describe that collection.
        """
        try:
            return self.collections[collection_id]
        except KeyError:
            raise ConfigError(f"collection={collection_id!r} is invalid for STAC preset "
                              f"{self.name!r}: allowed one of {sorted(self.collections)}") from None


PRESETS: dict[str, StacPreset] = {
    "planetary_computer": StacPreset(
        name="planetary_computer", url="https://planetarycomputer.microsoft.com/api/stac/v1",
        sign=True, collections={
            "sentinel-2-l2a": CollectionPreset("sentinel-2-l2a", {}, "SCL", "classes", "s2_baseline"),
            "landsat-c2-l2": CollectionPreset("landsat-c2-l2", dict(_LANDSAT), "qa_pixel",
                                              "landsat_qa_pixel", "none", 0.0000275, -0.2, _OLI),
            "sentinel-1-rtc": CollectionPreset("sentinel-1-rtc", dict(_S1_PC), None, "classes", "none",
                                               1.0, 0.0, units="linear"),
            "hls": CollectionPreset("hls2-l30", dict(_HLS_L30), "Fmask", "hls_fmask", "none",
                                    variants={"hls2-s30": dict(_HLS_S30)}),
        }),
    "earth_search": StacPreset(
        name="earth_search", url="https://earth-search.aws.element84.com/v1", sign=False,
        collections={
            "sentinel-2-l2a": CollectionPreset("sentinel-2-l2a", dict(_S2_COMMON), "scl", "classes",
                                               "s2_baseline"),
            "landsat-c2-l2": CollectionPreset("landsat-c2-l2", dict(_LANDSAT), "qa_pixel",
                                              "landsat_qa_pixel", "none", 0.0000275, -0.2, _OLI),
            "sentinel-2-l1c": CollectionPreset("sentinel-2-l1c", dict(_S2_L1C_COMMON), None, "classes",
                                               "s2_baseline"),
        }),
    # any STAC API whose assets are named like eoembed's bands (e.g. a self-hosted one)
    "generic": StacPreset(
        name="generic", url=None, sign=False, collections={
            "sentinel-2-l2a": CollectionPreset("sentinel-2-l2a", {}, "SCL", "classes", "s2_baseline"),
            "landsat-c2-l2": CollectionPreset("landsat-c2-l2", {}, "QA_PIXEL", "landsat_qa_pixel",
                                              "none", 0.0000275, -0.2, _OLI),
            "sentinel-2-l1c": CollectionPreset("sentinel-2-l1c", {}, None, "classes", "s2_baseline"),
            "sentinel-1-grd": CollectionPreset("sentinel-1-grd", {}, None, "classes", "none", 1.0, 0.0),
            "sentinel-1-rtc": CollectionPreset("sentinel-1-rtc", {}, None, "classes", "none", 1.0, 0.0),
            "hls": CollectionPreset("hls", {}, "Fmask", "hls_fmask", "none"),
        }),
}


def get_preset(name: str) -> StacPreset:
    """The preset called ``name``.

    Raises:
        ConfigError: naming the allowed presets.
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"preset={name!r} is invalid: allowed one of {sorted(PRESETS)}") from None


def _baseline(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def s2_dn_offset(properties: dict[str, Any], asset: dict[str, Any] | None,
                 when: dt.datetime) -> float:
    """DN to add to a Sentinel-2 L2A asset so values are reflectance x 10000 without offset.

    Order of evidence: the asset's ``raster:bands[0]`` ``offset``/``scale`` when present
    (e.g. Earth Search: scale 0.0001, offset -0.1 -> -1000); else the item's
    ``s2:processing_baseline`` (>= 04.00 -> -1000); else the acquisition date
    (>= 2022-01-25 -> -1000).
    """
    bands = (asset or {}).get("raster:bands") or []
    if bands and isinstance(bands[0], dict) and "offset" in bands[0]:
        scale = float(bands[0].get("scale") or 1e-4)
        return round(float(bands[0]["offset"]) / scale, 6)
    baseline = _baseline(properties.get("s2:processing_baseline"))
    if baseline is not None:
        return S2_BOA_ADD_OFFSET if baseline >= 4.0 else 0.0
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    return S2_BOA_ADD_OFFSET if when >= S2_BASELINE_04_START else 0.0


def landsat_qa_to_classes(qa_pixel: np.ndarray) -> np.ndarray:
    """Map Landsat C2 ``QA_PIXEL`` bit flags to SCL-like classes (uint8).

    Bits (USGS): 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow,
    6 clear, 7 water. Precedence: fill -> 0, cloud or dilated cloud -> 8, cirrus -> 10,
    shadow -> 3, snow -> 11, water -> 6, clear -> 4, anything else -> 7 (unclassified).
    """
    q = np.asarray(qa_pixel).astype(np.uint32)

    def bit(n: int) -> np.ndarray:
        return (q >> n) & 1 == 1

    out = np.full(q.shape, 7, np.uint8)
    for mask, code in ((bit(6), 4), (bit(7), 6), (bit(5), 11), (bit(4), 3), (bit(2), 10),
                       (bit(1) | bit(3), 8), (bit(0), 0)):  # lowest precedence first
        out[mask] = code
    return out


def hls_fmask_to_classes(fmask: np.ndarray) -> np.ndarray:
    """Map HLS v2.0 ``Fmask`` bit flags to SCL-like classes (uint8).

    Bits (HLS v2.0 user guide): 0 cirrus, 1 cloud, 2 adjacent to cloud/shadow, 3 cloud shadow,
    4 snow/ice, 5 water, 6-7 aerosol level; 255 is fill. Precedence: fill -> 0, cloud or adjacent
    -> 8, cirrus -> 10, shadow -> 3, snow/ice -> 11, water -> 6, anything else -> 4 (clear; the
    aerosol level does not invalidate a pixel).
    """
    q = np.asarray(fmask).astype(np.uint32)

    def bit(n: int) -> np.ndarray:
        return (q >> n) & 1 == 1

    out = np.full(q.shape, 4, np.uint8)
    for mask, code in ((bit(5), 6), (bit(4), 11), (bit(3), 3), (bit(0), 10), (bit(1) | bit(2), 8),
                       (q == 255, 0)):  # lowest precedence first
        out[mask] = code
    return out


#: ``qa_kind`` -> function turning a bit-flag quality band into SCL-like class codes.
QA_DECODERS = {"landsat_qa_pixel": landsat_qa_to_classes, "hls_fmask": hls_fmask_to_classes}

#: ``qa_kind`` -> (SCL-like class -> raw flag value that decodes to it, raw fill value): how a
#: constant, cloud-free quality band is written for a bit-flag collection (``build_catalog``).
QA_ENCODINGS = {"landsat_qa_pixel": ({4: 1 << 6, 6: 1 << 7, 7: 0, 11: 1 << 5}, 1),
                "hls_fmask": ({4: 0, 6: 1 << 5, 11: 1 << 4}, 255)}
