"""stac-geoparquet catalogues of the ``local`` provider: search columns read column-wise, rows on demand.

A stac-geoparquet file holds one row per STAC Item (WKB ``geometry``, a ``bbox`` struct, the
properties as top-level columns, ``assets`` as a struct). :class:`ParquetEntries` gives the
catalogue index (:class:`eoembed.providers.index.CatalogIndex`) what a search needs (ids,
footprints, times, cloud cover, collections) from whole columns, and turns a row into a STAC
item dict only when a search returns it. Rows are converted by stac-geoparquet when it is
installed, else by :func:`features_of` (pyarrow).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

__all__ = ["ParquetEntries", "features_of", "parquet_features"]

_CORE_COLUMNS = {"type", "stac_version", "stac_extensions", "id", "geometry", "bbox", "links",
                 "assets", "collection"}


def _drop_nulls(value: Any) -> Any:
    """Remove ``None`` members of nested dicts (struct columns pad missing keys with nulls)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _bbox_list(bbox):
    return [bbox["xmin"], bbox["ymin"], bbox["xmax"], bbox["ymax"]] if isinstance(bbox, dict) else bbox


def _utc(value: dt.datetime) -> dt.datetime:
    """``value``, taken as UTC when it has no time zone (as STAC datetimes are)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def features_of(table) -> list[dict]:
    """STAC item dicts of the rows of a pyarrow Table in the stac-geoparquet layout."""
    try:
        from stac_geoparquet.arrow import stac_table_to_items
    except ImportError:
        stac_table_to_items = None
    if stac_table_to_items is not None:
        return [dict(item) for item in stac_table_to_items(table)]
    import shapely

    features = []
    for row in table.to_pylist():
        geometry = shapely.from_wkb(row["geometry"]) if row.get("geometry") is not None else None
        props = {}
        for key, value in row.items():
            if key in _CORE_COLUMNS or value is None:
                continue
            if isinstance(value, dt.datetime):
                value = _utc(value).isoformat()
            props[key] = _drop_nulls(value)
        features.append({
            "type": "Feature", "stac_version": row.get("stac_version") or "1.1.0",
            "stac_extensions": row.get("stac_extensions") or [], "id": row["id"],
            "geometry": shapely.geometry.mapping(geometry) if geometry is not None else None,
            "bbox": _bbox_list(row.get("bbox")), "properties": props, "links": [],
            "assets": _drop_nulls(row.get("assets") or {}), "collection": row.get("collection")})
    return features


def parquet_features(path: Path) -> list[dict]:
    """Every row of a stac-geoparquet file as a STAC item dict."""
    import pyarrow.parquet as pq

    return features_of(pq.read_table(path))


class ParquetEntries:
    """The rows of a stac-geoparquet file: search columns at once, item dicts one row at a time."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.table = pq.read_table(path)

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict:
        return features_of(self.table.slice(i, 1))[0]

    def _column(self, name: str) -> list:
        if name in self.table.column_names:
            return self.table.column(name).to_pylist()
        return [None] * len(self)

    def columns(self) -> tuple[list, list, list, list, list]:
        """``(ids, footprints, times, cloud covers, collections)``, each in row order, as the
        item dicts of :func:`features_of` would give them (times UTC-aware, None when a row has
        neither ``datetime`` nor ``start_datetime``)."""
        import shapely
        from pystac.utils import str_to_datetime

        from eoembed.providers.index import _feature_footprint

        ids = self._column("id")
        wkb = self._column("geometry")
        geometries = shapely.from_wkb(wkb) if any(g is not None for g in wkb) else [None] * len(self)
        footprints = [g if g is not None else _feature_footprint({"id": i, "bbox": _bbox_list(b)})
                      for i, g, b in zip(ids, geometries, self._column("bbox"))]
        times = []
        for when, start in zip(self._column("datetime"), self._column("start_datetime")):
            value = when if when is not None else start
            if isinstance(value, str):
                value = str_to_datetime(value)
            times.append(None if value is None else _utc(value))
        return ids, footprints, times, self._column("eo:cloud_cover"), self._column("collection")
