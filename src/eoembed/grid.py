"""The pixel grid of a ROI: local UTM zone, snapped to the pixel size.

A ROI's grid is fully described by :class:`GridSpec` (CRS, affine transform, width, height),
so every stage (fetch, composite, embed, export) agrees on the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["GridSpec", "grid_for", "square_lonlat", "utm_epsg"]


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 / UTM zone containing ``(lon, lat)`` (no Norway/Svalbard exceptions)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=256)
def _transformer(src: str, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def to_crs(xs, ys, src: str, dst: str):
    """Transform coordinate arrays between CRSs (always x/lon first)."""
    return _transformer(src, dst).transform(xs, ys)


@lru_cache(maxsize=4096)
def square_lonlat(lon: float, lat: float, buffer_m: float):
    """The UTM square of half side ``buffer_m`` around a point, as a lon/lat shapely polygon.

    Kept for the last 4,096 points (shapely geometries are immutable): a ROI's geometry is
    asked for by the search, the composite's inside-ROI mask and the embedding record."""
    from shapely.geometry import Polygon

    crs = f"EPSG:{utm_epsg(lon, lat)}"
    cx, cy = to_crs(lon, lat, "EPSG:4326", crs)
    xs = [cx - buffer_m, cx + buffer_m, cx + buffer_m, cx - buffer_m]
    ys = [cy - buffer_m, cy - buffer_m, cy + buffer_m, cy + buffer_m]
    lons, lats = to_crs(xs, ys, crs, "EPSG:4326")
    return Polygon(zip(lons, lats))


@dataclass(frozen=True)
class GridSpec:
    """A north-up pixel grid.

    Attributes:
        crs: CRS as ``"EPSG:<code>"``.
        transform: Affine coefficients ``(a, b, c, d, e, f)`` as in rasterio (pixel size ``a``,
            upper-left corner ``(c, f)``, ``e`` negative).
        width, height: Size in pixels.
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def res(self) -> float:
        return self.transform[0]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        return c, f + e * self.height, c + a * self.width, f

    def affine(self):
        from affine import Affine

        return Affine(*self.transform)

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates (CRS units)."""
        a, _, c = self.transform[:3]
        return c + a * (np.arange(self.width) + 0.5)

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates (CRS units), top to bottom."""
        e, f = self.transform[4], self.transform[5]
        return f + e * (np.arange(self.height) + 0.5)

    def lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre longitude and latitude arrays of shape ``(height, width)``."""
        xx, yy = np.meshgrid(self.x_coords(), self.y_coords())
        lon, lat = to_crs(xx.ravel(), yy.ravel(), self.crs, "EPSG:4326")
        return np.asarray(lon).reshape(xx.shape), np.asarray(lat).reshape(xx.shape)

    def center_lonlat(self) -> tuple[float, float]:
        """``(lon, lat)`` of the grid's centre."""
        x0, y0, x1, y1 = self.bounds
        lon, lat = to_crs([(x0 + x1) / 2], [(y0 + y1) / 2], self.crs, "EPSG:4326")
        return float(lon[0]), float(lat[0])

    def to_dict(self) -> dict:
        return {"crs": self.crs, "transform": list(self.transform), "width": self.width,
                "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> "GridSpec":
        return cls(d["crs"], tuple(float(v) for v in d["transform"]), int(d["width"]), int(d["height"]))

    def inside_mask(self, geometry_lonlat) -> np.ndarray:
        """Boolean ``(height, width)`` mask of pixels whose centre lies in the lon/lat geometry."""
        import shapely

        def project(x, y):
            return np.asarray(to_crs(x, y, "EPSG:4326", self.crs))

        geom = shapely.transform(geometry_lonlat, lambda xy: project(xy[:, 0], xy[:, 1]).T)
        xs, ys = self.x_coords(), self.y_coords()
        centres = shapely.box(xs.min(), ys.min(), xs.max(), ys.max())
        if shapely.contains_properly(geom, centres):  # every centre in the interior (a buffered point)
            return np.ones((self.height, self.width), bool)
        xx, yy = np.meshgrid(xs, ys)
        return shapely.contains_xy(geom, xx, yy)


def grid_for(spatial, scale_m: float) -> GridSpec:
    """The UTM grid of ``spatial`` at ``scale_m`` metres, snapped outward to whole pixels."""
    from eoembed.specs import PointBuffer

    lon, lat = spatial.centroid()
    crs = f"EPSG:{utm_epsg(lon, lat)}"
    if isinstance(spatial, PointBuffer):
        # centre snapped to the nearest pixel corner, so every ROI with the same buffer has
        # the same size: 2 * ceil(buffer / scale) pixels a side
        cx, cy = to_crs(lon, lat, "EPSG:4326", crs)
        half = math.ceil(spatial.buffer_m / scale_m - 1e-9)
        x0 = round(cx / scale_m) * scale_m - half * scale_m
        y1 = round(cy / scale_m) * scale_m + half * scale_m
        return GridSpec(crs, (float(scale_m), 0.0, float(x0), 0.0, -float(scale_m), float(y1)),
                        2 * half, 2 * half)
    else:
        geom = spatial.geometry()
        # densify the boundary so curved UTM edges are covered
        ring = np.asarray(geom.exterior.segmentize(0.01).coords)
        xs, ys = to_crs(ring[:, 0], ring[:, 1], "EPSG:4326", crs)
        minx, maxx, miny, maxy = float(np.min(xs)), float(np.max(xs)), float(np.min(ys)), float(np.max(ys))
    eps = 1e-6
    x0 = math.floor(minx / scale_m + eps) * scale_m
    x1 = math.ceil(maxx / scale_m - eps) * scale_m
    y0 = math.floor(miny / scale_m + eps) * scale_m
    y1 = math.ceil(maxy / scale_m - eps) * scale_m
    width, height = max(1, round((x1 - x0) / scale_m)), max(1, round((y1 - y0) / scale_m))
    return GridSpec(crs, (float(scale_m), 0.0, float(x0), 0.0, -float(scale_m), float(y1)), width, height)
