"""Presto embeddings over Togo (128-d, 10 m), published as uint16 GeoTIFF tiles.

Layout (``models.presto_togo.source`` = a GeoTIFF, or a directory of the published tiles
``Togo_Presto_embeddings_v2025_06_19<row>-<col>.tif``, EPSG:25231): 128 ``uint16`` bands.
Value mapping: ``value = raw * scale + offset`` with ``scale``/``offset`` read from each GeoTIFF's
per-band scale/offset tags (GDAL metadata); options ``scale``/``offset`` override them. The
published mapping could not be verified offline (see docs/products.md): with neither tags nor
options, raw values are returned unscaled and the record says so (``value_mapping``). A pixel
whose bands all equal the file's nodata value (0 when unset) reads as NaN.

Time: one static layer for March 2019 - March 2020 (the window the embeddings were computed over;
the date in the file name is the release date), ``coverage = [2019-03-01, 2020-03-01)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.items import Request
from eoembed.products.base import ProductCard, Read
from eoembed.products.pixel import PixelProduct
from eoembed.products.raster import Tile, decoded_tile, raster_meta, tiles_covering

__all__ = ["PrestoTogo", "decode_linear"]


def decode_linear(raw: np.ndarray, scale, offset, nodata: float) -> np.ndarray:
    """``raw * scale + offset`` per band (float32), NaN where ``raw == nodata`` in every band."""
    s = np.asarray(scale, np.float32).reshape(-1, 1, 1)
    o = np.asarray(offset, np.float32).reshape(-1, 1, 1)
    out = raw.astype(np.float32) * s + o
    out[:, (raw == nodata).all(axis=0)] = np.nan
    return out


class PrestoTogo(PixelProduct):
    """Presto (pixel-timeseries transformer) embeddings of Togo, March 2019 - March 2020."""

    card = ProductCard(
        id="presto_togo",
        description="Presto 128-d pixel embeddings over Togo at 10 m (uint16 GeoTIFF), "
                    "March 2019 - March 2020",
        dims=128, outputs=("pooled", "grid"), native_gsd_m=10.0,
        layout=("Togo_Presto_embeddings_v2025_06_19<row>-<col>.tif: uint16 GeoTIFF tiles, 128 bands, "
                "EPSG:25231",),
        temporal="static", coverage=("2019-03-01", "2020-03-01"),
        dequantisation="raw * scale + offset from the GeoTIFF tags (or options); none known otherwise; "
                       "nodata (default 0) in every band = no data",
        licence="CC-BY-4.0",
        citation="Tseng et al. (2023), Lightweight, Pre-trained Transformers for Remote Sensing Timeseries "
                 "(Presto), arXiv:2304.14065; embeddings: arXiv:2511.02923",
        url="https://huggingface.co/datasets/izvonkov/Togo_Presto_Embeddings", mem_mb=2000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {
        **{k: v for k, v in PixelProduct.default_options.items() if k != "year"},
        "scale": None, "offset": None}
    source_help = "the Togo Presto uint16 GeoTIFF or a directory of its tiles"

    def _tile(self, tile: Tile) -> tuple[Tile, str]:
        meta = raster_meta(tile.name)
        nodata = meta.nodata if meta.nodata is not None else 0
        tagged = any(s != 1 for s in meta.scales) or any(o != 0 for o in meta.offsets)
        scale = self.options["scale"] if self.options["scale"] is not None else meta.scales
        offset = self.options["offset"] if self.options["offset"] is not None else meta.offsets
        explicit = self.options["scale"] is not None or self.options["offset"] is not None
        mapping = "options" if explicit else ("geotiff scale/offset tags" if tagged else "none (raw)")
        return decoded_tile(tile, lambda raw: decode_linear(raw, scale, offset, nodata), tile.count), mapping

    def tiles(self, request: Request, year: int | None) -> list:
        got = [self._tile(t) for t in tiles_covering(self.source, request.spatial.geometry())]
        self._mappings = {t.name: m for t, m in got}
        return [t for t, _ in got]

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        got = super().read(request, pooling=pooling, grid=grid, cell_m=cell_m)
        used = got.extra["product_files"]
        got.extra["value_mapping"] = "; ".join(sorted({self._mappings[f] for f in used}))
        return got
