"""The GeoParquet tile index of the AlphaEarth (AEF) COG mirror: read it (locally or by HTTP Range
requests, only the needed columns) and resolve each row's COG path.

See :mod:`eoembed.products.gse` for how ``gse`` uses it and docs/products.md for the columns.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import shapely

from eoembed.errors import ConfigError, ProviderError, TransientProviderError

__all__ = ["AEF_INDEX_URL", "BOUNDS_COLUMNS", "HREF_REWRITES", "TileIndex", "check_tile_index", "is_parquet",
           "is_url", "read_tile_index", "resolve_href"]

#: The tile index of the public mirror on Source Cooperative.
AEF_INDEX_URL = "https://data.source.coop/tge-labs/aef/v1/annual/aef_index.parquet"
#: Path prefixes of the mirror's index rewritten to public HTTPS URLs.
HREF_REWRITES = (("s3://us-west-2.opendata.source.coop/", "https://data.source.coop/"),)
#: Default index columns of the lon/lat footprint bounds (west, south, east, north).
BOUNDS_COLUMNS = ("wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")


def is_url(s: str) -> bool:
    return "://" in s


def _is_http(s: str) -> bool:
    return urlsplit(s).scheme in ("http", "https")


def is_parquet(s: str) -> bool:
    return urlsplit(s).path.lower().endswith((".parquet", ".geoparquet"))


def resolve_href(path: str, index: str, root: str | None = None) -> str:
    """Where to open the COG an index row names.

    Args:
        path: The row's path (absolute URL, absolute local path, or relative path).
        index: Location of the index (URL or local path); relative paths are resolved against it.
        root: Root of a ``<year>/<zone>/<tile>.tiff`` layout (URL or local directory); with it,
            absolute paths keep only their last three components and everything is read under it.
    """
    absolute = is_url(path) or path.startswith("/")
    if root is not None:
        rel = "/".join(path.rstrip("/").split("/")[-3:]) if absolute else path.removeprefix("./")
        return f"{root.rstrip('/')}/{rel}" if is_url(root) else str(Path(root) / rel)
    if absolute:
        for prefix, public in HREF_REWRITES:
            if path.startswith(prefix):
                return public + path[len(prefix):]
        return path
    return urljoin(index, path) if is_url(index) else str(Path(index).parent / path)


class _HttpRangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP Range requests (pyarrow reads only what it needs)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        super().__init__()
        self.url, self.timeout, self.pos = url, timeout, 0
        with self._get(0, 0) as resp:
            total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
            self.size = int(total) if total.isdigit() else int(resp.headers.get("Content-Length") or 0)

    def _get(self, start: int, end: int):
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}"})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as exc:
            cls = TransientProviderError if exc.code == 429 or exc.code >= 500 else ProviderError
            raise cls(f"tile index {self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            raise TransientProviderError(f"tile index {self.url}: {exc}") from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        with self._get(self.pos, self.pos + n - 1) as resp:
            data = resp.read()
        if resp.status == 200:  # server ignored the Range header: cut the window out
            data = data[self.pos:self.pos + n]
        buf[:len(data)] = data
        self.pos += len(data)
        return len(data)


def _parquet(index: str):
    import pyarrow.parquet as pq

    try:
        if _is_http(index):
            return pq.ParquetFile(_HttpRangeFile(index))
        return pq.ParquetFile(index)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise ProviderError(f"cannot read tile index {index}: {exc}") from None


def _as_year(value: Any) -> int | None:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.year
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value) if value is not None else ""
    return int(text[:4]) if text[:4].isdigit() else None


@dataclass(frozen=True)
class TileIndex:
    """The rows of a tile index for one year.

    Attributes:
        paths: Each row's COG path as stored.
        footprints: Each row's footprint in lon/lat (shapely geometries).
        years: Every year present in the index.
    """

    paths: np.ndarray
    footprints: np.ndarray
    years: tuple[int, ...]


def _bounds_footprints(w, s, e, n) -> np.ndarray:
    """Lon/lat boxes; a box whose west edge lies east of its east edge crosses the antimeridian."""
    w, s, e, n = (np.asarray(v, dtype=float) for v in (w, s, e, n))
    boxes = shapely.box(w, s, e, n)
    for i in np.flatnonzero(w > e):
        boxes[i] = shapely.MultiPolygon([shapely.box(w[i], s[i], 180, n[i]),
                                         shapely.box(-180, s[i], e[i], n[i])])
    return boxes


def _geometry_footprints(table, column: str, geo_meta: dict) -> np.ndarray:
    """Footprints from a WKB GeoParquet geometry column, reprojected to lon/lat."""
    from pyproj import CRS, Transformer

    geoms = shapely.from_wkb(np.asarray(table.column(column).to_pylist(), dtype=object))
    crs_json = geo_meta.get("columns", {}).get(column, {}).get("crs", "OGC:CRS84")
    crs = CRS.from_user_input(crs_json) if crs_json is not None else CRS.from_user_input("OGC:CRS84")
    if crs.equals(CRS.from_user_input("OGC:CRS84")):
        return geoms
    tr = Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _check_columns(pf, index: str, path_column: str, year_column: str, bounds_columns: tuple[str, ...],
                   geometry_column: str) -> bool:
    """Raise :class:`ConfigError` unless the needed columns exist; True if the bounds columns do."""
    names = pf.schema_arrow.names
    use_bounds = all(c in names for c in bounds_columns)
    footprint = list(bounds_columns) if use_bounds else [geometry_column]
    missing = [c for c in (path_column, year_column, *footprint) if c not in names]
    if missing:
        raise ConfigError(f"tile index {index}: column(s) {missing} missing (footprint: the columns "
                          f"{list(bounds_columns)} or the geometry column {geometry_column!r}); "
                          f"present: {names}; allowed: set options index_path_column, index_year_column, "
                          f"index_bounds_columns, index_geometry_column")
    return use_bounds


@lru_cache(maxsize=32)
def check_tile_index(index: str, path_column: str = "path", year_column: str = "year",
                     bounds_columns: tuple[str, ...] = BOUNDS_COLUMNS, geometry_column: str = "geom") -> None:
    """Read the index's schema (its footer only) and check the needed columns exist."""
    _check_columns(_parquet(index), index, path_column, year_column, bounds_columns, geometry_column)


