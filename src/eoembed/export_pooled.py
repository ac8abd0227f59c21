"""Streaming pooled exports: GeoParquet and CF NetCDF written chunk file by chunk file.

Two passes over one model's embed-stage chunk files:

1. only the JSON records and chunk metadata are read (no arrays): the ROI count, the
   embedding size and each chunk's provenance, merged into one (:func:`merge_provenance`);
2. each chunk is read, its pooled vectors written (a Parquet row group; a slice of the NetCDF
   variables) and dropped before the next, so memory holds one chunk (grids included) plus the
   small per-ROI fields, whatever the number of ROIs (``benchmarks/export_memory.py``).

Provenance (model card, options, weights sha256, sensor, versions, code) is merged over all
chunks: the value most items share is reported, every disagreement is listed under
``provenance_disagreements``, and each item of a disagreeing chunk gets a
``provenance_warning`` (a column / variable) naming the fields that differ.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from eoembed.chunkio import atomic_output, read_chunk, read_chunk_records
from eoembed.errors import ConfigError
from eoembed.export import (EXPORT_STATUSES, META_KEY, ChunkItem, item_geometry, json_attr, mean_valid_fraction,
                            pooled_vector, time_window)

PROVENANCE_FIELDS = ("model", "card", "options", "weights_sha256", "sensor", "versions", "code")


def scan_chunks(paths: list[str]) -> dict[str, Any]:
    """Pass 1: ROI ids per chunk, embedding size and merged provenance (records only).

    Raises:
        ConfigError: If the chunks hold more than one model, or one ROI id twice.
    """
    seen: dict[str, str] = {}
    models: set[str] = set()
    per_chunk: list[tuple[str, dict[str, Any], int]] = []
    sizes: set[int] = set()
    ids: dict[str, list[str]] = {}
    card_dims = 0
    for path in paths:
        records, meta = read_chunk_records(path)
        models.add(str(meta.get("model")))
        if len(models) > 1:
            raise ConfigError(f"chunk_paths mix models {sorted(models)}; export one model per file "
                              f"(offending file: {path})")
        for roi_id, rec in records.items():
            if roi_id in seen:
                raise ConfigError(f"roi_id {roi_id!r} appears in two chunk files: {seen[roi_id]} and {path}; "
                                  "allowed: each ROI once per model")
            seen[roi_id] = path
            shape = (rec.get("output_shape") or {}).get("pooled")
            if rec.get("status") in EXPORT_STATUSES and shape:
                sizes.add(int(np.prod(shape)))
        ids[path] = list(records)
        prov = {k: meta.get(k) for k in PROVENANCE_FIELDS}
        per_chunk.append((path, prov, len(records)))
        card_dims = card_dims or int((meta.get("card") or {}).get("dims") or 0)
    if len(sizes) > 1:
        raise ConfigError(f"pooled embeddings have different sizes {sorted(sizes)}; allowed: one size")
    merged, disagreements, warnings = merge_provenance(per_chunk, json_attr)
    return {"ids": ids, "dims": sizes.pop() if sizes else card_dims, "provenance": merged,
            "disagreements": disagreements, "warnings": warnings, "n_items": len(seen)}


def merge_provenance(per_chunk: list[tuple[str, dict[str, Any], int]], encode) -> tuple[dict, dict, dict]:
    """Per field, the value most items share; ``(merged, disagreements, warning per chunk)``.

    ``disagreements`` maps a field to ``{json value: [chunk names]}`` for every field whose chunks
    differ; the warning of a chunk names its fields that differ from the merged value.
    """
    merged: dict[str, Any] = {}
    disagreements: dict[str, dict[str, list[str]]] = {}
    warnings: dict[str, str] = {}
    for field in PROVENANCE_FIELDS:
        votes: Counter[str] = Counter()
        value_of: dict[str, Any] = {}
        chunks_of: dict[str, list[str]] = {}
        for path, prov, n in per_chunk:
            key = encode(prov.get(field))
            votes[key] += n
            value_of[key] = prov.get(field)
            chunks_of.setdefault(key, []).append(Path(path).stem)
        if not votes:
            merged[field] = None
            continue
        best = sorted(votes, key=lambda k: (-votes[k], k))[0]
        merged[field] = value_of[best]
        if len(votes) > 1:
            disagreements[field] = {k: chunks_of[k] for k in sorted(votes)}
            for path, prov, _ in per_chunk:
                if encode(prov.get(field)) != best:
                    warnings[path] = ", ".join(filter(None, [warnings.get(path, ""), field]))
    warnings = {p: f"chunk {Path(p).stem} differs from the export's provenance in: {w}" for p, w in warnings.items()}
    return merged, disagreements, warnings


def _rows(path: str, scan: dict[str, Any]):
    """Pass 2: the items of one chunk as ``(roi_id, record, pooled vector or None, warning)``."""
    items, records, meta = read_chunk(path)
    warning = scan["warnings"].get(path)
    for roi_id, rec in records.items():
        item = ChunkItem(roi_id, items.get(roi_id, {}), rec, meta, path)
        vec = pooled_vector(item) if rec.get("status") in EXPORT_STATUSES else None
        yield roi_id, rec, vec, warning


def write_geoparquet(paths: list[str], scan: dict[str, Any], out_path: str | os.PathLike, history: str) -> int:
    """The ok/partial items as GeoParquet, one row group per chunk file; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyproj import CRS

    fields = [("roi_id", pa.string()), ("start", pa.date32()), ("end", pa.date32()),
              ("embedding", pa.list_(pa.float32())), ("model", pa.string()), ("request_key", pa.string()),
              ("status", pa.string()), ("valid_fraction", pa.float64()), ("dims", pa.int32()),
              ("provenance_warning", pa.string()), ("geometry", pa.binary())]
    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": [],
                                    "crs": CRS("EPSG:4326").to_json_dict()}}}
    prov = {**scan["provenance"], "provenance_disagreements": scan["disagreements"], "history": history}
    schema = pa.schema(fields, metadata={b"geo": json_attr(geo).encode(), META_KEY.encode(): json_attr(prov).encode()})
    n = 0
    with atomic_output(out_path, ".parquet") as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for path in paths:
            cols: dict[str, list] = {name: [] for name, _ in fields}
            for roi_id, rec, vec, warning in _rows(path, scan):
                if vec is None:
                    continue
                start, end = time_window(rec)
                geom = item_geometry(rec)
                values = (roi_id, start, end, vec, rec.get("model") or scan["provenance"].get("model"),
                          rec.get("request_key"), rec["status"], mean_valid_fraction(rec), int(vec.size),
                          warning, geom.wkb if geom is not None else None)
                for (name, _), value in zip(fields, values):
                    cols[name].append(value)
            if cols["roi_id"]:
                writer.write_table(pa.table({name: pa.array(cols[name], type=typ) for name, typ in fields},
                                            schema=schema))
                n += len(cols["roi_id"])
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def write_netcdf(paths: list[str], scan: dict[str, Any], out_path: str | os.PathLike, history: str) -> int:
    """Every item as a CF-1.8 point collection (``featureType = point``), chunk by chunk."""
    import netCDF4
    from pyproj import CRS

    n, dims, prov = scan["n_items"], scan["dims"], scan["provenance"]
    epoch = np.datetime64("1970-01-01", "D")
    with atomic_output(out_path, ".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("roi", n)
            nc.createDimension("dim", dims)
            var = {}

            def make(name, dtype, dimensions, attrs, **kw):
                var[name] = nc.createVariable(name, dtype, dimensions, **kw)
                var[name].setncatts(attrs)

            make("roi", str, ("roi",), {"long_name": "region of interest id"})
            make("lon", "f8", ("roi",), {"standard_name": "longitude", "long_name": "ROI centroid longitude",
                                          "units": "degrees_east"}, fill_value=np.nan)
            make("lat", "f8", ("roi",), {"standard_name": "latitude", "long_name": "ROI centroid latitude",
                                          "units": "degrees_north"}, fill_value=np.nan)
            for name, what in (("time_start", "start of the time window (inclusive)"),
                               ("time_end", "end of the time window (exclusive)")):
                make(name, "f8", ("roi",), {"long_name": what, "units": "days since 1970-01-01",
                                            "calendar": "proleptic_gregorian"}, fill_value=np.nan)
            make("status", str, ("roi",), {"long_name": "item status", "comment": "one of ok, partial, failed",
                                           "coordinates": "lon lat"})
            make("request", str, ("roi",), {"long_name": "the ROI's request (JSON: roi_id, spatial, temporal)",
                                            "coordinates": "lon lat"})
            make("provenance_warning", str, ("roi",),
                 {"long_name": "fields of the item's chunk provenance that differ from the global attributes",
                  "coordinates": "lon lat"})
            make("embedding", "f4", ("roi", "dim"),
                 {"long_name": f"{prov.get('model')} pooled embedding", "units": "1", "grid_mapping": "crs",
                  "coordinates": "lon lat time_start time_end"}, fill_value=np.float32(np.nan), zlib=True)
            crs_attrs = CRS("EPSG:4326").to_cf()
            crs_attrs["spatial_ref"] = crs_attrs["crs_wkt"]
            make("crs", "i4", (), crs_attrs)
            var["crs"].assignValue(0)
            k = 0
            for path in paths:
                rows = list(_rows(path, scan))
                m = len(rows)
                emb = np.full((m, dims), np.nan, np.float32)
                lon, lat, t0, t1 = (np.full(m, np.nan) for _ in range(4))
                for j, (roi_id, rec, vec, warning) in enumerate(rows):
                    if vec is not None:
                        emb[j] = vec
                    centroid = rec.get("centroid")
                    if centroid is None:
                        geom = item_geometry(rec)
                        centroid = (geom.centroid.x, geom.centroid.y) if geom is not None else (np.nan, np.nan)
                    lon[j], lat[j] = centroid
                    start, end = time_window(rec)
                    t0[j] = (np.datetime64(start, "D") - epoch).astype(float) if start else np.nan
                    t1[j] = (np.datetime64(end, "D") - epoch).astype(float) if end else np.nan
                    var["roi"][k + j] = roi_id
                    var["status"][k + j] = str(rec.get("status"))
                    var["request"][k + j] = json_attr(rec.get("request"))
                    var["provenance_warning"][k + j] = warning or ""
                if m:
                    var["embedding"][k:k + m] = emb
                    for name, values in (("lon", lon), ("lat", lat), ("time_start", t0), ("time_end", t1)):
                        var[name][k:k + m] = values
                k += m
            nc.setncatts({"Conventions": "CF-1.8", "featureType": "point",
                          "title": f"eoembed pooled embeddings of model {prov.get('model')}",
                          "source": "eoembed embed stage", "model": str(prov.get("model")),
                          "model_card": json_attr(prov.get("card")), "options": json_attr(prov.get("options") or {}),
                          "weights_sha256": json_attr(prov.get("weights_sha256") or {}),
                          "sensor": json_attr(prov.get("sensor")), "versions": json_attr(prov.get("versions") or {}),
                          "code": str(prov.get("code") or ""),
                          "provenance_disagreements": json_attr(scan["disagreements"]), "history": history})
    return n
