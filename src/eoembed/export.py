"""Export embed-stage chunk files to self-describing GeoParquet and CF-1.8 NetCDF.

Both exports take the chunk files of **one model** (``write_chunk`` output of the embed stage)
and write one file atomically (temporary file + rename):

* :func:`export_geoparquet` — one row per ``ok``/``partial`` item with its ROI polygon
  (EPSG:4326), time window, pooled embedding (``list<float32>``) and provenance; the model
  card, options, weights sha256 and versions are in the Parquet schema metadata (key ``eoembed``).
* :func:`export_netcdf` — a CF-1.8 dataset ``embedding(roi, dim)`` with centroid coordinates,
  a WGS84 ``crs`` grid mapping and the full requests in the global attributes. Failed items are
  kept (all-NaN rows) so ``status`` tells the whole story.

Per-ROI grid embeddings (one NetCDF group per ROI) live in :mod:`eoembed.export_grid`; they are
also importable from here as ``export_grid_netcdf`` and ``open_grid``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from eoembed.chunkio import atomic_output, read_chunk
from eoembed.errors import ConfigError

__all__ = ["ChunkItem", "export_geoparquet", "export_grid_netcdf", "export_netcdf", "export_pooled",
           "history_line", "item_geometry", "iter_items", "json_attr", "mean_valid_fraction", "open_grid", "pooled_vector",
           "provenance", "read_geoparquet_metadata", "time_window"]

META_KEY = "eoembed"
"""Parquet schema-metadata key holding the run provenance (JSON)."""

EXPORT_STATUSES = ("ok", "partial")


@dataclass(frozen=True)
class ChunkItem:
    """One item of an embed-stage chunk file.

    Attributes:
        roi_id: ROI id.
        arrays: The item's arrays (``"pooled"``, ``"grid"``; empty for failed items).
        record: The item's record (status, stage, error, request, grid, ...).
        meta: The chunk-level metadata (model, card, options, versions, ...).
        path: The chunk file it came from.
    """

    roi_id: str
    arrays: dict[str, np.ndarray]
    record: dict[str, Any]
    meta: dict[str, Any]
    path: str


def iter_items(chunk_paths: Iterable[str | os.PathLike]) -> Iterator[ChunkItem]:
    """Yield every item of every chunk file, in file order then record order.

    Raises:
        ConfigError: If the chunks hold more than one model, or one ROI id twice.
    """
    models: set[str] = set()
    seen: dict[str, str] = {}
    for path in chunk_paths:
        items, records, meta = read_chunk(path)
        model = meta.get("model")
        models.add(str(model))
        if len(models) > 1:
            raise ConfigError(f"chunk_paths mix models {sorted(models)}; export one model per file "
                              f"(offending file: {os.fspath(path)})")
        for roi_id, record in records.items():
            if roi_id in seen:
                raise ConfigError(f"roi_id {roi_id!r} appears in two chunk files: {seen[roi_id]} and "
                                  f"{os.fspath(path)}; allowed: each ROI once per model")
            seen[roi_id] = os.fspath(path)
            yield ChunkItem(roi_id, items.get(roi_id, {}), record, meta, os.fspath(path))


def pooled_vector(item: ChunkItem) -> np.ndarray | None:
    """The item's pooled embedding as float32, or ``None``.

    Uses the ``"pooled"`` array; when only a ``"grid"`` array exists, returns the NaN-aware mean
    over its cells (cells with no valid pixels are NaN and ignored).
    """
    if "pooled" in item.arrays:
        return np.asarray(item.arrays["pooled"], dtype=np.float32).ravel()
    if "grid" in item.arrays:
        grid = np.asarray(item.arrays["grid"], dtype=np.float64)
        flat = grid.reshape(grid.shape[0], -1)
        with warnings.catch_warnings():  # all-NaN dims give NaN, which is what we want
            warnings.simplefilter("ignore", category=RuntimeWarning)
            return np.nanmean(flat, axis=1).astype(np.float32)
    return None


def mean_valid_fraction(record: dict[str, Any]) -> float:
    """Mean of the per-frame valid fractions of a record (NaN when none)."""
    values = [v for v in (record.get("valid_fraction") or []) if v is not None]
    return float(np.mean(values)) if values else float("nan")


def item_geometry(record: dict[str, Any]):
    """The ROI polygon in lon/lat: from ``geometry_wkt``, else rebuilt from the request spec."""
    import shapely

    if record.get("geometry_wkt"):
        return shapely.from_wkt(record["geometry_wkt"])
    spatial = (record.get("request") or {}).get("spatial")
    if spatial:
        from eoembed.specs import spatial_from_dict

        return spatial_from_dict(spatial).geometry()
    return None


def time_window(record: dict[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    """The request's half-open time window ``[start, end)`` as dates (``None`` if unknown)."""
    temporal = (record.get("request") or {}).get("temporal") or {}
    start, end = temporal.get("start"), temporal.get("end")
    return (dt.date.fromisoformat(str(start)[:10]) if start else None,
            dt.date.fromisoformat(str(end)[:10]) if end else None)


def provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """The run provenance stored with every export (model, card, options, weights, sensor, versions)."""
    return {"model": meta.get("model"), "card": meta.get("card"), "options": meta.get("options", {}),
            "weights_sha256": meta.get("weights_sha256", {}), "sensor": meta.get("sensor"),
            "versions": meta.get("versions", {})}


def json_attr(obj: Any) -> str:
    """``obj`` as sorted-key JSON, for NetCDF/Parquet attributes."""
    return json.dumps(obj, sort_keys=True, default=str)


def history_line(action: str, n_items: int, n_files: int, versions: dict[str, Any]) -> str:
    """A CF ``history`` entry: eoembed version, action and counts.

    No wall-clock time: an export depends only on its inputs, so a rerun (or a run resumed
    after a kill) writes byte-identical files.
    """
    return (f"eoembed {versions.get('eoembed', '?')} {action}: {n_items} item(s) "
            f"from {n_files} chunk file(s)")


# ------------------------------------------------------------------ GeoParquet


def export_geoparquet(chunk_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Write the ok/partial items of one model's chunk files as a GeoParquet file.

    Columns: ``roi_id``, ``geometry`` (ROI polygon, EPSG:4326), ``start``/``end`` (dates; the
    window is ``[start, end)``), ``embedding`` (``list<float32>``), ``model``, ``request_key``,
    ``status``, ``valid_fraction`` (mean over frames), ``dims``. Schema metadata ``eoembed``
    holds the JSON provenance (model card, options, weights sha256, sensor, versions).

    Args:
        chunk_paths: Embed-stage chunk files of a single model.
        out_path: Destination ``.parquet``.

    Returns:
        Number of rows written.
    """
    paths = [os.fspath(p) for p in chunk_paths]
    return _write_geoparquet(list(iter_items(paths)), len(paths), out_path)


def _write_geoparquet(items: list[ChunkItem], n_files: int, out_path: str | os.PathLike) -> int:
    import geopandas as gpd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    geoms = []
    meta: dict[str, Any] = {}
    for item in items:
        meta = meta or item.meta
        vec = pooled_vector(item)
        if item.record.get("status") not in EXPORT_STATUSES or vec is None:
            continue
        start, end = time_window(item.record)
        rows.append({"roi_id": item.roi_id, "start": start, "end": end, "embedding": vec,
                     "model": item.record.get("model") or item.meta.get("model"),
                     "request_key": item.record.get("request_key"), "status": item.record["status"],
                     "valid_fraction": mean_valid_fraction(item.record), "dims": int(vec.size)})
        geoms.append(item_geometry(item.record))
    columns = ["roi_id", "start", "end", "embedding", "model", "request_key", "status",
               "valid_fraction", "dims"]
    gdf = gpd.GeoDataFrame(rows, columns=columns, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"))
    prov = provenance(meta)
    prov["history"] = history_line("export_geoparquet", len(rows), n_files, prov["versions"] or {})

    with atomic_output(out_path, ".parquet") as tmp_out:
        # geopandas writes the GeoParquet 'geo' metadata to a scratch file beside the output;
        # we then fix the embedding type and add ours
        tmp_geo = tmp_out.with_name(tmp_out.name + ".geo")
        try:
            gdf.to_parquet(tmp_geo, index=False)
            table = pq.read_table(tmp_geo)
        finally:
            tmp_geo.unlink(missing_ok=True)
        types = {"roi_id": pa.string(), "start": pa.date32(), "end": pa.date32(),
                 "embedding": pa.list_(pa.float32()), "model": pa.string(), "request_key": pa.string(),
                 "status": pa.string(), "valid_fraction": pa.float64(), "dims": pa.int32()}
        for name, typ in types.items():  # explicit types, also when there are no rows
            column = pa.array([r[name] for r in rows], type=typ)
            table = table.set_column(table.schema.get_field_index(name), name, column)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               META_KEY.encode(): json_attr(prov).encode()})
        pq.write_table(table, tmp_out)
    return len(rows)


def read_geoparquet_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``eoembed`` provenance JSON of a GeoParquet written by :func:`export_geoparquet`."""
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(META_KEY.encode(), b"{}"))


# ------------------------------------------------------------------ NetCDF (pooled)


