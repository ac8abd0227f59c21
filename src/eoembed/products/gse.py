"""Google Satellite Embedding (AlphaEarth Foundations, annual, 64-d, 10 m) from its COG layout.

``models.gse.source`` is one of:

1. a **local directory** laid out as the public COG mirror (tiles found by listing it)::

       <source>/<year>/<UTM zone><N|S>/<tile>.tiff     e.g. 2023/31N/xxxxx.tiff

2. the **tile index** of the mirror, a GeoParquet file (local path or http(s) URL, e.g.
   ``https://data.source.coop/tge-labs/aef/v1/annual/aef_index.parquet``) with one row per COG.
   The rows of the request's year whose footprint intersects the ROI are opened by their path:
   http(s) URLs through GDAL's ``/vsicurl/`` (HTTP Range requests), paths relative to the index
   resolved against the index's location, and the mirror's ``s3://us-west-2.opendata.source.coop/``
   paths rewritten to their public ``https://data.source.coop/`` URLs.
3. the **root of the layout** (an http(s) base URL, or a local directory) **together with** option
   ``index``: the index selects the tiles and each row's ``<year>/<zone>/<tile>.tiff`` (the last
   three components of its path) is read under the root, e.g. from a private copy of the mirror.
   A base URL alone is rejected: directories cannot be listed over HTTP.

Index columns (options; defaults as published in ``aef_index.parquet``): ``path`` (the COG),
``year`` and the lon/lat footprint bounds ``wgs84_west``, ``wgs84_south``, ``wgs84_east``,
``wgs84_north``; without the bounds columns the GeoParquet geometry column (``geom``, any CRS
given in the file's ``geo`` metadata) is used.

Each file: 64 bands ``A00``..``A63`` in a UTM CRS, decoded by its own dtype:

* **int8** (the official GCS / Source Cooperative COGs): ``-128`` is nodata (published files
  mask every band at once; a pixel with ``-128`` in any band has no complete vector and counts
  as no data); values are **dequantized** ``sign(v) * (|v| / 127.5) ** 2`` (the product's documented
  mapping; TorchGeo returns the raw int8).
* **float** (the Hugging Face Major-TOM AlphaEarth layout ``<year>/<row>/<col>/.../<id>.tif``,
  float64 values already in [-1, 1]): read as they are (no dequantisation), the file's nodata
  value (if any) and NaN mean no data. Directories that are not UTM zone names are searched
  recursively, so this layout is found under its year directory.

The Source Cooperative mirror stores files **bottom-up** (positive y resolution); they are
flipped to north-up here. ``.vrt`` side-cars are ignored. Reading from the Earth Engine asset
``GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL`` needs the GEE provider and is not implemented here.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import shapely

from eoembed.errors import ConfigError, NoDataError, ProviderError
from eoembed.grid import utm_epsg
from eoembed.items import Request
from eoembed.products.aef_index import (AEF_INDEX_URL, BOUNDS_COLUMNS, TileIndex, check_tile_index, is_parquet,
                                        is_url, read_tile_index, resolve_href)
from eoembed.products.base import ProductCard
from eoembed.products.pixel import PixelProduct
from eoembed.products.raster import (RasterMeta, Tile, decoded_tile, find_files, lonlat_bounds, nodata_to_nan,
                                     raster_meta, raster_tile)

__all__ = ["AEF_INDEX_URL", "AEF_NODATA", "GoogleSatelliteEmbedding", "TileIndex", "check_tile_index",
           "decode_gse_tile", "dequantize_aef", "read_tile_index", "resolve_href"]

AEF_NODATA = -128
#: GDAL settings for tiles read over HTTP: no directory listing (sidecar probing) on open.
GDAL_HTTP = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "3",
             "GDAL_HTTP_RETRY_DELAY": "1"}


def dequantize_aef(raw: np.ndarray) -> np.ndarray:
    """int8 AlphaEarth codes -> float32 ``sign(v) * (|v| / 127.5)**2``; ``-128`` -> NaN."""
    v = raw.astype(np.float32)
    out = np.sign(v) * np.square(np.abs(v) / np.float32(127.5))
    out[raw == AEF_NODATA] = np.nan
    return out.astype(np.float32)


def decode_gse_tile(tile: Tile, meta: RasterMeta) -> Tile:
    """The decoded tile: int8 files dequantized (``-128`` or the file's nodata -> NaN), float files
    as stored (their nodata -> NaN). Any other dtype is refused."""
    if meta.is_float:
        return decoded_tile(tile, lambda raw: nodata_to_nan(raw, meta.nodata), tile.count)
    if np.dtype(meta.dtype) == np.int8:
        nodata = AEF_NODATA if meta.nodata is None else int(meta.nodata)

        def decode(raw: np.ndarray) -> np.ndarray:
            out = dequantize_aef(raw)
            out[:, (raw == nodata).any(axis=0)] = np.nan  # a pixel with a masked band has no full vector
            return out

        return decoded_tile(tile, decode, tile.count)
    raise ProviderError(f"gse file {tile.name}: dtype {meta.dtype} is neither int8 (quantized AEF) nor "
                        f"float (Major-TOM AlphaEarth); allowed: int8, float32, float64")


def _open_tile(href: str) -> Tile:
    """A :class:`Tile` for a COG (local or remote), opened and read with :data:`GDAL_HTTP`."""
    import rasterio

    with rasterio.Env(**GDAL_HTTP):
        tile = raster_tile(href)
        meta = raster_meta(href)

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with rasterio.Env(**GDAL_HTTP):
            return tile.read(r0, r1, c0, c1)

    return decode_gse_tile(dataclasses.replace(tile, read=read), meta)


# ------------------------------------------------------------------ local directory layout


@lru_cache(maxsize=64)
def _zone_tiles(zone_dir: str) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
    """``(path, lon/lat bounds)`` of each tile in a zone directory (read once per process)."""
    files = [p for p in find_files(zone_dir) if p.suffix.lower() in (".tif", ".tiff")]
    return tuple((str(p), lonlat_bounds(raster_tile(str(p)))) for p in files)


class GoogleSatelliteEmbedding(PixelProduct):
    """AlphaEarth Foundations annual satellite embedding, read from COG tiles (local or remote)."""

    card = ProductCard(
        id="gse",
        description="Google Satellite Embedding V1 (AlphaEarth Foundations), annual 64-d unit vectors "
                    "at 10 m",
        dims=64, outputs=("pooled", "grid"), native_gsd_m=10.0,
        layout=("<year>/<UTM zone><N|S>/<tile>.tiff: int8 COGs (GCS / Source Cooperative mirror, bottom-up)",
                "<year>/<row>/<col>/.../<id>.tif: float64 tiles (Hugging Face Major-TOM AlphaEarth)",
                "the mirror's GeoParquet tile index aef_index.parquet (local or http(s))"),
        temporal="annual", coverage=("2017-01-01", "2026-01-01"),
        dequantisation="int8: sign(v) * (|v| / 127.5)^2, -128 = no data; float files as stored",
        licence="CC-BY-4.0 (attribution: The AlphaEarth Foundations Satellite Embedding dataset is "
                "produced by Google and Google DeepMind.)",
        citation="Brown et al. (2025), AlphaEarth Foundations: An embedding field model for accurate and "
                 "efficient global mapping from sparse label data, arXiv:2507.22291",
        url="https://source.coop/tge-labs/aef", mem_mb=2000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {
        **PixelProduct.default_options, "index": None, "index_path_column": "path",
        "index_year_column": "year", "index_bounds_columns": BOUNDS_COLUMNS,
        "index_geometry_column": "geom"}
    source_help = ("a local directory laid out as <year>/<zone><N|S>/<tile>.tiff (the AEF COG mirror); "
                   f"or the mirror's tile index (.parquet, local or http(s), e.g. {AEF_INDEX_URL}); "
                   "or an http(s) base URL of that layout together with option index")

    _index: str | None = None
    _root: str | None = None

    def _open(self) -> None:
        source, index = str(self.source), self.options.get("index")
        if index and is_parquet(source):
            raise ConfigError(f"model 'gse': models.gse.source={source!r} is a tile index and option "
                              f"index={index!r} is set too; allowed: the index as source, or the layout root "
                              f"as source + option index")
        if index:
            self._index, self._root = str(index), source
        elif is_parquet(source):
            self._index, self._root = source, None
        elif is_url(source):
            raise ConfigError(
                f"model 'gse': models.gse.source={source!r} is a URL of the <year>/<zone>/<tile>.tiff "
                f"layout, but directories cannot be listed over HTTP (or object stores here), so a tile "
                f"index is needed; allowed: set models.gse.options.index to the mirror's index (e.g. "
                f"{AEF_INDEX_URL}), point source at the index itself, or use a local directory")
        if self._index is not None:  # fail at load, not per item, on a missing column or unreadable index
            check_tile_index(self._index, *self._columns())

    def _columns(self) -> tuple[str, str, tuple[str, ...], str]:
        """``(path, year, bounds, geometry)`` column names from the options."""
        o = self.options
        bounds = o["index_bounds_columns"]
        if isinstance(bounds, str) or len(bounds) != 4:
            raise ConfigError(f"model 'gse': option index_bounds_columns={bounds!r}; allowed: four column "
                              f"names [west, south, east, north] (lon/lat)")
        return (str(o["index_path_column"]), str(o["index_year_column"]), tuple(map(str, bounds)),
                str(o["index_geometry_column"]))

    def _index_year(self, year: int) -> TileIndex:
        return read_tile_index(self._index, int(year), *self._columns())

    def tiles(self, request: Request, year: int | None) -> list:
        if self._index is None:
            return self._directory_tiles(request, year)
        rows = self._index_year(year)
        if rows.paths.size == 0:
            raise NoDataError(f"gse: tile index {self._index} has no tile for {year}; "
                              f"years in the index: {list(rows.years)}")
        geom = request.spatial.geometry()
        hit = shapely.intersects(rows.footprints, geom)
        if not hit.any():
            raise NoDataError(f"gse: no tile for {year} in the tile index {self._index} intersects the ROI "
                              f"(lon/lat bounds {tuple(round(v, 5) for v in geom.bounds)})")
        hrefs = sorted({resolve_href(p, self._index, self._root) for p in rows.paths[hit]})
        return [_open_tile(h) for h in hrefs]

    def _directory_tiles(self, request: Request, year: int | None) -> list:
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
                    hits.append(decode_gse_tile(raster_tile(path), raster_meta(path)))
        return hits
