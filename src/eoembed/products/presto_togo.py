"""Presto embeddings over Togo (128-d, 10 m), published as a uint16 GeoTIFF.

Layout (``models.presto_togo.source`` = the GeoTIFF, or a directory of tiles): 128 ``uint16`` bands.
Value mapping: ``value = raw * scale + offset`` with ``scale``/``offset`` read from the GeoTIFF's
per-band scale/offset tags (GDAL metadata); options ``scale``/``offset`` override them. The
published mapping could not be verified offline (see docs/products.md): with neither tags nor
options, raw values are returned unscaled and the record says so (``value_mapping``). The file's
nodata value (default 0 when unset) reads as NaN. Static product (no time filtering).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from eoembed.items import Request
from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PixelProduct, Read
from eoembed.products.raster import tiles_covering

__all__ = ["PrestoTogo", "decode_linear"]


@lru_cache(maxsize=64)
def _tags(path: str) -> tuple[tuple[float, ...], tuple[float, ...], float | None]:
    import rasterio

    with rasterio.open(path) as ds:
        return tuple(ds.scales), tuple(ds.offsets), ds.nodata


def decode_linear(raw: np.ndarray, scale, offset, nodata: float) -> np.ndarray:
    """``raw * scale + offset`` per band (float32), NaN where ``raw == nodata`` in every band."""
    s = np.asarray(scale, np.float32).reshape(-1, 1, 1)
    o = np.asarray(offset, np.float32).reshape(-1, 1, 1)
    out = raw.astype(np.float32) * s + o
    out[:, (raw == nodata).all(axis=0)] = np.nan
    return out


class PrestoTogo(PixelProduct):
    """Presto (pixel-timeseries transformer) embeddings of Togo for 2019-2020 cropland mapping."""

    card = ModelCard(
        id="presto_togo", family=PRODUCT_FAMILY, kind="precomputed",
        description="Presto 128-d pixel embeddings over Togo at 10 m (uint16 GeoTIFF)",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=10.0, input_size=None,
        temporal="static", frames=1, dims=128, outputs=("pooled", "grid"),
        licence="CC-BY-4.0",
        citation="Tseng et al. (2023), Lightweight, Pre-trained Transformers for Remote Sensing Timeseries "
                 "(Presto), arXiv:2304.14065; embeddings: huggingface.co/datasets/izvonkov/Togo_Presto_Embeddings",
        url="https://huggingface.co/datasets/izvonkov/Togo_Presto_Embeddings", mem_mb=2000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {"native_grid": False, "scale": None, "offset": None}
    res_m = 10.0
    source_help = "the Togo Presto uint16 GeoTIFF or a directory of its tiles"

    def tiles(self, request: Request, year: int | None) -> list:
        tiles = tiles_covering(self.source, request.spatial.geometry())
        if tiles:
            scales, offsets, nodata = _tags(tiles[0].name)
            self._nodata = nodata if nodata is not None else 0
            tagged = any(s != 1 for s in scales) or any(o != 0 for o in offsets)
            self._scale = self.options["scale"] if self.options["scale"] is not None else scales
            self._offset = self.options["offset"] if self.options["offset"] is not None else offsets
            explicit = self.options["scale"] is not None or self.options["offset"] is not None
            self._mapping = "options" if explicit else ("geotiff scale/offset tags" if tagged else "none (raw)")
        return tiles

    def raw_format(self, tiles: list) -> tuple[int, object, float]:
        return tiles[0].count, np.uint16, self._nodata

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return decode_linear(raw, self._scale, self._offset, self._nodata)

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        got = super().read(request, pooling=pooling, grid=grid, cell_m=cell_m)
        got.extra["value_mapping"] = self._mapping
        return got