def export_netcdf(chunk_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Write one model's pooled embeddings as a CF-1.8 NetCDF file.

    Variables: ``embedding(roi, dim)`` float32 (NaN rows for failed items), coordinates ``roi``,
    ``lon``/``lat`` (ROI centroid), ``time_start``/``time_end`` (window ``[start, end)``),
    ``status``; ``crs`` (WGS84 ``latitude_longitude`` from pyproj ``CRS.to_cf()``) referenced by
    ``embedding:grid_mapping``. Global attributes hold the model card, options, per-ROI
    requests, versions and weights sha256 as JSON, plus ``history``.

    Args:
        chunk_paths: Embed-stage chunk files of a single model.
        out_path: Destination ``.nc``.

    Returns:
        Number of ROIs written.
    """
    paths = [os.fspath(p) for p in chunk_paths]
    return _write_netcdf(list(iter_items(paths)), len(paths), out_path)


def _write_netcdf(items: list[ChunkItem], n_files: int, out_path: str | os.PathLike) -> int:
    import xarray as xr
    from pyproj import CRS

    meta = items[0].meta if items else {}
    vectors = [pooled_vector(i) if i.record.get("status") in EXPORT_STATUSES else None for i in items]
    sizes = {v.size for v in vectors if v is not None}
    if len(sizes) > 1:
        raise ConfigError(f"pooled embeddings have different sizes {sorted(sizes)}; allowed: one size")
    dims = sizes.pop() if sizes else int((meta.get("card") or {}).get("dims") or 0)
    data = np.full((len(items), dims), np.nan, dtype=np.float32)
    for row, vec in enumerate(vectors):
        if vec is not None:
            data[row] = vec
    lon = np.full(len(items), np.nan)
    lat = np.full(len(items), np.nan)
    starts, ends = [], []
    for row, item in enumerate(items):
        centroid = item.record.get("centroid")
        if centroid is None:
            geom = item_geometry(item.record)
            centroid = (geom.centroid.x, geom.centroid.y) if geom is not None else (np.nan, np.nan)
        lon[row], lat[row] = centroid
        start, end = time_window(item.record)
        starts.append(np.datetime64(start, "ns") if start else np.datetime64("NaT", "ns"))
        ends.append(np.datetime64(end, "ns") if end else np.datetime64("NaT", "ns"))

    prov = provenance(meta)
    coords = {
        "roi": ("roi", np.array([i.roi_id for i in items], dtype=object),
                {"long_name": "region of interest id"}),
        "lon": ("roi", lon, {"standard_name": "longitude", "long_name": "ROI centroid longitude",
                             "units": "degrees_east"}),
        "lat": ("roi", lat, {"standard_name": "latitude", "long_name": "ROI centroid latitude",
                             "units": "degrees_north"}),
        "time_start": ("roi", np.array(starts, dtype="datetime64[ns]"),
                       {"long_name": "start of the time window (inclusive)"}),
        "time_end": ("roi", np.array(ends, dtype="datetime64[ns]"),
                     {"long_name": "end of the time window (exclusive)"}),
        "status": ("roi", np.array([str(i.record.get("status")) for i in items], dtype=object),
                   {"long_name": "item status", "comment": "one of ok, partial, failed"}),
    }
    crs_attrs = CRS("EPSG:4326").to_cf()
    crs_attrs["spatial_ref"] = crs_attrs["crs_wkt"]
    ds = xr.Dataset(
        {"embedding": (("roi", "dim"), data,
                       {"long_name": f"{prov['model']} pooled embedding", "units": "1",
                        "grid_mapping": "crs"}),
         "crs": ((), np.int32(0), crs_attrs)},
        coords=coords,
        attrs={"Conventions": "CF-1.8",
               "title": f"eoembed pooled embeddings of model {prov['model']}",
               "source": "eoembed embed stage",
               "model": str(prov["model"]),
               "model_card": json_attr(prov["card"]), "options": json_attr(prov["options"]),
               "weights_sha256": json_attr(prov["weights_sha256"]), "sensor": json_attr(prov["sensor"]),
               "request": json_attr({i.roi_id: i.record.get("request") for i in items}),
               "versions": json_attr(prov["versions"]),
               "history": history_line("export_netcdf", len(items), n_files, prov["versions"] or {})})
    encoding = {"embedding": {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True},
                "time_start": {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian"},
                "time_end": {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian"}}
    with atomic_output(out_path, ".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return len(items)


def export_pooled(chunk_paths: Iterable[str | os.PathLike], parquet_path: str | os.PathLike,
                  netcdf_path: str | os.PathLike) -> int:
    """Both pooled exports of one model (:func:`export_geoparquet`, :func:`export_netcdf`),
    reading the chunk files once. Returns the number of ROIs."""
    paths = [os.fspath(p) for p in chunk_paths]
    items = list(iter_items(paths))
    _write_geoparquet(items, len(paths), parquet_path)
    return _write_netcdf(items, len(paths), netcdf_path)


def __getattr__(name: str) -> Any:
    """Lazily expose the grid export (kept in :mod:`eoembed.export_grid`) from this module."""
    if name in ("export_grid_netcdf", "open_grid"):
        from eoembed import export_grid

        return getattr(export_grid, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
