"""Embedded Seamless Data (ESD): annual 30 m Landsat/MODIS embeddings stored as FSQ codes.

Layout (``models.esd.source`` = a GeoTIFF or a directory of GeoTIFFs; annual files carry the year
in their path, as published ``SDC30_EBD_V001/<year>/SDC30_EBD_V001_<MGRS>_<year>.tif``): **13**
``uint16`` bands. Bands 1-12 are FSQ codes, one per temporal latent step; band 13 is a **quality
band** (the number of cloud-free Landsat observations), not a code, and is not decoded. Each code
is one index of a finite scalar quantization (FSQ) codebook with levels ``(8, 8, 8, 5, 5, 5)``
(64,000 codes) and decodes to 6 values, so the 12 codes give 72-d embeddings (band-major: band
1's 6 values, then band 2's, ...).

Decoding follows the FSQ reference convention (Mentzer et al. 2024), as ESD's own decoder and
TorchGeo's ``ESDQuantizer`` do: ``digit_k = (code // prod(levels[:k])) % levels[k]`` (the first
level is the least significant) and ``value_k = (digit_k - levels[k] // 2) / (levels[k] // 2)``.
A pixel has **no data** where all 12 codes are 0 (the product's conversion demo masks it so), or
where a code is the file's nodata value or ``>= 64000``. Codes are picked with nearest neighbour,
never interpolated.
"""

from __future__ import annotations

import numpy as np

from eoembed.errors import ProviderError
from eoembed.items import Request
from eoembed.products.base import ProductCard
from eoembed.products.pixel import PixelProduct
from eoembed.products.raster import Tile, decoded_tile, raster_meta, tiles_covering

__all__ = ["CODE_BANDS", "EmbeddedSeamlessData", "FSQ_LEVELS", "decode_esd", "decode_fsq"]

FSQ_LEVELS = (8, 8, 8, 5, 5, 5)
#: Bands holding FSQ codes (the 13th band of the published files is a quality band).
CODE_BANDS = 12
DIMS = CODE_BANDS * len(FSQ_LEVELS)


def decode_fsq(codes: np.ndarray, levels: tuple[int, ...] = FSQ_LEVELS) -> np.ndarray:
    """``(bands, h, w)`` integer codes -> float32 ``(bands * len(levels), h, w)`` FSQ values."""
    levels_arr = np.asarray(levels, dtype=np.int64)
    basis = np.concatenate([[1], np.cumprod(levels_arr[:-1])])
    c = codes.astype(np.int64)
    digits = (c[:, None] // basis[None, :, None, None]) % levels_arr[None, :, None, None]
    half = (levels_arr // 2)[None, :, None, None]
    vals = ((digits - half) / half).astype(np.float32)
    return vals.reshape(codes.shape[0] * len(levels), *codes.shape[1:])


def decode_esd(raw: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """``(13 or 12, h, w)`` ESD bands -> float32 ``(72, h, w)``; NaN where the pixel has no data."""
    if raw.shape[0] < CODE_BANDS:
        raise ProviderError(f"esd: a file has {raw.shape[0]} bands; allowed: 12 FSQ code bands "
                            f"(+ the quality band)")
    codes = raw[:CODE_BANDS]
    bad = (codes == 0).all(axis=0) | (codes >= int(np.prod(FSQ_LEVELS))).any(axis=0)
    if nodata is not None:
        bad |= (codes == nodata).any(axis=0)
    out = decode_fsq(codes)
    out[:, bad] = np.nan
    return out


def esd_tile(tile: Tile) -> Tile:
    """``tile`` decoded with its own nodata value."""
    nodata = raster_meta(tile.name).nodata
    return decoded_tile(tile, lambda raw: decode_esd(raw, nodata), DIMS)


class EmbeddedSeamlessData(PixelProduct):
    """ESD annual embeddings: 12 uint16 FSQ codes (+ a quality band) decoded per pixel."""

    card = ProductCard(
        id="esd",
        description="Embedded Seamless Data: annual 30 m Landsat+MODIS embeddings, 12 FSQ codes x 6 values",
        dims=DIMS, outputs=("pooled", "grid"), native_gsd_m=30.0,
        layout=("SDC30_EBD_V001/<year>/SDC30_EBD_V001_<MGRS>_<year>.tif: 13 uint16 bands "
                "(12 FSQ codes + 1 quality band), the year in each path",),
        temporal="annual", coverage=("2000-01-01", "2025-01-01"),
        dequantisation="FSQ levels (8,8,8,5,5,5), first level least significant, (d - L//2)/(L//2); "
                       "band 13 (cloud-free observation count) not decoded; all 12 codes 0 = no data",
        licence="CC-BY-4.0",
        citation="Chen et al. (2026), Democratizing planetary-scale analysis: an ultra-lightweight Earth "
                 "embedding database for accurate and flexible global land monitoring, arXiv:2601.11183; "
                 "ESSD preprint doi:10.5194/essd-2026-57",
        url="https://data-starcloud.pcl.ac.cn/iearthdata/64", mem_mb=2000, runtime_min=30)
    source_help = "a uint16 GeoTIFF or a directory of them, with the year in each file's path"

    def tiles(self, request: Request, year: int | None) -> list:
        return [esd_tile(t) for t in tiles_covering(self.source, request.spatial.geometry(), year)]
