"""Tessera annual embeddings (128-d, 10 m) in the two layouts geotessera publishes.

``models.tessera.source`` is a directory holding either or both of:

1. **geotessera tiles** (one per 0.1° cell, named by the cell centre, e.g. ``grid_0.15_52.05``)::

       global_0.1_degree_representation/<year>/grid_<lon>_<lat>/grid_<lon>_<lat>.npy         int8 (H, W, 128)
       global_0.1_degree_representation/<year>/grid_<lon>_<lat>/grid_<lon>_<lat>_scales.npy  float32 (H, W) or (H, W, 128)
       global_0.1_degree_tiff_all/grid_<lon>_<lat>.tiff   landmask tile: the cell's UTM CRS and transform

   (the ``grid_<lon>_<lat>/`` sub-directory is optional). Values are dequantized
   ``int8 * scales``; pixels whose scale is 0 or not finite have no data.
2. the **GeoTIFF export** ``grid_<lon>_<lat>_<year>.tiff`` (float32, 128 bands, product-native UTM).

Tiles are found by the **footprint of their raster** (the landmask's or the export's bounds),
not by the cell their name gives, so a raster that does not cover its named cell, or a ROI across
cells whose neighbour tile is missing (then ``partial``), is read right. Both are read on the
product's native UTM grid and resampled with nearest neighbour (or the pixel holding the centroid
for a ROI smaller than one pixel).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

import numpy as np

from eoembed.errors import ProviderError
from eoembed.items import Request
from eoembed.products.base import ProductCard
from eoembed.products.pixel import PixelProduct
from eoembed.products.raster import Tile, lonlat_bounds, raster_nodata, raster_tile

__all__ = ["Tessera", "cell_centres", "dequantize_tessera", "npy_tile"]

DIMS = 128
EXPORT = re.compile(r"grid_(-?\d+(?:\.\d+)?)_(-?\d+(?:\.\d+)?)_(\d{4})\.tiff?")


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


class Tessera(PixelProduct):
    """Tessera (Sentinel-1 + Sentinel-2 annual embeddings), from geotessera tiles or its GeoTIFFs."""

    card = ProductCard(
        id="tessera",
        description="Tessera annual 128-d pixel embeddings from Sentinel-1/2 at 10 m (geotessera tiles)",
        dims=DIMS, outputs=("pooled", "grid"), native_gsd_m=10.0,
        layout=("global_0.1_degree_representation/<year>/[grid_<lon>_<lat>/]grid_<lon>_<lat>{,_scales}.npy "
                "+ global_0.1_degree_tiff_all/grid_<lon>_<lat>.tiff (landmask: CRS and transform)",
                "grid_<lon>_<lat>_<year>.tiff anywhere under source: float32 GeoTIFF exports (128 bands)"),
        temporal="annual", coverage=("2017-01-01", "2026-01-01"),
        dequantisation="int8 * scales ((H, W) or (H, W, 128)); scale 0 or non-finite = no data; "
                       "GeoTIFF exports as stored (their nodata -> NaN)",
        licence="CC-BY-4.0 (embeddings); geotessera code MIT",
        citation="Feng et al. (2025), TESSERA: Temporal Embeddings of Surface Spectra for Earth "
                 "Representation and Analysis, arXiv:2506.20380",
        url="https://github.com/ucam-eo/geotessera", mem_mb=4000, runtime_min=30)
    source_help = ("a directory with global_0.1_degree_representation/<year>/ + "
                   "global_0.1_degree_tiff_all/, or GeoTIFF exports grid_<lon>_<lat>_<year>.tiff")

    def _open(self) -> None:
        root = Path(self.source)
        self._exports: dict[int, list[Path]] = {}
        for p in sorted(root.rglob("grid_*_*_*.tif*")):
            m = EXPORT.fullmatch(p.name)
            if m:
                self._exports.setdefault(int(m[3]), []).append(p)
        self._footprints: dict[int, list[tuple[Callable[[], Tile], tuple[float, float, float, float]]]] = {}
        self._skipped: list[tuple[str, str]] = []

    def _npy_tiles(self, year: int) -> list[tuple[Callable[[], Tile], Path]]:
        """``(tile factory, georeferencing file)`` of each complete .npy tile of ``year``."""
        root = Path(self.source)
        base = root / "global_0.1_degree_representation" / str(year)
        out = []
        for npy in sorted(base.rglob("grid_*_*.npy")) if base.is_dir() else []:
            if npy.name.endswith("_scales.npy"):
                continue
            scales = npy.with_name(f"{npy.stem}_scales.npy")
            landmask = root / "global_0.1_degree_tiff_all" / f"{npy.stem}.tiff"
            missing = [p.name for p in (scales, landmask) if not p.exists()]
            if missing:
                self._skipped.append((str(npy), f"missing {missing}"))
                continue
            out.append((lambda n=npy, s=scales, m=landmask: npy_tile(n, s, m), landmask))
        return out

    def _year_footprints(self, year: int):
        """Lon/lat footprints of every tile of ``year`` (from each raster, not from its name)."""
        if year not in self._footprints:
            entries = [(lambda p=p: float_tile(str(p)), p) for p in self._exports.get(year, [])]
            entries += self._npy_tiles(year)
            self._footprints[year] = [(make, lonlat_bounds(raster_tile(str(geo)))) for make, geo in entries]
        return self._footprints[year]

    def tiles(self, request: Request, year: int | None) -> list:
        import shapely

        geom = request.spatial.geometry()
        return [make() for make, bounds in self._year_footprints(year)
                if shapely.box(*bounds).intersects(geom)]

    def describe(self) -> dict:
        return {**super().describe(), "skipped_files": [list(s) for s in getattr(self, "_skipped", [])]}
