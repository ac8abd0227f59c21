"""Google Satellite Embedding (AlphaEarth Foundations, annual, 64-d, 10 m) from its COG layout.

Layout (``models.gse.source`` = the root of a local copy of the mirror)::

    <source>/<year>/<UTM zone><N|S>/<tile>.tiff     e.g. 2023/31N/xxxxx.tiff

Each file: 64 int8 bands ``A00``..``A63`` in a UTM CRS; ``-128`` is nodata (in every band at once).
Values are **dequantized** ``sign(v) * (|v| / 127.5) ** 2`` (TorchGeo returns the raw int8). The
Source Cooperative mirror stores files **bottom-up** (positive y resolution); they are flipped to
north-up here. ``.vrt`` side-cars are ignored. Reading from the Earth Engine asset
``GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL`` needs the GEE provider and is not implemented here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely

from eoembed.grid import utm_epsg
from eoembed.items import Request
from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PixelProduct
from eoembed.products.raster import find_files, lonlat_bounds, raster_tile

__all__ = ["GoogleSatelliteEmbedding", "dequantize_aef", "AEF_NODATA"]

AEF_NODATA = -128


def dequantize_aef(raw: np.ndarray) -> np.ndarray:
    """int8 AlphaEarth codes -> float32 ``sign(v) * (|v| / 127.5)**2``; ``-128`` -> NaN."""
    v = raw.astype(np.float32)
    out = np.sign(v) * np.square(np.abs(v) / np.float32(127.5))
    out[raw == AEF_NODATA] = np.nan
    return out.astype(np.float32)


@lru_cache(maxsize=64)
def _zone_tiles(zone_dir: str) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
    """``(path, lon/lat bounds)`` of each tile in a zone directory (read once per process)."""
    files = [p for p in find_files(zone_dir) if p.suffix.lower() in (".tif", ".tiff")]
    return tuple((str(p), lonlat_bounds(raster_tile(str(p)))) for p in files)


class GoogleSatelliteEmbedding(PixelProduct):
    """AlphaEarth Foundations annual satellite embedding, read from local COG tiles."""

    card = ModelCard(
        id="gse", family=PRODUCT_FAMILY, kind="precomputed",
        description="Google Satellite Embedding V1 (AlphaEarth Foundations), annual 64-d unit vectors at 10 m",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=10.0, input_size=None,
        temporal="single", frames=1, dims=64, outputs=("pooled", "grid"),
        licence="CC-BY-4.0 (attribution: The AlphaEarth Foundations Satellite Embedding dataset is "
                "produced by Google and Google DeepMind.)",
        citation="Brown et al. (2025), AlphaEarth Foundations: An embedding field model for accurate and "
                 "efficient global mapping from sparse label data, arXiv:2507.22291",
        url="https://source.coop/tge-labs/aef", mem_mb=2000, runtime_min=30)
    years = (2017, 2025)
    res_m = 10.0
    source_help = "a directory laid out as <year>/<zone><N|S>/<tile>.tiff (the AEF COG mirror)"

    def tiles(self, request: Request, year: int | None) -> list:
        year_dir = Path(self.source) / str(year)
        if not year_dir.is_dir():
            return []
        geom = request.spatial.geometry()
        lon, lat = request.spatial.centroid()
        zone = utm_epsg(lon, lat) % 100
        near = {f"{(z - 1) % 60 + 1}{h}" for z in (zone - 1, zone, zone + 1) for h in "NS"}
        dirs = [d for d in sorted(year_dir.iterdir()) if d.is_dir() and d.name.upper() in near]
        if not dirs:  # unknown naming: look at every zone directory
            dirs = [d for d in sorted(year_dir.iterdir()) if d.is_dir()] or [year_dir]
        hits = []
        for d in dirs:
            for path, bounds in _zone_tiles(str(d)):
                if shapely.box(*bounds).intersects(geom):
                    hits.append(raster_tile(path))
        return hits

    def raw_format(self, tiles: list) -> tuple[int, object, float]:
        return 64, np.int8, AEF_NODATA

    def decode(self, raw: np.ndarray) -> np.ndarray:
        return dequantize_aef(raw)
