"""The ``local`` provider's catalogue file: read, indexed with an STRtree, searched.

A catalogue is parsed lazily: :class:`CatalogIndex` keeps each item's footprint, time, cloud
cover and collection (all a search needs) and turns a feature into a pystac Item, with
absolute asset hrefs, only when a search first returns it. A fetch job whose ROIs touch a few
items of a large catalogue no longer builds every Item (the first search on 20,000 entries:
12.5 -> 3.9 s as JSON, 16.2 -> 0.7 s as stac-geoparquet, ``benchmarks/catalog_index.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from urllib.parse import urlparse

from eoembed.errors import ProviderError
from eoembed.providers.catalog_parquet import ParquetEntries, _utc, parquet_features

__all__ = ["CatalogIndex", "cached_index", "read_catalog", "read_features", "stac_item"]


def _is_remote(href: str) -> bool:
    scheme = urlparse(href).scheme
    return len(scheme) > 1 and scheme != "file"  # one letter = a Windows drive


def _resolve_href(href: str, base: Path) -> str:
    """Absolute form of an asset href: relative paths are taken from the catalogue's folder."""
    if _is_remote(href):
        return href
    if href.startswith("file://"):
        return urlparse(href).path
    path = Path(href)
    return str(path if path.is_absolute() else (base / path).resolve())


def _unreadable(path: Path, exc: Exception) -> ProviderError:
    return ProviderError(f"catalog {str(path)!r} is not a readable STAC ItemCollection or "
                         f"stac-geoparquet file: {type(exc).__name__}: {exc}")


