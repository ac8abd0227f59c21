"""Copernicus-Embed: one global 768-d embedding map at 0.25 degrees (2021), EPSG:4326.

Layout (``models.copernicus_embed.source`` = the GeoTIFF ``embed_map_310k.tif``, or a directory
holding it): one float GeoTIFF in EPSG:4326 with 768 bands at 0.25° (721 x 1440 pixels, pixel
centres on multiples of 0.25°). Ocean pixels are stored as **0 in every band**; they mean
"no data" and read as NaN. A ROI larger than a cell is read on its UTM grid at 27,830 m (0.25° at
the equator); a smaller one gets the cell holding its centroid; with option ``native_grid: true``
the grid is the product's own 0.25° lattice.
"""

from __future__ import annotations

import numpy as np

from eoembed.items import Request
from eoembed.products.base import ProductCard
from eoembed.products.pixel import PixelProduct
from eoembed.products.raster import decoded_tile, tiles_covering

__all__ = ["CopernicusEmbed", "ocean_to_nan"]


def ocean_to_nan(raw: np.ndarray) -> np.ndarray:
    """Float32 copy of ``(768, h, w)`` with pixels that are 0 in every band set to NaN."""
    out = raw.astype(np.float32)
    out[:, (out == 0).all(axis=0)] = np.nan
    return out


class CopernicusEmbed(PixelProduct):
    """Copernicus-Embed-025deg: global 768-d embeddings of Copernicus-Pretrain (2021)."""

    card = ProductCard(
        id="copernicus_embed",
        description="Copernicus-Embed: global 768-d embeddings at 0.25 degrees from Copernicus-FM (2021)",
        dims=768, outputs=("pooled", "grid"), native_gsd_m=27830.0,
        layout=("embed_map_310k.tif: one float32 GeoTIFF, EPSG:4326, 0.25 deg, 768 bands",),
        temporal="annual", coverage=("2021-01-01", "2022-01-01"),
        dequantisation="float32 as stored; 0 in every band (ocean) = no data",
        licence="CC-BY-4.0",
        citation="Wang et al. (2025), Towards a Unified Copernicus Foundation Model for Earth Vision, "
                 "arXiv:2503.11849",
        url="https://huggingface.co/datasets/wangyi111/Copernicus-Embed-025deg", mem_mb=4000, runtime_min=30)
    source_help = "the Copernicus-Embed GeoTIFF (EPSG:4326, 768 bands) or its directory"

    def tiles(self, request: Request, year: int | None) -> list:
        return [decoded_tile(t, ocean_to_nan, t.count)
                for t in tiles_covering(self.source, request.spatial.geometry())]
