"""Shared logic of patch-typed products: load patch tables, select patches, area weights.

A patch table holds one embedding per footprint polygon (EPSG:4326), optionally with a time.
Products that publish points (Earth Index) or patch centres (Major TOM) get square footprints of
``patch_m`` metres built in the point's UTM zone. A ROI's patches are those intersecting it; each
weighs the **area of its intersection with the ROI**, measured in the ROI's UTM zone; the pooled
embedding is the weighted mean (or the max over the selected patches).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eoembed.errors import ProviderError
from eoembed.grid import to_crs, utm_epsg

log = logging.getLogger(__name__)

__all__ = ["PatchTable", "Selection", "date_from_name", "load_patch_table", "pool_patches",
           "square_footprints"]


@dataclass(frozen=True)
class Selection:
    """Patches selected for a ROI: table indices, area weights (sum 1), ROI share covered."""

    index: np.ndarray
    weights: np.ndarray
    coverage: float


def _to_utm(geoms, epsg: int):
    import shapely

    crs = f"EPSG:{epsg}"
    return shapely.transform(geoms, lambda xy: np.asarray(to_crs(xy[:, 0], xy[:, 1], "EPSG:4326", crs)).T)


class PatchTable:
    """Embeddings with footprints (and optional times), indexed by an STRtree.

    Args:
        geometries: Shapely polygons in EPSG:4326, one per row.
        embeddings: ``(n, dims)`` float32.
        times: ``datetime64[s]`` per row, or None for products without time.
        ids: Row identifiers for provenance.
    """

    def __init__(self, geometries, embeddings: np.ndarray, times: np.ndarray | None = None, ids=None) -> None:
        import shapely

        self.geometries = np.asarray(geometries, dtype=object)
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.geometries):
            raise ProviderError(f"patch table: embeddings shape {self.embeddings.shape} does not match "
                                f"{len(self.geometries)} geometries")
        self.times = times
        self.ids = np.asarray(ids if ids is not None else np.arange(len(self.geometries)))
        self.tree = shapely.STRtree(self.geometries)
        #: ``(path, reason)`` of files that were refused while loading.
        self.skipped: list[tuple[str, str]] = []

    def select(self, roi_lonlat, window: tuple[dt.date, dt.date] | None = None) -> Selection:
        """Patches intersecting ``roi_lonlat`` (and, if given, with a time in ``[start, end)``)."""
        import shapely

        idx = np.sort(self.tree.query(roi_lonlat, predicate="intersects"))
        if window is not None and self.times is not None and idx.size:
            t = self.times[idx]
            lo, hi = np.datetime64(window[0], "s"), np.datetime64(window[1], "s")
            idx = idx[(t >= lo) & (t < hi)]
        if idx.size == 0:
            return Selection(idx, np.zeros(0), 0.0)
        lon, lat = roi_lonlat.centroid.x, roi_lonlat.centroid.y
        epsg = utm_epsg(lon, lat)
        roi = _to_utm(roi_lonlat, epsg)
        parts = shapely.intersection(_to_utm(self.geometries[idx], epsg), roi)
        areas = shapely.area(parts)
        keep = areas > 0
        idx, areas, parts = idx[keep], areas[keep], parts[keep]
        if idx.size == 0:  # touching only
            return Selection(idx, np.zeros(0), 0.0)
        coverage = float(shapely.area(shapely.union_all(parts)) / roi.area)
        return Selection(idx, areas / areas.sum(), min(coverage, 1.0))


def pool_patches(embeddings: np.ndarray, weights: np.ndarray, pooling: str) -> np.ndarray:
    """Area-weighted mean (or max) of ``(n, dims)`` patch embeddings."""
    if pooling == "max":
        return embeddings.max(axis=0).astype(np.float32)
    return (weights[:, None] * embeddings.astype(np.float64)).sum(axis=0).astype(np.float32)


def square_footprints(lons: np.ndarray, lats: np.ndarray, size_m: float):
    """Squares of ``size_m`` metres centred on each point, built in the point's UTM zone."""
    import shapely

    out = []
    for lon, lat in zip(np.asarray(lons, float), np.asarray(lats, float)):
        crs = f"EPSG:{utm_epsg(lon, lat)}"
        cx, cy = to_crs(lon, lat, "EPSG:4326", crs)
        h = size_m / 2
        xs, ys = [cx - h, cx + h, cx + h, cx - h], [cy - h, cy - h, cy + h, cy + h]
        out.append(shapely.Polygon(zip(*to_crs(xs, ys, crs, "EPSG:4326"))))
    return np.asarray(out, dtype=object)


def _first(columns, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in columns), None)


def date_from_name(name: str) -> np.datetime64 | None:
    """The last ``YYYYMMDD`` token of a file name that is a valid date (e.g. NAIP
    ``m_4007201_ne_18_060_20211105.parquet`` -> 2021-11-05), or None."""
    import re

    for token in reversed(re.findall(r"(?<![0-9])([12][0-9]{7})(?![0-9])", name)):
        try:
            return np.datetime64(dt.datetime.strptime(token, "%Y%m%d"), "s")
        except ValueError:
            continue
    return None


