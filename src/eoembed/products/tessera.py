"""Tessera annual embeddings (128-d, 10 m) in the two layouts geotessera publishes.

``models.tessera.source`` is a directory holding either or both of:

1. **geotessera tiles** (one per 0.1° cell, named by the cell centre, e.g. ``grid_0.15_52.05``)::

       global_0.1_degree_representation/<year>/grid_<lon>_<lat>/grid_<lon>_<lat>.npy         int8 (H, W, 128)
       global_0.1_degree_representation/<year>/grid_<lon>_<lat>/grid_<lon>_<lat>_scales.npy  float32 (H, W) or (H, W, 128)
       global_0.1_degree_tiff_all/grid_<lon>_<lat>.tiff   landmask tile: the cell's UTM CRS and transform

   (the ``grid_<lon>_<lat>/`` sub-directory is optional). Values are dequantized
   ``int8 * scales``; pixels whose scale is 0 or not finite have no data.
2. the **GeoTIFF export** ``grid_<lon>_<lat>_<year>.tiff`` (float32, 128 bands, product-native UTM).

Both are read on the product's native UTM grid and resampled with nearest neighbour.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from eoembed.errors import ProviderError
from eoembed.items import Request
from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PixelProduct
from eoembed.products.raster import Tile, raster_nodata, raster_tile

__all__ = ["Tessera", "cell_centres", "dequantize_tessera", "npy_tile"]

DIMS = 128


def dequantize_tessera(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``(rows, cols, 128)`` int8 and ``(rows, cols[, 128])`` scales -> float32 ``(128, rows, cols)``.

    Pixels whose scale is 0 or not finite (in every band) are NaN.
    """
    s = scales.astype(np.float32)
    if s.ndim == 2:
        s = s[..., None]
    out = q.astype(np.float32) * s
    bad = ~(np.isfinite(s) & (s != 0)).any(axis=-1)
    out[bad] = np.nan
    return np.moveaxis(out, -1, 0).astype(np.float32)


def cell_centres(bounds: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Centres ``(lon, lat)`` of the 0.1° cells touching lon/lat ``bounds``."""
    minx, miny, maxx, maxy = bounds
    lons = range(math.floor(minx * 10), math.floor(maxx * 10) + 1)
    lats = range(math.floor(miny * 10), math.floor(maxy * 10) + 1)
    return [(round(i / 10 + 0.05, 2), round(j / 10 + 0.05, 2)) for i in lons for j in lats]


def npy_tile(npy: Path, scales: Path, landmask: Path) -> Tile:
    """A :class:`Tile` over a geotessera ``.npy`` + scales pair, georeferenced by its landmask."""
    geo = raster_tile(str(landmask))
    q = np.load(npy, mmap_mode="r")
    s = np.load(scales, mmap_mode="r")
    if q.ndim != 3 or q.shape[:2] != (geo.height, geo.width) or s.shape[:2] != q.shape[:2]:
        raise ProviderError(f"tessera tile {npy.name}: shape {q.shape} / scales {s.shape} do not match "
                            f"its landmask {geo.height}x{geo.width}")

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return dequantize_tessera(np.asarray(q[r0:r1, c0:c1]), np.asarray(s[r0:r1, c0:c1]))

    return Tile(str(npy), geo.crs, geo.transform, geo.width, geo.height, q.shape[2], read)


def float_tile(path: str) -> Tile:
    """A float GeoTIFF as a :class:`Tile` whose nodata value (if any) reads as NaN."""
    from dataclasses import replace

    tile, nodata = raster_tile(path), raster_nodata(path)

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        arr = tile.read(r0, r1, c0, c1).astype(np.float32)
        if nodata is not None and not np.isnan(nodata):
            arr[arr == np.float32(nodata)] = np.nan
        return arr

    return replace(tile, read=read)


def _name(lon: float, lat: float) -> str:
    return f"grid_{lon:.2f}_{lat:.2f}"


class Tessera(PixelProduct):
    """Tessera (Sentinel-1 + Sentinel-2 annual embeddings), from geotessera tiles or its GeoTIFFs."""

    card = ModelCard(
        id="tessera", family=PRODUCT_FAMILY, kind="precomputed",
        description="Tessera annual 128-d pixel embeddings from Sentinel-1/2 at 10 m (geotessera tiles)",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=10.0, input_size=None,
        temporal="single", frames=1, dims=DIMS, outputs=("pooled", "grid"),
        licence="CC-BY-4.0 (embeddings); geotessera code MIT",
        citation="Feng et al. (2025), TESSERA: Temporal Embeddings of Surface Spectra for Earth "
                 "Representation and Analysis, arXiv:2506.20380",
        url="https://github.com/ucam-eo/geotessera", mem_mb=4000, runtime_min=30)
    years = (2017, 2025)
    res_m = 10.0
    source_help = ("a directory with global_0.1_degree_representation/<year>/ + "
                   "global_0.1_degree_tiff_all/, or GeoTIFF exports grid_<lon>_<lat>_<year>.tiff")

    def _open(self) -> None:
        root = Path(self.source)
        self._exports = {}
        for p in root.rglob("grid_*_*_*.tif*"):
            m = re.fullmatch(r"grid_(-?\d+\.\d+)_(-?\d+\.\d+)_(\d{4})\.tiff?", p.name)
            if m:
                self._exports[(float(m[1]), float(m[2]), int(m[3]))] = p

    def _npy_paths(self, lon: float, lat: float, year: int) -> tuple[Path, Path, Path] | None:
        root, name = Path(self.source), _name(lon, lat)
        base = root / "global_0.1_degree_representation" / str(year)
        landmask = root / "global_0.1_degree_tiff_all" / f"{name}.tiff"
        for d in (base / name, base):
            if (d / f"{name}.npy").exists() and (d / f"{name}_scales.npy").exists() and landmask.exists():
                return d / f"{name}.npy", d / f"{name}_scales.npy", landmask
        return None

    def tiles(self, request: Request, year: int | None) -> list:
        out = []
        for lon, lat in cell_centres(request.spatial.geometry().bounds):
            export = self._exports.get((lon, lat, year))
            if export is not None:
                out.append(float_tile(str(export)))
                continue
            paths = self._npy_paths(lon, lat, year)
            if paths is not None:
                out.append(npy_tile(*paths))
        return out

    def raw_format(self, tiles: list) -> tuple[int, object, float]:
        return DIMS, np.float32, float("nan")

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return raw.astype(np.float32)

