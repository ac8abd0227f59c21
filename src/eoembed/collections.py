"""Known imagery collections: band names, native resolutions and quality-band rules.

This table is data: adding a collection means adding an entry here, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Collection:
    """Facts about one imagery collection.

    Attributes:
        id: Collection id as used in configs (``"sentinel-2-l2a"``).
        bands: Band names in canonical order.
        native_gsd_m: Native ground sampling distance per band, metres.
        wavelengths_nm: Central wavelength per band, nanometres (``None`` for non-optical).
        qa_band: Name of the per-pixel quality band, or ``None``.
        invalid_qa: Quality-band classes treated as invalid (cloud, shadow, no data, ...).
        scale: Multiply digital numbers by this to get physical reflectance.
        nodata: Digital number meaning "no data".
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
)

COLLECTIONS: dict[str, Collection] = {c.id: c for c in (SENTINEL2_L2A,)}


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
