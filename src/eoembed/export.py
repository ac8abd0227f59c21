"""Export embed-stage chunk files to self-describing GeoParquet and CF-1.8 NetCDF.

Both exports take the chunk files of **one model** (``write_chunk`` output of the embed stage)
and write one file atomically (temporary file + rename), streamed one chunk file at a time
(:mod:`eoembed.export_pooled`):

* :func:`export_geoparquet` — one row per ``ok``/``partial`` item with its ROI polygon
  (EPSG:4326), time window, pooled embedding (``list<float32>``) and ``provenance_warning``; the
  provenance merged over all chunks (model card, options, weights sha256, versions, code, and
  any disagreement) is in the Parquet schema metadata (key ``eoembed``).
* :func:`export_netcdf` — a CF-1.8 point collection ``embedding(roi, dim)`` with centroid
  coordinates, a WGS84 ``crs`` grid mapping, per-ROI ``request`` (JSON) and ``status``, and the
  merged provenance in the global attributes. Failed items are kept (all-NaN rows) so
  ``status`` tells the whole story.

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


# ------------------------------------------------------------------ pooled exports (streamed)


def _history(action: str, scan: dict[str, Any], n_items: int, n_files: int) -> str:
    return history_line(action, n_items, n_files, scan["provenance"].get("versions") or {})


def export_geoparquet(chunk_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Write the ok/partial items of one model's chunk files as a GeoParquet file.

    Columns: ``roi_id``, ``geometry`` (ROI polygon, EPSG:4326), ``start``/``end`` (dates; the
    window is ``[start, end)``), ``embedding`` (``list<float32>``), ``model``, ``request_key``,
    ``status``, ``valid_fraction`` (mean over frames), ``dims``, ``provenance_warning`` (set when
    the item's chunk disagrees with the merged provenance). Schema metadata ``eoembed`` holds the
    provenance merged over all chunks (:func:`eoembed.export_pooled.merge_provenance`). Written
    one chunk file at a time (:mod:`eoembed.export_pooled`).

    Returns:
        Number of rows written.
    """
    from eoembed.export_pooled import scan_chunks, write_geoparquet

    paths = [os.fspath(p) for p in chunk_paths]
    scan = scan_chunks(paths)
    return write_geoparquet(paths, scan, out_path, _history("export_geoparquet", scan, scan["n_items"], len(paths)))


def read_geoparquet_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``eoembed`` provenance JSON of a GeoParquet written by :func:`export_geoparquet`."""
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(META_KEY.encode(), b"{}"))


def export_netcdf(chunk_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Write one model's pooled embeddings as a CF-1.8 NetCDF point collection.

    Variables: ``embedding(roi, dim)`` float32 (NaN rows for failed items), coordinates ``roi``,
    ``lon``/``lat`` (ROI centroid), ``time_start``/``time_end`` (window ``[start, end)``); per ROI
    ``status``, ``request`` (JSON) and ``provenance_warning``; ``crs`` (WGS84
    ``latitude_longitude``) referenced by ``embedding:grid_mapping``. Global attributes:
    ``featureType = point`` and the provenance merged over all chunks (model card, options,
    versions, weights sha256, code, ``provenance_disagreements``), plus ``history``.

    Returns:
        Number of ROIs written.
    """
    from eoembed.export_pooled import scan_chunks, write_netcdf

    paths = [os.fspath(p) for p in chunk_paths]
    scan = scan_chunks(paths)
    return write_netcdf(paths, scan, out_path, _history("export_netcdf", scan, scan["n_items"], len(paths)))


def export_pooled(chunk_paths: Iterable[str | os.PathLike], parquet_path: str | os.PathLike,
                  netcdf_path: str | os.PathLike) -> int:
    """Both pooled exports of one model (:func:`export_geoparquet`, :func:`export_netcdf`),
    streamed chunk by chunk with one scan of the records. Returns the number of ROIs."""
    from eoembed.export_pooled import scan_chunks, write_geoparquet, write_netcdf

    paths = [os.fspath(p) for p in chunk_paths]
    scan = scan_chunks(paths)
    write_geoparquet(paths, scan, parquet_path, _history("export_geoparquet", scan, scan["n_items"], len(paths)))
    return write_netcdf(paths, scan, netcdf_path, _history("export_netcdf", scan, scan["n_items"], len(paths)))


def __getattr__(name: str) -> Any:
    """Lazily expose the grid export (kept in :mod:`eoembed.export_grid`) from this module."""
    if name in ("export_grid_netcdf", "open_grid"):
        from eoembed import export_grid

        return getattr(export_grid, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
