"""Raster products: decoded tiles resampled onto the ROI's grid, or the pixel holding its centroid.

Each product turns its files into :class:`~eoembed.products.raster.Tile` objects whose ``read``
returns **decoded** float32 features ``(dims, rows, cols)`` with NaN where there is no data
(dequantisation, FSQ decoding, scale/offset happen per file, with that file's dtype, nodata and
tags). Decoding before nearest-neighbour selection gives exactly what decoding after it would:
nearest neighbour only picks stored pixels, it never mixes them.

How a request is answered:

* **ROI larger than a product pixel** — the ROI's UTM grid at the product resolution (or the
  product's own lattice with option ``native_grid: true``); each grid pixel takes the product
  pixel holding its centre (nearest neighbour); pooled = mean/max over grid pixels whose centre
  lies in the ROI and that have data.
* **ROI no larger than one product pixel** (its extent in the grid's CRS is at most one pixel in
  both directions), or a ROI that holds no grid pixel centre — the **product pixel holding the
  ROI's centroid**, read directly from the file (no resampling): pooled = that pixel's vector,
  grid = that single pixel on the product's own lattice.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import NoDataError, ProviderError
from eoembed.grid import GridSpec, grid_for, to_crs
from eoembed.items import Request
from eoembed.models.base import pool_cells
from eoembed.products.base import Product, Read
from eoembed.products.raster import Tile, native_grid, pool_pixels, read_to_grid

__all__ = ["PixelProduct", "centroid_pixel", "fits_in_one_pixel"]

#: Relative slack when comparing a ROI's extent with the pixel size (reprojection round-off).
EXTENT_SLACK = 1e-6


def fits_in_one_pixel(geometry_lonlat, grid: GridSpec) -> bool:
    """Whether the ROI's extent in ``grid``'s CRS is at most one pixel wide and tall."""
    import shapely

    ring = np.asarray(shapely.segmentize(geometry_lonlat.exterior, 0.001).coords)
    xs, ys = to_crs(ring[:, 0], ring[:, 1], "EPSG:4326", grid.crs)
    a, e = abs(grid.transform[0]), abs(grid.transform[4])
    width, height = float(np.max(xs) - np.min(xs)), float(np.max(ys) - np.min(ys))
    return width <= a * (1 + EXTENT_SLACK) and height <= e * (1 + EXTENT_SLACK)


def centroid_pixel(tiles: list[Tile], lon: float, lat: float) -> tuple[np.ndarray, GridSpec, str] | None:
    """The decoded vector of the first tile whose pixel holding ``(lon, lat)`` has data.

    The pixel holding a point is ``floor`` of its position in pixels (as ``rasterio``'s
    ``index``): a point on an edge belongs to the pixel east / south of it (north-up).

    Returns:
        ``(features (dims, 1, 1), the pixel as a 1x1 GridSpec on the tile's lattice, tile name)``,
        or None when no tile holds the point or the pixels holding it have no data.
    """
    for tile in tiles:
        x, y = to_crs(lon, lat, "EPSG:4326", tile.crs)
        a, _, c, _, e, f = tile.north_up_transform()
        col, row = math.floor((float(x) - c) / a), math.floor((float(y) - f) / e)
        if not (0 <= col < tile.width and 0 <= row < tile.height):
            continue
        stored = tile.height - 1 - row if tile.bottom_up else row
        vec = np.asarray(tile.read(stored, stored + 1, col, col + 1), dtype=np.float32)
        if np.isfinite(vec).all():
            pixel = GridSpec(tile.crs, (a, 0.0, c + a * col, 0.0, e, f + e * row), 1, 1)
            return vec.reshape(-1, 1, 1), pixel, tile.name
    return None


class PixelProduct(Product):
    """A raster product read from decoded tiles (see the module docstring)."""

    default_options: ClassVar[dict[str, Any]] = {
        **Product.default_options, "native_grid": False, "year": None}

    @abstractmethod
    def tiles(self, request: Request, year: int | None) -> list[Tile]:
        """Decoded tiles (float32, NaN = no data) that may cover the request, earliest wins."""

    @property
    def res_m(self) -> float:
        """Pixel size (metres) of the ROI's UTM grid: the product's own pixel size."""
        return self.card.native_gsd_m

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        year, extra = self.temporal_for(request)
        tiles = self.tiles(request, year)
        when = f" for {year}" if year is not None else ""
        if not tiles:
            raise NoDataError(f"{self.card.id}: no product file{when} covers the ROI (source {self.source})")
        geom = request.spatial.geometry()
        if self.options["native_grid"]:
            target = native_grid(tiles[0], geom)
        else:
            target = grid_for(request.spatial, self.res_m)
        inside = target.inside_mask(geom)
        if not inside.any() or fits_in_one_pixel(geom, target):
            return self._read_centroid(request, tiles, grid, when, extra)
        counts = {t.count for t in tiles}
        if len(counts) > 1:
            raise ProviderError(f"{self.card.id}: the files covering the ROI decode to different dims "
                                f"{sorted(counts)} ({[t.name for t in tiles]}); allowed: one product version")
        feats, used = read_to_grid(tiles, target, count=counts.pop(), dtype=np.float32, fill=float("nan"))
        if not used:
            raise NoDataError(f"{self.card.id}: no product file{when} covers the ROI (source {self.source})")
        valid = np.isfinite(feats).all(axis=0)
        arrays = {"pooled": pool_pixels(feats, inside, pooling)}
        cell_px = None
        if grid:
            metric = abs(target.res) > 0.01  # degrees for geographic native grids: no metric cells
            cell_px = max(1, round(cell_m / abs(target.res))) if cell_m and metric else 1
            arrays["grid"] = feats if cell_px == 1 else pool_cells(feats, valid, cell_px)
        vf = float((valid & inside).sum() / inside.sum())
        extra.update(product_files=used, sampling="roi grid")
        return Read(arrays, vf, target, cell_px, extra)

    def _read_centroid(self, request: Request, tiles: list[Tile], grid: bool, when: str,
                       extra: dict[str, Any]) -> Read:
        lon, lat = request.spatial.centroid()
        hit = centroid_pixel(tiles, lon, lat)
        if hit is None:
            raise NoDataError(f"{self.card.id}: no valid product pixel{when} holds the ROI's centroid "
                              f"({lon:.6f}, {lat:.6f}); the ROI is smaller than one product pixel, so only "
                              f"that pixel is read (source {self.source})")
        vec, pixel, name = hit
        arrays = {"pooled": vec[:, 0, 0]}
        if grid:
            arrays["grid"] = vec
        extra.update(product_files=[name], sampling="centroid pixel")
        return Read(arrays, 1.0, pixel, 1 if grid else None, extra)
