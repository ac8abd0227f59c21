"""Shared raster logic of pixel-typed products: find tiles, read a window, resample onto a grid.

Every pixel product wraps its files as :class:`Tile` objects whose reader **decodes** the stored
values of that file (its own dtype, nodata and tags) to float32 with NaN for no data
(:func:`decoded_tile`); tiles are then resampled onto the target grid with **nearest-neighbour**
(``rasterio.warp.reproject``), which only picks stored pixels, so quantized values and codes are
never interpolated. Tiles stored bottom-up (positive y resolution, as in the AlphaEarth mirror on
Source Cooperative) are flipped to north-up before resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from eoembed.errors import ProviderError
from eoembed.grid import GridSpec, to_crs

__all__ = ["RasterMeta", "Tile", "decoded_tile", "find_files", "lonlat_bounds", "native_grid",
           "nodata_to_nan", "pool_pixels", "raster_meta", "raster_nodata", "raster_tile", "read_to_grid",
           "tiles_covering"]

Reader = Callable[[int, int, int, int], np.ndarray]


@dataclass(frozen=True)
class Tile:
    """One georeferenced tile as stored.

    Attributes:
        name: Path or identifier (for provenance and errors).
        crs: CRS as a string understood by rasterio/pyproj.
        transform: Affine coefficients ``(a, b, c, d, e, f)`` as stored; ``e > 0`` means bottom-up.
        width, height, count: Size in pixels and number of bands.
        read: ``read(row0, row1, col0, col1)`` -> ``(count, rows, cols)`` raw values in **stored**
            row order (rows counted from the first stored row).
    """

    name: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    count: int
    read: Reader

    @property
    def bottom_up(self) -> bool:
        return self.transform[4] > 0

    def north_up_transform(self) -> tuple[float, float, float, float, float, float]:
        """The transform of the same pixels seen north-up (row 0 = northernmost row)."""
        a, b, c, d, e, f = self.transform
        if e > 0:
            return (a, b, c, d, -e, f + e * self.height)
        return self.transform

    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.north_up_transform()
        return c, f + e * self.height, c + a * self.width, f


def lonlat_bounds(tile: Tile) -> tuple[float, float, float, float]:
    """The tile's bounds in EPSG:4326 (densified edges)."""
    from rasterio.warp import transform_bounds

    return tuple(transform_bounds(tile.crs, "EPSG:4326", *tile.bounds(), densify_pts=21))


@lru_cache(maxsize=4096)
def raster_tile(path: str) -> Tile:
    """A :class:`Tile` for a GeoTIFF/COG (local path or GDAL URL); metadata is read once."""
    import rasterio
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as ds:
            crs = ds.crs.to_string() if ds.crs else None
            t = ds.transform
            width, height, count = ds.width, ds.height, ds.count
    except rasterio.errors.RasterioIOError as exc:
        raise ProviderError(f"cannot open product file {path}: {exc}") from None
    if crs is None:
        raise ProviderError(f"product file {path} has no CRS")

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with rasterio.open(path) as ds:
            return ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))

    return Tile(str(path), crs, (t.a, t.b, t.c, t.d, t.e, t.f), width, height, count, read)


def raster_nodata(path: str) -> float | None:
    """The nodata value stored in a GeoTIFF (``None`` if unset)."""
    return raster_meta(path).nodata


@dataclass(frozen=True)
class RasterMeta:
    """What decoding needs to know about a GeoTIFF: stored dtype, nodata, per-band scale/offset."""

    dtype: str
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


@lru_cache(maxsize=4096)
def raster_meta(path: str) -> RasterMeta:
    """The :class:`RasterMeta` of a GeoTIFF/COG (read once per process)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return RasterMeta(ds.dtypes[0], ds.nodata, tuple(ds.scales), tuple(ds.offsets))
    except rasterio.errors.RasterioIOError as exc:
        raise ProviderError(f"cannot open product file {path}: {exc}") from None


def decoded_tile(tile: Tile, decode: Callable[[np.ndarray], np.ndarray], count: int) -> Tile:
    """``tile`` whose reader returns ``decode(stored window)``: float32 ``(count, rows, cols)``."""
    from dataclasses import replace

    def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return np.asarray(decode(tile.read(r0, r1, c0, c1)), dtype=np.float32)

    return replace(tile, read=read, count=count)


def nodata_to_nan(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """Float32 copy of ``raw``; a pixel equal to ``nodata`` (or NaN) in any band is NaN in all."""
    out = raw.astype(np.float32)
    bad = np.isnan(out).any(axis=0)
    if nodata is not None and not np.isnan(nodata):
        bad |= (raw == nodata).any(axis=0)
    out[:, bad] = np.nan
    return out


def _window(tile: Tile, grid: GridSpec, pad: int = 1) -> tuple[int, int, int, int] | None:
    """North-up ``(row0, row1, col0, col1)`` of ``tile`` covering ``grid`` (padded), or None."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(grid.crs, tile.crs, *grid.bounds, densify_pts=21)
    a, _, c, _, e, f = tile.north_up_transform()
    col0 = math.floor((left - c) / a) - pad
    col1 = math.ceil((right - c) / a) + pad
    row0 = math.floor((top - f) / e) - pad
    row1 = math.ceil((bottom - f) / e) + pad
    col0, col1 = max(col0, 0), min(col1, tile.width)
    row0, row1 = max(row0, 0), min(row1, tile.height)
    if col0 >= col1 or row0 >= row1:
        return None
    return row0, row1, col0, col1