def read_features(catalog: str | Path) -> list[dict]:
    """The STAC item dicts of a catalogue file (ItemCollection JSON, one Feature, or
    stac-geoparquet), unparsed.

    Raises:
        ProviderError: if the file is missing or not readable as either format.
    """
    path = Path(catalog)
    if not path.is_file():
        raise ProviderError(f"catalog {str(path)!r} not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return parquet_features(path)
        doc = json.loads(path.read_text())
        if doc.get("type") == "Feature":
            return [doc]
        features = doc["features"]
        if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
            raise TypeError("'features' is not a list of objects")
        return features
    except Exception as exc:  # json/parquet problems are all "unreadable"
        raise _unreadable(path, exc) from exc


def stac_item(feature: dict, base: Path, resolved: dict[str, str] | None = None):
    """A pystac Item of ``feature`` (consumed: parsed without a copy) with asset hrefs made
    absolute against the catalogue folder ``base``; ``resolved`` (href -> absolute form) is
    consulted and filled, so the bands of one multi-band file are resolved once."""
    import pystac

    # pystac's version migration deep-copies the dict; the geometry is most of it (a chip's
    # outline: dozens of vertices) and no migration touches it, so it skips the copy
    geometry, feature["geometry"] = feature.get("geometry"), None
    item = pystac.Item.from_dict(feature, preserve_dict=False)
    item.geometry = geometry
    resolved = {} if resolved is None else resolved
    for asset in item.assets.values():
        href = asset.href
        if href not in resolved:
            resolved[href] = _resolve_href(href, base)
        asset.href = resolved[href]
    return item


def read_catalog(catalog: str | Path) -> list:
    """Every item of a catalogue file as a pystac Item with absolute asset hrefs.

    Raises:
        ProviderError: if the file is missing or not a readable STAC ItemCollection /
            stac-geoparquet file.
    """
    path = Path(catalog)
    features = read_features(path)
    resolved: dict[str, str] = {}
    try:
        return [stac_item(f, path.parent, resolved) for f in features]
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _item_time(item) -> dt.datetime:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ProviderError(f"item {item.id!r} has no datetime")
    return _utc(when)


def _footprint(item):
    """The lon/lat footprint of a pystac Item: its geometry, else its bbox."""
    return _feature_footprint({"id": item.id, "geometry": item.geometry, "bbox": item.bbox})


def _feature_footprint(feature: dict):
    from shapely.geometry import box, shape

    if feature.get("geometry"):
        return shape(feature["geometry"])
    b = feature.get("bbox")
    if b:
        return box(*b) if len(b) == 4 else box(b[0], b[1], b[3], b[4])
    raise ProviderError(f"item {feature.get('id')!r} has neither geometry nor bbox")


def _feature_time(props: dict) -> dt.datetime | None:
    """What :func:`_item_time` gives for the Item of these properties (pystac's parser), or
    None when it has no ``datetime`` / ``start_datetime``."""
    from pystac.utils import str_to_datetime

    when = props.get("datetime") or props.get("start_datetime")
    if when is None:
        return None
    return _utc(str_to_datetime(when))


def _dict_columns(features: list[dict]) -> tuple[list, list, list, list, list]:
    """``(ids, footprints, times, cloud covers, collections)`` of STAC item dicts."""
    props = [f.get("properties") or {} for f in features]
    return ([f.get("id") for f in features], [_feature_footprint(f) for f in features],
            [_feature_time(p) for p in props], [p.get("eo:cloud_cover") for p in props],
            [f.get("collection") for f in features])


_INDEXES: dict[tuple, "CatalogIndex"] = {}
_INDEXES_LOCK = threading.Lock()


def cached_index(catalog: str | Path) -> "CatalogIndex":
    """The :class:`CatalogIndex` of a catalogue file, kept for the last 4 files keyed by path,
    size and mtime: repeated API calls on one catalogue neither re-read nor re-index it (its
    Items are only read by the providers, never changed)."""
    path = Path(catalog)
    try:
        st = path.stat()
    except OSError:
        return CatalogIndex(read_features(path), path.parent)  # raises the not-found error
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _INDEXES_LOCK:
        if key not in _INDEXES:
            if len(_INDEXES) >= 4:
                _INDEXES.pop(next(iter(_INDEXES)))
            _INDEXES[key] = CatalogIndex(_entries(path), path.parent, name=str(path))
        return _INDEXES[key]


def _entries(path: Path):
    """The entries of a catalogue file: a stac-geoparquet file's rows (read column-wise, a row
    made an item dict when needed), else the item dicts of :func:`read_features`."""
    if path.suffix.lower() not in (".parquet", ".geoparquet"):
        return read_features(path)
    try:
        return ParquetEntries(path)
    except Exception as exc:
        raise _unreadable(path, exc) from exc


class CatalogIndex:
    """The items of a catalogue with an STRtree over their lon/lat footprints.

    Footprints, times, cloud cover and collections are read once (from the item dicts, or from
    whole columns of a stac-geoparquet file); :meth:`query` asks the tree for the footprints
    whose envelopes meet the ROI, then applies the exact tests of a linear scan. Items are built
    on first use (:meth:`item`).

    Args:
        entries: STAC item dicts (consumed when their Item is built), or
            :class:`~eoembed.providers.catalog_parquet.ParquetEntries`.
        base: The folder relative asset hrefs are taken from.
        name: The catalogue named in errors.
    """

    def __init__(self, entries, base: Path, name: str = "catalog") -> None:
        from shapely import STRtree

        self.base, self.name = Path(base), name
        self._entries = list(entries) if isinstance(entries, (list, tuple)) else entries
        self._hrefs: dict[str, str] = {}  # asset href -> absolute form
        self._lock = threading.Lock()
        try:
            columns = entries.columns() if hasattr(entries, "columns") else _dict_columns(self._entries)
        except ProviderError:
            raise
        except Exception as exc:  # a malformed geometry, datetime or properties
            raise _unreadable(Path(name), exc) from exc
        self.ids, self.footprints, self.times, self.clouds, self.collections = columns
        self._items: list = [None] * len(self.ids)
        self.tree = STRtree(self.footprints)

    def __len__(self) -> int:
        return len(self._items)

    def item(self, i: int):
        """The pystac Item of feature ``i``, built once."""
        with self._lock:
            if self._items[i] is None:
                try:
                    self._items[i] = stac_item(self._entries[i], self.base, self._hrefs)
                except Exception as exc:
                    raise ProviderError(f"item {self.ids[i]!r} of catalog {self.name!r} is not a "
                                        f"readable STAC Item: {type(exc).__name__}: {exc}") from exc
                if isinstance(self._entries, list):
                    self._entries[i] = None  # parsed without a copy: the dict now belongs to the Item
            return self._items[i]

    @property
    def items(self) -> list:
        """Every item, in catalogue order (builds all of them)."""
        return [self.item(i) for i in range(len(self))]

    def query(self, roi, start: dt.datetime, end: dt.datetime, collection: str,
              cloudy_pct: float) -> list:
        """Items (catalogue order) of ``collection`` (or none) in ``[start, end)`` whose
        footprint intersects ``roi`` with cloud cover <= ``cloudy_pct``."""
        out = []
        for i in sorted(int(i) for i in self.tree.query(roi, predicate="intersects")):
            if self.collections[i] not in (None, collection):
                continue
            when = self.times[i]
            if when is None:
                raise ProviderError(f"item {self.ids[i]!r} has no datetime")
            if not start <= when < end:
                continue
            cloud = self.clouds[i]
            if cloudy_pct < 100 if cloud is None else float(cloud) > cloudy_pct:
                continue
            out.append(self.item(i))
        return out
