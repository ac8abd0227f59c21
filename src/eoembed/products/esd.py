"""Embedded Seamless Data (ESD): annual 30 m Landsat/MODIS embeddings stored as FSQ codes.

Layout (``models.esd.source`` = a GeoTIFF or a directory of GeoTIFFs; annual files carry the year
in their path, e.g. ``2020/esd_tile.tif`` or ``esd_2020_h10v05.tif``): ``uint16`` bands, one per
temporal latent step (12 per year in the published product). Each code is one index of a finite
scalar quantization (FSQ) codebook with levels ``(8, 8, 8, 5, 5, 5)`` (64,000 codes) and decodes
to 6 values, so 12 bands give 72-d embeddings (band-major: band 0's 6 values, then band 1's, ...).

Decoding follows the FSQ reference convention (Mentzer et al. 2024): ``digit_k = (code //
prod(levels[:k])) % levels[k]`` (the first level is the least significant) and
``value_k = (digit_k - levels[k] // 2) / (levels[k] // 2)``, i.e. values in [-1, 0.75] for 8 levels
and [-1, 1] for 5 levels. Codes ``>= 64000`` and the file's nodata value mean no data. Codes are
resampled with nearest neighbour and decoded **afterwards**, never interpolated.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from eoembed.items import Request
from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PixelProduct
from eoembed.products.raster import raster_nodata, tiles_covering

__all__ = ["EmbeddedSeamlessData", "FSQ_LEVELS", "decode_fsq"]

FSQ_LEVELS = (8, 8, 8, 5, 5, 5)
FILL = 65535


def decode_fsq(codes: np.ndarray, levels: tuple[int, ...] = FSQ_LEVELS, nodata: int | None = None) -> np.ndarray:
    """``(bands, h, w)`` integer codes -> float32 ``(bands * len(levels), h, w)``; NaN where no data."""
    levels_arr = np.asarray(levels, dtype=np.int64)
    basis = np.concatenate([[1], np.cumprod(levels_arr[:-1])])
    c = codes.astype(np.int64)
    bad = c >= int(np.prod(levels_arr))
    if nodata is not None:
        bad |= codes == nodata
    digits = (c[:, None] // basis[None, :, None, None]) % levels_arr[None, :, None, None]
    half = (levels_arr // 2)[None, :, None, None]
    vals = ((digits - half) / half).astype(np.float32)
    vals = np.where(bad[:, None], np.nan, vals)
    return vals.reshape(codes.shape[0] * len(levels), *codes.shape[1:]).astype(np.float32)


@lru_cache(maxsize=256)
def _nodata(path: str) -> int | None:
    nd = raster_nodata(path)
    return int(nd) if nd is not None else None


class EmbeddedSeamlessData(PixelProduct):
    """ESD annual embeddings: uint16 FSQ codes decoded after nearest-neighbour selection."""

    card = ModelCard(
        id="esd", family=PRODUCT_FAMILY, kind="precomputed",
        description="Embedded Seamless Data: annual 30 m Landsat+MODIS embeddings, 12 FSQ codes x 6 values",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=30.0, input_size=None,
        temporal="single", frames=1, dims=72, outputs=("pooled", "grid"),
        licence="CC-BY-4.0",
        citation="Chen et al. (2026), Democratizing planetary-scale analysis: an ultra-lightweight Earth "
                 "embedding database for accurate and flexible global land monitoring, ESSD "
                 "(preprint essd-2026-57), doi:10.5194/essd-2026-57",
        url="https://essd.copernicus.org/preprints/essd-2026-57/", mem_mb=2000, runtime_min=30)
    years = (2000, 2024)
    res_m = 30.0
    source_help = "a uint16 GeoTIFF or a directory of them, with the year in each file's path"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bands = 12
        self._file_nodata: int | None = None

    def describe(self):
        return {**super().describe(), "dims": self._bands * len(FSQ_LEVELS)}

    def tiles(self, request: Request, year: int | None) -> list:
        tiles = tiles_covering(self.source, request.spatial.geometry(), year)
        if tiles:
            self._bands = tiles[0].count
            self._file_nodata = _nodata(tiles[0].name)
        return tiles

    def raw_format(self, tiles: list) -> tuple[int, object, float]:
        return tiles[0].count, np.uint16, self._file_nodata if self._file_nodata is not None else FILL

    def decode(self, raw: np.ndarray) -> np.ndarray:
        fill = self._file_nodata if self._file_nodata is not None else FILL
        return decode_fsq(raw, FSQ_LEVELS, nodata=fill)