def _is_fill(arr: np.ndarray, fill: float) -> np.ndarray:
    return np.isnan(arr) if isinstance(fill, float) and math.isnan(fill) else arr == fill


def read_to_grid(tiles: list[Tile], grid: GridSpec, *, count: int, dtype, fill: float) -> tuple[np.ndarray, list[str]]:
    """Read raw values of ``tiles`` onto ``grid`` with nearest-neighbour resampling.

    Earlier tiles win where tiles overlap. Pixels no tile covers hold ``fill``.

    Args:
        tiles: Candidate tiles (any CRS, north-up or bottom-up).
        grid: Target grid.
        count: Number of bands.
        dtype: Raw dtype (``int8``, ``uint16``, ``float32``).
        fill: The nodata value of the raw data (NaN for floats without one).

    Returns:
        ``(array (count, height, width), names of the tiles that contributed)``.
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full((count, grid.height, grid.width), fill, dtype=dtype)
    used: list[str] = []
    for tile in tiles:
        win = _window(tile, grid)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        if tile.bottom_up:  # stored rows run south to north: read the mirrored rows and flip
            raw = tile.read(tile.height - r1, tile.height - r0, c0, c1)[:, ::-1, :]
        else:
            raw = tile.read(r0, r1, c0, c1)
        raw = np.ascontiguousarray(raw, dtype=dtype)
        a, b, c, d, e, f = tile.north_up_transform()
        src_t = Affine(a, b, c + a * c0, d, e, f + e * r0)
        dst = np.full_like(out, fill)
        reproject(source=raw, destination=dst, src_transform=src_t, src_crs=tile.crs, src_nodata=fill,
                  dst_transform=grid.affine(), dst_crs=grid.crs, dst_nodata=fill,
                  resampling=Resampling.nearest)
        hole = _is_fill(out, fill).all(axis=0)
        got = ~_is_fill(dst, fill).all(axis=0) & hole
        if got.any():
            out[:, got] = dst[:, got]
            used.append(tile.name)
    return out, used


def native_grid(tile: Tile, geometry_lonlat) -> GridSpec:
    """The product's own pixel lattice (of ``tile``) covering a lon/lat geometry, north-up."""
    import shapely

    ring = np.asarray(shapely.segmentize(geometry_lonlat.exterior, 0.005).coords)
    xs, ys = to_crs(ring[:, 0], ring[:, 1], "EPSG:4326", tile.crs)
    a, _, c, _, e, f = tile.north_up_transform()
    eps = 1e-9
    col0 = math.floor((float(np.min(xs)) - c) / a + eps)
    col1 = math.ceil((float(np.max(xs)) - c) / a - eps)
    row0 = math.floor((float(np.max(ys)) - f) / e + eps)
    row1 = math.ceil((float(np.min(ys)) - f) / e - eps)
    col1, row1 = max(col1, col0 + 1), max(row1, row0 + 1)
    return GridSpec(tile.crs, (a, 0.0, c + a * col0, 0.0, e, f + e * row0), col1 - col0, row1 - row0)


def pool_pixels(features: np.ndarray, weight: np.ndarray, pooling: str) -> np.ndarray:
    """Mean or max of ``(d, h, w)`` features over pixels where ``weight`` and data are present."""
    sel = features[:, weight & np.isfinite(features).all(axis=0)]
    if sel.shape[1] == 0:
        return np.full(features.shape[0], np.nan, np.float32)
    vec = sel.max(axis=1) if pooling == "max" else sel.astype(np.float64).mean(axis=1)
    return vec.astype(np.float32)


def find_files(root: str | Path, patterns: tuple[str, ...] = ("*.tif", "*.tiff")) -> list[Path]:
    """Files under ``root`` matching ``patterns`` (``root`` itself if it is a file), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ProviderError(f"product source {root} does not exist")
    return sorted({p for pat in patterns for p in root.rglob(pat)})


@lru_cache(maxsize=64)
def _index(root: str) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
    return tuple((str(p), lonlat_bounds(raster_tile(str(p)))) for p in find_files(root))


def tiles_covering(root: str | Path, geometry_lonlat, year: int | None = None) -> list[Tile]:
    """GeoTIFF tiles under ``root`` whose lon/lat bounds intersect the geometry.

    With ``year``, only files whose path names that year (a path component or a ``_``/``-``
    separated token of the file name) are kept.
    """
    import re

    import shapely

    out = []
    for path, bounds in _index(str(root)):
        if year is not None and not re.search(rf"(?<![0-9]){year}(?![0-9])", path[len(str(root)):]):
            continue
        if shapely.box(*bounds).intersects(geometry_lonlat):
            out.append(raster_tile(path))
    return out
