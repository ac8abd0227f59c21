"""Landsat-Collection-2-Level-2-like scenes for the stand-ins: uint16 SR COGs + ``QA_PIXEL``.

:func:`write_landsat` writes, around a given ROI grid (30 m, UTM), one folder per scene with
one COG per surface-reflectance band (uint16 DN, nodata 0) and a ``qa_pixel`` COG (uint16 bit
flags, nodata 1 = fill), named by the common-name asset keys the Planetary Computer and Earth
Search use (``coastal, blue, green, red, nir08, swir16, swir22, qa_pixel``), plus an
``index.json`` ItemCollection with relative hrefs (serve it with :class:`CogServer` and
:func:`rewrite_hrefs`). The caller chooses which ROI-grid pixels carry which ``QA_PIXEL``
value; pixels listed in ``fill`` get QA 1 and DN 0 in every band. Everything else is clear
land (QA 21824) with seeded DN values. GENERATED test data, not real Landsat imagery.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from eoembed.grid import GridSpec, to_crs

__all__ = ["ASSETS", "CLEAR", "LandsatScene", "write_landsat"]

#: asset keys of the surface-reflectance bands, as the STAC catalogues name them
ASSETS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
#: ``QA_PIXEL`` of clear land, low cloud/shadow/snow/cirrus confidence (USGS example value)
CLEAR = 21824


@dataclass
class LandsatScene:
    """One scene to write.

    Attributes:
        id: Item id.
        when: Acquisition time (UTC).
        platform: Item ``platform`` (``landsat-8``, ``landsat-9``, ``landsat-7`` ...).
        cloud_cover: Item ``eo:cloud_cover``.
        qa: ROI-grid ``(row, col)`` -> ``QA_PIXEL`` value for that pixel.
        fill: ROI-grid ``(row, col)`` pixels that are fill (QA 1, DN 0 in every band).
        seed: Seed of the DN values.
    """

    id: str
    when: dt.datetime
    platform: str = "landsat-8"
    cloud_cover: float = 10.0
    qa: dict[tuple[int, int], int] = field(default_factory=dict)
    fill: set[tuple[int, int]] = field(default_factory=set)
    seed: int = 0


def _write(path: Path, array: np.ndarray, grid: GridSpec, x0: float, y1: float, nodata: int) -> None:
    res = grid.transform[0]
    profile = {"driver": "COG", "width": array.shape[1], "height": array.shape[0], "count": 1,
               "dtype": "uint16", "crs": grid.crs, "nodata": nodata, "compress": "deflate",
               "transform": Affine(res, 0, x0, 0, -res, y1), "blocksize": 64}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def _asset(href: str, shape, x0: float, y1: float, res: float, qa: bool) -> dict:
    band = ({"nodata": 1, "data_type": "uint16", "unit": "bit index"} if qa else
            {"nodata": 0, "data_type": "uint16", "scale": 0.0000275, "offset": -0.2})
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"] if qa else ["data"],
            "proj:shape": list(shape), "proj:transform": [res, 0.0, x0, 0.0, -res, y1],
            "raster:bands": [band]}


def write_landsat(out_dir: str | Path, grid: GridSpec, scenes: list[LandsatScene],
                  margin_px: int = 6) -> Path:
    """Write ``scenes`` as COGs covering ``grid`` plus ``margin_px`` on every side.

    The COG pixels are aligned with ``grid`` (same CRS and resolution), so ROI-grid pixel
    ``(r, c)`` is COG pixel ``(r + margin_px, c + margin_px)``.

    Returns:
        Path of ``index.json`` (an ItemCollection, asset hrefs relative to its folder).
    """
    out = Path(out_dir)
    res = grid.transform[0]
    x0, y1 = grid.transform[2] - margin_px * res, grid.transform[5] + margin_px * res
    h, w = grid.height + 2 * margin_px, grid.width + 2 * margin_px
    xs = np.array([x0, x0 + w * res, x0 + w * res, x0, x0])
    ys = np.array([y1, y1, y1 - h * res, y1 - h * res, y1])
    lon, lat = to_crs(xs, ys, grid.crs, "EPSG:4326")
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    features = []
    for scene in scenes:
        rng = np.random.default_rng(scene.seed)
        qa = np.full((h, w), CLEAR, np.uint16)
        for (r, c), value in scene.qa.items():
            qa[r + margin_px, c + margin_px] = value
        fill = np.zeros((h, w), bool)
        for r, c in scene.fill:
            fill[r + margin_px, c + margin_px] = True
        qa[fill] = 1
        assets = {}
        for key in ASSETS:
            dn = rng.integers(7273, 30000, (h, w), dtype=np.uint16)  # reflectance 0 .. 0.625
            dn[fill] = 0
            _write(out / scene.id / f"{key}.tif", dn, grid, x0, y1, nodata=0)
            assets[key] = _asset(f"{scene.id}/{key}.tif", (h, w), x0, y1, res, qa=False)
        _write(out / scene.id / "qa_pixel.tif", qa, grid, x0, y1, nodata=1)
        assets["qa_pixel"] = _asset(f"{scene.id}/qa_pixel.tif", (h, w), x0, y1, res, qa=True)
        features.append({
            "type": "Feature", "stac_version": "1.1.0", "id": scene.id,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v2.0.0/schema.json",
                                "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "collection": "landsat-c2-l2",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": [min(lon), min(lat), max(lon), max(lat)],
            "properties": {"datetime": scene.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "platform": scene.platform, "eo:cloud_cover": scene.cloud_cover,
                           "proj:code": grid.crs, "eoembed:generated": True},
            "assets": assets, "links": []})
    index = out / "index.json"
    index.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return index
