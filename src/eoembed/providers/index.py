"""The ``local`` provider's catalogue in memory: parsed once, searched through an STRtree."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

__all__ = ["CatalogIndex", "cached_catalog", "cached_index"]


_CATALOGS: dict[tuple, list] = {}
_CATALOGS_LOCK = threading.Lock()


def cached_catalog(catalog: str | Path) -> list:
    """:func:`~eoembed.providers.local.read_catalog`, kept for the last 4 files keyed by path, size and mtime (the items
    are only read by the providers, never changed)."""
    from eoembed.providers.local import read_catalog

    path = Path(catalog)
    try:
        st = path.stat()
    except OSError:
        return read_catalog(catalog)  # raises the not-found error
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _CATALOGS_LOCK:
        if key not in _CATALOGS:
            if len(_CATALOGS) >= 4:
                old = next(iter(_CATALOGS))
                _CATALOGS.pop(old)
                _INDEXES.pop(old, None)
            _CATALOGS[key] = read_catalog(catalog)
        return _CATALOGS[key]


_INDEXES: dict[tuple, "CatalogIndex"] = {}


def cached_index(catalog: str | Path, items: list) -> "CatalogIndex":
    """The :class:`CatalogIndex` of ``items`` (what :func:`cached_catalog` returned for
    ``catalog``), built once and kept with them: repeated API calls on one catalogue do not
    rebuild the STRtree. Items of another origin get a fresh index."""
    path = Path(catalog)
    try:
        st = path.stat()
    except OSError:
        return CatalogIndex(items)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _CATALOGS_LOCK:
        if _CATALOGS.get(key) is not items:
            return CatalogIndex(items)
        if key not in _INDEXES:
            _INDEXES[key] = CatalogIndex(items)
        return _INDEXES[key]


class CatalogIndex:
    """Items of a catalogue with an STRtree over their lon/lat footprints.

    Times, cloud cover and footprints are parsed once; :meth:`query` asks the tree for the
    footprints whose envelopes meet the ROI, then applies the exact tests of a linear scan.
    """

    def __init__(self, items: list) -> None:
        from shapely import STRtree

        from eoembed.providers.local import _footprint, _item_time

        self.items = list(items)
        self.footprints = [_footprint(it) for it in self.items]
        self.times = [_item_time(it) if (it.datetime or it.common_metadata.start_datetime) else None
                      for it in self.items]
        self.clouds = [it.properties.get("eo:cloud_cover") for it in self.items]
        self.tree = STRtree(self.footprints)

    def query(self, roi, start: dt.datetime, end: dt.datetime, collection: str,
              cloudy_pct: float) -> list:
        """Items (catalogue order) of ``collection`` (or none) in ``[start, end)`` whose
        footprint intersects ``roi`` with cloud cover <= ``cloudy_pct``."""
        from eoembed.providers.local import _item_time

        out = []
        for i in sorted(int(i) for i in self.tree.query(roi, predicate="intersects")):
            item, cloud = self.items[i], self.clouds[i]
            if item.collection_id not in (None, collection):
                continue
            if not start <= (self.times[i] or _item_time(item)) < end:  # raises: no datetime
                continue
            if cloudy_pct < 100 if cloud is None else float(cloud) > cloudy_pct:
                continue
            out.append(item)
        return out
