"""Label preparation: ROI tables built from label rasters (the paper's maize-yield points).

SPAM2020 V2 (MapSPAM, IFPRI) publishes per-crop GeoTIFFs on a 5 arc-minute grid: yield in kg/ha
(``..._Y_MAIZ_A.tif``) and harvested area in ha (``..._H_MAIZ_A.tif``). The rs-embed paper keeps
the cells of Illinois whose maize harvested area exceeds 2,500 ha and uses each cell centre as a
point. :func:`spam_points` does exactly that for any boundary polygon: cells whose centre lies in
the boundary, with area strictly above ``min_area_ha`` and a finite yield > 0.

The boundary comes from a vector file the user gives (GeoJSON, GeoPackage, shapefile; any CRS),
optionally filtered to the features whose ``column`` equals ``value`` (e.g. a US-states file
filtered to ``NAME = Illinois``). Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eoembed.chunkio import atomic_output
from eoembed.errors import ConfigError

__all__ = ["labels_pending", "load_boundary", "prepare_labels", "spam_points"]

SOURCES = ("spam2020",)


def labels_pending(config: dict[str, Any]) -> bool:
    """True when the config builds its ROI table from labels and the table does not exist yet.

    The workflow then plans only the label preparation; the next ``snakemake`` call reads the
    table and runs the models on it.
    """
    return bool(config.get("labels")) and not Path(config["rois"]).exists()


def load_boundary(path: str | os.PathLike, column: str | None = None, value: Any = None):
    """The union of a vector file's polygons in EPSG:4326 (optionally only features with ``column == value``)."""
    import geopandas as gpd

    if not Path(path).exists():
        raise ConfigError(f"labels.boundary: no file at {path!r}; give a vector file (GeoJSON/GPKG/SHP) "
                          "of the region, e.g. a US-states layer with boundary_column/boundary_value")
    gdf = gpd.read_file(path)
    if column is not None:
        if column not in gdf.columns:
            raise ConfigError(f"labels.boundary_column: {column!r} not in {path}; allowed: "
                              f"{[c for c in gdf.columns if c != 'geometry']}")
        gdf = gdf[gdf[column].astype(str) == str(value)]
        if gdf.empty:
            raise ConfigError(f"labels.boundary_value: no feature of {path} has {column} == {value!r}")
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")
    return gdf.to_crs("EPSG:4326").geometry.union_all()


def spam_points(yield_tif: str | os.PathLike, area_tif: str | os.PathLike, boundary,
                min_area_ha: float) -> pd.DataFrame:
    """Cell centres inside ``boundary`` with harvested area > ``min_area_ha`` and a yield > 0.

    Args:
        yield_tif: SPAM yield raster (kg/ha).
        area_tif: SPAM harvested-area raster (ha per cell), on the same grid.
        boundary: A shapely (multi)polygon in EPSG:4326.
        min_area_ha: Strict lower bound of the harvested area.

    Returns:
        ``lon, lat, yield_kg_ha, area_ha`` (lon/lat in EPSG:4326), in raster order.
    """
    import rasterio
    import shapely
    from pyproj import Transformer

    with rasterio.open(yield_tif) as ys, rasterio.open(area_tif) as hs:
        if (ys.crs, ys.transform, ys.shape) != (hs.crs, hs.transform, hs.shape):
            raise ConfigError(f"labels: {yield_tif} and {area_tif} are not on the same grid "
                              f"(crs/transform/shape {ys.crs}/{tuple(ys.transform)[:6]}/{ys.shape} vs "
                              f"{hs.crs}/{tuple(hs.transform)[:6]}/{hs.shape})")
        yld = ys.read(1, masked=True).astype(float).filled(np.nan)
        area = hs.read(1, masked=True).astype(float).filled(np.nan)
        transform, crs = ys.transform, ys.crs
    rows, cols = np.nonzero(np.isfinite(area) & (area > min_area_ha) & np.isfinite(yld) & (yld > 0))
    xs, ys_ = rasterio.transform.xy(transform, rows, cols, offset="center")
    xs, ys_ = np.asarray(xs, dtype=float), np.asarray(ys_, dtype=float)
    if crs is not None and crs.to_epsg() != 4326:
        xs, ys_ = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys_)
    inside = shapely.contains_xy(boundary, xs, ys_) if len(xs) else np.zeros(0, bool)
    return pd.DataFrame({"lon": xs[inside], "lat": ys_[inside], "yield_kg_ha": yld[rows, cols][inside],
                         "area_ha": area[rows, cols][inside]})


def prepare_labels(labels: dict[str, Any], out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Write the ROI table of a ``labels`` config block (see config/README.md).

    Columns: ``roi_id, lon, lat, buffer_m, start, end, <crop>_yield_t_ha, <crop>_area_ha``
    (yield converted from SPAM's kg/ha to t/ha). ROI ids are ``<prefix>_<row>`` in raster order.
    """
    if labels.get("source") not in SOURCES:
        raise ConfigError(f"labels.source: {labels.get('source')!r} is not supported; allowed: {SOURCES}")
    boundary = load_boundary(labels["boundary"], labels.get("boundary_column"), labels.get("boundary_value"))
    pts = spam_points(labels["yield_tif"], labels["harvested_area_tif"], boundary, labels["min_area_ha"])
    if pts.empty:
        raise ConfigError(f"labels: no cell inside {labels['boundary']} has harvested area > "
                          f"{labels['min_area_ha']} ha and a yield > 0")
    crop = labels["crop"]
    width = max(4, len(str(len(pts))))
    table = pd.DataFrame({
        "roi_id": [f"{labels['id_prefix']}_{i:0{width}d}" for i in range(len(pts))],
        "lon": pts["lon"].round(6), "lat": pts["lat"].round(6), "buffer_m": float(labels["buffer_m"]),
        "start": str(labels["start"]), "end": str(labels["end"]),
        f"{crop}_yield_t_ha": (pts["yield_kg_ha"] / 1000.0).round(4), f"{crop}_area_ha": pts["area_ha"].round(2)})
    with atomic_output(out_tsv, ".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return table