def _read_file(path: Path, *, embedding_cols, time_cols, point_size_m, centre_cols):
    """``(geometries, embeddings, times or None, time source)`` of one (Geo)Parquet file.

    Raises:
        ProviderError: The file lacks an embedding column, a geometry, or (when times are
            needed) a time column and a date in its name.
    """
    import pandas as pd
    import pyarrow.parquet as pq
    import shapely

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError) as exc:
        raise ProviderError(f"{path}: not a readable parquet file ({exc})") from None
    if b"geo" in meta:
        import geopandas as gpd

        df = gpd.read_parquet(path)
        df = df.to_crs("EPSG:4326") if df.crs is not None else df
        g = np.asarray(df.geometry.values, dtype=object)
    else:
        df = pd.read_parquet(path)
        g = None
        if "geometry" in df.columns:
            g = np.asarray(shapely.from_wkb(df["geometry"].to_numpy()), dtype=object)
    ecol = _first(df.columns, embedding_cols)
    if ecol is None:
        raise ProviderError(f"{path}: no embedding column; looked for {list(embedding_cols)}, "
                            f"found {list(df.columns)}")
    if g is None and centre_cols and all(c in df.columns for c in centre_cols):
        if point_size_m is None:
            raise ProviderError(f"{path}: no geometry and no patch size to build footprints")
        g = square_footprints(df[centre_cols[0]].to_numpy(), df[centre_cols[1]].to_numpy(), point_size_m)
    if g is None:
        raise ProviderError(f"{path}: no geometry column and no centre columns {centre_cols}")
    points = shapely.get_type_id(g) == 0
    if points.any():
        if point_size_m is None:
            raise ProviderError(f"{path}: point geometries need a patch size (option patch_m)")
        g = g.copy()
        g[points] = square_footprints(shapely.get_x(g[points]), shapely.get_y(g[points]), point_size_m)
    emb = np.stack([np.asarray(v, dtype=np.float32) for v in df[ecol].to_numpy()])
    times, source = None, None
    if time_cols:
        tcol = _first(df.columns, time_cols)
        if tcol is not None:
            t = pd.to_datetime(df[tcol], utc=True).dt.tz_localize(None)
            times, source = t.to_numpy().astype("datetime64[s]"), f"column {tcol}"
        else:
            day = date_from_name(Path(path).name)
            if day is None:
                raise ProviderError(f"{path}: no time column (looked for {list(time_cols)}) and no "
                                    f"YYYYMMDD date in the file name")
            times, source = np.full(len(df), day, dtype="datetime64[s]"), "file name"
    return g, emb, times, source


def load_patch_table(paths: list[Path], *, embedding_cols: tuple[str, ...], time_cols: tuple[str, ...] = (),
                     point_size_m: float | None = None,
                     centre_cols: tuple[str, str] | None = None) -> PatchTable:
    """Read (Geo)Parquet files into one :class:`PatchTable`; a file that cannot be read is skipped.

    Geometry: the GeoParquet geometry column (reprojected to EPSG:4326); a plain ``geometry`` column
    of WKB; or, when absent, squares of ``point_size_m`` around ``centre_cols`` (lon, lat). Point
    geometries become squares of ``point_size_m`` too. Times (when ``time_cols`` is given): the
    first time column present, else the ``YYYYMMDD`` date in the file name (Clay v1.5 NAIP).

    A refused file (no embedding column, no geometry, no time, embeddings of another size than
    the first file read) is skipped and listed in ``PatchTable.skipped`` as ``(path, reason)``;
    the other files load.

    Raises:
        ProviderError: No file could be read (the message gives each file's reason).
    """
    geoms, embs, times, ids, skipped = [], [], [], [], []
    for path in paths:
        try:
            g, emb, t, _ = _read_file(path, embedding_cols=embedding_cols, time_cols=time_cols,
                                      point_size_m=point_size_m, centre_cols=centre_cols)
            if embs and emb.shape[1] != embs[0].shape[1]:
                raise ProviderError(f"{path}: {emb.shape[1]}-d embeddings, but the first file read has "
                                    f"{embs[0].shape[1]}-d ones; allowed: one product version per source")
        except ProviderError as exc:
            log.warning("patch file skipped: %s", exc)
            skipped.append((str(path), str(exc)))
            continue
        geoms.append(g)
        embs.append(emb)
        if time_cols:
            times.append(t)
        ids.append([f"{Path(path).name}:{i}" for i in range(len(emb))])
    if not geoms:
        reasons = "; ".join(r for _, r in skipped) or "no .parquet/.gpq file"
        raise ProviderError(f"no patch file could be read: {reasons}")
    table = PatchTable(np.concatenate(geoms), np.concatenate(embs),
                       np.concatenate(times) if time_cols else None, np.concatenate(ids))
    table.skipped = skipped
    return table
