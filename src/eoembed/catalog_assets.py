"""The assets :func:`eoembed.catalog.build_catalog` writes into a STAC item: single-band COGs,
their STAC asset dicts, the constant quality raster, and the assets of a multi-band file kept
as it is (``split=False``); plus the item's lon/lat footprint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from eoembed.chunkio import atomic_output
from eoembed.collections import Collection
from eoembed.grid import to_crs

__all__ = ["write_band_cog"]

_COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_COG_BLOCK = 256


def write_band_cog(path: Path, array: np.ndarray, crs, transform, nodata: float | None, band: str,
                   resampling: str, *, blocksize: int = _COG_BLOCK,
                   tags: dict[str, str] | None = None) -> None:
    """Atomically write one single-band COG (tiled, deflate, overviews when large enough).

    Used for the per-band assets of :func:`build_catalog` and of the generated demo imagery.
    """
    import rasterio

    with atomic_output(path, ".tif") as tmp:
        profile = {"driver": "COG", "width": array.shape[1], "height": array.shape[0], "count": 1,
                   "dtype": array.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
                   "compress": "deflate", "predictor": 2, "blocksize": blocksize,
                   "overview_resampling": resampling}
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array, 1)
            dst.set_band_description(1, band)
            dst.update_tags(band=band, **(tags or {}))


def _footprint(crs: str, bounds: tuple[float, float, float, float]) -> tuple[dict, list[float]]:
    """Lon/lat GeoJSON polygon (edges densified) and bbox of a projected rectangle."""
    import shapely
    from shapely.geometry import box, mapping

    left, bottom, right, top = bounds
    ring = shapely.segmentize(box(left, bottom, right, top), max((right - left), (top - bottom)) / 8)
    xy = np.asarray(ring.exterior.coords)
    lon, lat = to_crs(xy[:, 0], xy[:, 1], crs, "EPSG:4326")
    poly = shapely.Polygon(np.round(np.column_stack([lon, lat]), 7))
    return mapping(poly), [float(v) for v in poly.bounds]


def _asset(href: str, shape: tuple[int, int], transform, dtype: str, nodata: float | None, res: float,
           title: str, roles: list[str], scale: float | None, offset: float = 0.0,
           unit: str | None = None) -> dict:
    band: dict[str, Any] = {"data_type": dtype, "spatial_resolution": res}
    if unit:
        band["unit"] = unit
    if nodata is not None:
        band["nodata"] = nodata
    if scale is not None:
        band.update(scale=scale, offset=offset)
    return {"href": href, "type": _COG_MEDIA_TYPE, "title": title, "roles": roles,
            "proj:shape": [int(shape[0]), int(shape[1])], "proj:transform": list(transform)[:6],
            "raster:bands": [band]}


def _qa_raw(qa_value: int, coll: Collection) -> tuple[int, int]:
    """(stored value, stored fill) of a constant quality band: the class itself (fill 0), or for
    a bit-flag band the flags that decode to it (:data:`~eoembed.providers.presets.QA_ENCODINGS`)."""
    from eoembed.providers.presets import QA_ENCODINGS

    if coll.qa_kind not in QA_ENCODINGS:
        return qa_value, 0
    values, fill = QA_ENCODINGS[coll.qa_kind]
    return values[qa_value], fill


def _qa_raster(data: np.ndarray, nodata: float | None, crs, transform, qa_res: float, qa_value: int,
               fill: int = 0):
    """Constant quality raster on a grid of ``qa_res`` with the image's origin: ``qa_value`` where a
    cell covers any pixel with data, ``fill`` elsewhere. Returns (array uint8, transform)."""
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    _, height, width = data.shape
    has_data = np.ones((height, width), np.uint8) if nodata is None else \
        (data != nodata).any(axis=0).astype(np.uint8)
    res_x, res_y = abs(transform.a), abs(transform.e)  # pixels need not be square
    qa_res = max(qa_res, res_x, res_y)
    dst_transform = Affine(qa_res, 0.0, transform.c, 0.0, -qa_res, transform.f)
    shape = (math.ceil(height * res_y / qa_res - 1e-9), math.ceil(width * res_x / qa_res - 1e-9))
    cover = np.zeros(shape, np.uint8)
    reproject(has_data, cover, src_transform=transform, dst_transform=dst_transform,
              src_crs=crs, dst_crs=crs, resampling=Resampling.max)
    return np.where(cover > 0, np.uint8(qa_value), np.uint8(fill)), dst_transform


def _multiband_assets(path: Path, data: np.ndarray, transform, nodata, res: float,
                      band_names: tuple[str, ...], coll: Collection, qa: int | None,
                      units: str | None, offset: float = 0.0) -> dict[str, dict]:
    """Assets of ``split=False``: every band points at band ``i + 1`` of the user's file; the
    constant quality band is virtual (no file)."""
    from eoembed.providers.reader import BAND_INDEX, CONSTANT

    assets = {}
    for i, band in enumerate(band_names):
        asset = _asset(str(path), data.shape[1:], transform, data.dtype.name, nodata, res,
                       f"{band} (band {i + 1} of {path.name})",
                       ["data", "backscatter" if coll.is_sar else "reflectance"],
                       coll.scale if coll.scale != 1.0 else None, offset=offset, unit=units)
        asset["type"] = "image/tiff; application=geotiff"
        assets[band] = {**asset, BAND_INDEX: i + 1}
    if qa is not None:
        raw, fill = _qa_raw(qa, coll)
        asset = _asset(str(path), data.shape[1:], transform, "uint8", fill, res,
                       f"constant {coll.qa_band}={raw} (class {qa}, assumed cloud-free; {fill} = "
                       "no data), not a file: eoembed sets it wherever a band has data", ["data"], None)
        assets[coll.qa_band] = {**asset, CONSTANT: raw}
    return assets
