"""Copernicus-Embed: one global 768-d embedding map at 0.25 degrees (2021), EPSG:4326.

Layout (``models.copernicus_embed.source`` = the GeoTIFF, or a directory holding it): one float
GeoTIFF in EPSG:4326 with 768 bands at 0.25°. Ocean pixels are stored as **0 in every band**; they
mean "no data" and read as NaN. The ROI grid is the ROI's UTM zone at 27,830 m (0.25° at the
equator); with option ``native_grid: true`` the grid is the product's own 0.25° lattice.
"""

from __future__ import annotations

import numpy as np

from eoembed.items import Request
from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PixelProduct
from eoembed.products.raster import tiles_covering

__all__ = ["CopernicusEmbed", "ocean_to_nan"]


def ocean_to_nan(raw: np.ndarray) -> np.ndarray:
    """Float32 copy of ``(768, h, w)`` with pixels that are 0 in every band set to NaN."""
    out = raw.astype(np.float32)
    out[:, (out == 0).all(axis=0)] = np.nan
    return out


class CopernicusEmbed(PixelProduct):
    """Copernicus-Embed-025deg: global 768-d embeddings of Copernicus-Pretrain (2021)."""

    card = ModelCard(
        id="copernicus_embed", family=PRODUCT_FAMILY, kind="precomputed",
        description="Copernicus-Embed: global 768-d embeddings at 0.25 degrees from Copernicus-FM (2021)",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=27830.0, input_size=None,
        temporal="single", frames=1, dims=768, outputs=("pooled", "grid"),
        licence="CC-BY-4.0",
        citation="Wang et al. (2025), Towards a Unified Copernicus Foundation Model for Earth Vision, "
                 "arXiv:2503.11849",
        url="https://huggingface.co/datasets/wangyi111/Copernicus-Embed-025deg", mem_mb=4000, runtime_min=30)
    years = (2021, 2021)
    res_m = 27830.0
    source_help = "the Copernicus-Embed GeoTIFF (EPSG:4326, 768 bands) or its directory"

    def tiles(self, request: Request, year: int | None) -> list:
        return tiles_covering(self.source, request.spatial.geometry())

    def raw_format(self, tiles: list) -> tuple[int, object, float]:
        return tiles[0].count, np.float32, float("nan")

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return ocean_to_nan(raw)
