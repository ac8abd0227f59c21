"""An independent reading of the product layouts: rasterio / numpy / pyarrow + pyproj, no eoembed.

Used by the conformance suite to say what each product *should* return. Decoding follows each
product's documentation, written here from scratch (loops and divmod rather than eoembed's
vectorised decoders).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------ pixels


def _gse(raw):
    v = raw.astype(np.float64)
    if raw.dtype == np.int8:
        out = np.sign(v) * (np.abs(v) / 127.5) ** 2
        out[:, (raw == -128).any(axis=0)] = np.nan  # no complete vector: no data
        return out
    return v


def _fsq_by_hand(code: int) -> list[float]:
    out = []
    for level in (8, 8, 8, 5, 5, 5):
        code, d = divmod(code, level)
        out.append((d - level // 2) / (level // 2))
    return out


def _esd(raw):
    codes = raw[:12]
    out = np.full((72,) + raw.shape[1:], np.nan)
    for r in range(raw.shape[1]):
        for c in range(raw.shape[2]):
            if (codes[:, r, c] == 0).all():
                continue
            out[:, r, c] = [v for b in range(12) for v in _fsq_by_hand(int(codes[b, r, c]))]
    return out


def _copernicus(raw):
    out = raw.astype(np.float64)
    out[:, (raw == 0).all(axis=0)] = np.nan
    return out


DECODERS = {"gse_official": _gse, "gse_major_tom": _gse, "tessera_tiff": lambda r: r.astype(np.float64),
            "esd": _esd, "copernicus_embed": _copernicus, "presto_togo": lambda r: r.astype(np.float64)}


class RasterOracle:
    """The decoded raster of one pixel layout, with its CRS and transform (as rasterio reads them)."""

    def __init__(self, layout) -> None:
        import rasterio

        if layout.name == "tessera_npy":
            npy, scales, geo = layout.files
            q, s = np.load(npy), np.load(scales)
            data = np.moveaxis(q.astype(np.float64) * s[..., None], -1, 0)
            data[:, s == 0] = np.nan
        else:
            geo = layout.files[0]
        with rasterio.open(geo) as ds:
            self.crs, self.transform, self.shape = ds.crs, ds.transform, (ds.height, ds.width)
            if layout.name != "tessera_npy":
                data = DECODERS[layout.name](ds.read())
        self.data = data

    def to_file_crs(self, xs, ys, src_crs):
        from rasterio.warp import transform

        x, y = transform(src_crs, self.crs, list(np.ravel(xs)), list(np.ravel(ys)))
        return np.asarray(x), np.asarray(y)

    def position(self, x, y):
        """Continuous (col, row) of file-CRS points (stored rows, as ``~transform`` gives them)."""
        cols, rows = ~self.transform @ (np.asarray(x), np.asarray(y))
        return np.asarray(cols), np.asarray(rows)

    def value(self, col: int, row: int):
        h, w = self.shape
        if not (0 <= row < h and 0 <= col < w):
            return None
        return self.data[:, row, col]

    def at(self, lon: float, lat: float):
        """``(vector, distance in pixels to the nearest pixel edge)`` of the pixel holding the point."""
        x, y = self.to_file_crs([lon], [lat], "EPSG:4326")
        cf, rf = self.position(x, y)
        cf, rf = float(cf[0]), float(rf[0])
        edge = min(cf - np.floor(cf), np.ceil(cf) - cf, rf - np.floor(rf), np.ceil(rf) - rf)
        return self.value(int(np.floor(cf)), int(np.floor(rf))), edge

    def candidates(self, x: float, y: float, tol: float = 0.15):
        """Values of the pixel holding (x, y) (file CRS), plus its neighbours when within ``tol``
        pixels of an edge (a resampler may round there either way)."""
        cf, rf = (float(v[0]) for v in self.position([x], [y]))
        cols = {int(np.floor(cf))} | {int(np.floor(cf + d)) for d in (-tol, tol)}
        rows = {int(np.floor(rf))} | {int(np.floor(rf + d)) for d in (-tol, tol)}
        exact = self.value(int(np.floor(cf)), int(np.floor(rf)))
        return exact, [v for c in cols for r in rows if (v := self.value(c, r)) is not None]


# ------------------------------------------------------------------ patches


def _square(lon: float, lat: float, size_m: float):
    import shapely
    from pyproj import CRS, Transformer

    zone = int((lon + 180) // 6) + 1
    utm = CRS.from_dict({"proj": "utm", "zone": zone, "south": lat < 0})
    fwd = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    back = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    cx, cy = fwd.transform(lon, lat)
    h = size_m / 2
    corners = ((-h, -h), (h, -h), (h, h), (-h, h))
    return shapely.Polygon([back.transform(cx + dx, cy + dy) for dx, dy in corners])


def patch_table(layout):
    """``(geometries, embeddings (n, d), times datetime64[s] or None)`` read with pyarrow."""
    import pyarrow.parquet as pq
    import shapely

    (path,) = layout.files
    t = pq.read_table(path)
    names = t.column_names
    column = "embedding" if "embedding" in names else "embeddings"
    emb = np.asarray(t.column(column).to_pylist(), dtype=np.float64)
    size = layout.options.get("patch_m")
    if "geometry" in names:
        geoms = shapely.from_wkb(np.asarray(t.column("geometry").to_pylist(), dtype=object))
        geoms = np.asarray([_square(g.x, g.y, size) if g.geom_type == "Point" else g for g in geoms],
                           dtype=object)
    else:
        lons, lats = t.column("centre_lon").to_pylist(), t.column("centre_lat").to_pylist()
        geoms = np.asarray([_square(x, y, size) for x, y in zip(lons, lats)], dtype=object)
    times = None
    for col in ("date", "datetime", "timestamp"):
        if col in names:
            values = t.column(col).to_pylist()
            times = np.asarray([np.datetime64(str(v)[:19]) for v in values], "datetime64[s]")
            break
    if times is None and layout.model == "clay":
        day = re.findall(r"_(\d{8})\.", Path(path).name)[-1]
        times = np.full(len(emb), np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}"), "datetime64[s]")
    return geoms, emb, times


def patch_expected(layout, roi, start, end):
    """``(indices, weights, pooled, coverage)`` of the patches of ``roi`` in ``[start, end)``,
    weights from geodesic intersection areas."""
    import shapely
    from pyproj import Geod

    geod = Geod(ellps="WGS84")

    def area(g):
        return abs(geod.geometry_area_perimeter(g)[0])

    geoms, emb, times = patch_table(layout)
    idx = []
    for i, g in enumerate(geoms):
        if times is not None and not (np.datetime64(start) <= times[i] < np.datetime64(end)):
            continue
        if g.intersects(roi) and area(g.intersection(roi)) > 0:
            idx.append(i)
    a = np.array([area(geoms[i].intersection(roi)) for i in idx])
    w = a / a.sum() if idx else a
    cover = area(shapely.union_all([geoms[i].intersection(roi) for i in idx])) / area(roi) if idx else 0.0
    return np.asarray(idx, int), w, (w @ emb[idx] if idx else None), min(cover, 1.0), emb