@lru_cache(maxsize=32)
def read_tile_index(index: str, year: int, path_column: str = "path", year_column: str = "year",
                    bounds_columns: tuple[str, ...] = BOUNDS_COLUMNS,
                    geometry_column: str = "geom") -> TileIndex:
    """The rows of ``year`` of a tile index (GeoParquet; local path or http(s) URL), read once.

    Only the needed columns are read (over HTTP: by Range requests), row group by row group; row
    groups without the year are skipped after reading their year column.

    Raises:
        ConfigError: A needed column is missing (the message lists the columns present).
        ProviderError: The index cannot be read.
    """
    pf = _parquet(index)
    use_bounds = _check_columns(pf, index, path_column, year_column, bounds_columns, geometry_column)
    shape_cols = list(bounds_columns) if use_bounds else [geometry_column]
    geo_meta = json.loads((pf.schema_arrow.metadata or {}).get(b"geo", b"{}"))
    paths, shapes, years = [], [], set()
    for i in range(pf.num_row_groups):
        row_years = [_as_year(v) for v in pf.read_row_group(i, columns=[year_column]).column(0).to_pylist()]
        years.update(y for y in row_years if y is not None)
        keep = np.asarray([y == year for y in row_years], dtype=bool)
        if not keep.any():
            continue
        table = pf.read_row_group(i, columns=[path_column, *shape_cols]).filter(keep)
        paths.extend(str(p) for p in table.column(path_column).to_pylist())
        if use_bounds:
            shapes.append(_bounds_footprints(*(table.column(c).to_numpy(zero_copy_only=False)
                                               for c in bounds_columns)))
        else:
            shapes.append(_geometry_footprints(table, geometry_column, geo_meta))
    footprints = np.concatenate(shapes) if shapes else np.empty(0, dtype=object)
    return TileIndex(np.asarray(paths, dtype=object), footprints, tuple(sorted(years)))
