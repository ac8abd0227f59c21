"""Frozen, validated request specs and their stable keys.

Every spec validates all of its fields on construction and raises :class:`SpecError`
(a subclass of :class:`EoembedError`) naming the field, the value and what is allowed.
Every spec has :meth:`key`: the first 16 hex digits of the sha256 of its canonical JSON,
identical across processes, machines and Python versions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Union

from eoembed.collections import get_collection
from eoembed.errors import SpecError

__all__ = [
    "BBox", "OutputSpec", "PointBuffer", "Polygon", "SensorSpec", "SpatialSpec",
    "TemporalSpec", "canonical_json", "stable_key", "spatial_from_dict",
]

KEY_LENGTH = 16


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` to canonical JSON (sorted keys, no spaces, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def stable_key(obj: Any) -> str:
    """Return the 16-hex-digit sha256 prefix of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:KEY_LENGTH]


def _number(spec: str, name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """Validate a finite number in ``[lo, hi]`` (or ``(lo, hi]``) and return it as float."""
    bracket = "(" if lo_open else "["
    allowed = f"a finite number in {bracket}{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(name, value, allowed, spec)
    value = float(value)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        raise SpecError(name, value, allowed, spec)
    return value


class _Spec:
    """Mixin: dict form, canonical JSON and stable key for frozen dataclass specs."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict including the spec ``kind``."""
        out = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, (dt.date,)):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = json.loads(json.dumps(value))
            out[f.name] = value
        return out

    def key(self) -> str:
        """Stable 16-hex-digit key of this spec (same in every process)."""
        return stable_key(self.to_dict())


# ---------------------------------------------------------------- spatial


@dataclass(frozen=True)
class PointBuffer(_Spec):
    """A square of half-side ``buffer_m`` metres around a point, in the local UTM zone.

    Args:
        lon: Longitude in degrees, [-180, 180].
        lat: Latitude in degrees, [-80, 84] (the UTM range).
        buffer_m: Half side of the square in metres, (0, 100000].
    """

    lon: float
    lat: float
    buffer_m: float
    kind: ClassVar[str] = "point_buffer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lon", _number("PointBuffer", "lon", self.lon, -180, 180))
        object.__setattr__(self, "lat", _number("PointBuffer", "lat", self.lat, -80, 84))
        object.__setattr__(self, "buffer_m",
                           _number("PointBuffer", "buffer_m", self.buffer_m, 0, 100_000, lo_open=True))

    def centroid(self) -> tuple[float, float]:
        """Return ``(lon, lat)`` of the centre."""
        return self.lon, self.lat

    def geometry(self):
        """Return the ROI as a shapely polygon in EPSG:4326 (the UTM square, reprojected)."""
        from eoembed.grid import square_lonlat

        return square_lonlat(self.lon, self.lat, self.buffer_m)


@dataclass(frozen=True)
class BBox(_Spec):
    """A longitude/latitude bounding box in EPSG:4326.

    Args:
        minlon, minlat, maxlon, maxlat: Degrees; ``min < max`` on both axes.
    """

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float
    kind: ClassVar[str] = "bbox"

    def __post_init__(self) -> None:
        for name in ("minlon", "maxlon"):
            object.__setattr__(self, name, _number("BBox", name, getattr(self, name), -180, 180))
        for name in ("minlat", "maxlat"):
            object.__setattr__(self, name, _number("BBox", name, getattr(self, name), -80, 84))
        if self.maxlon <= self.minlon:
            raise SpecError("maxlon", self.maxlon, f"a value greater than minlon={self.minlon}", "BBox")
        if self.maxlat <= self.minlat:
            raise SpecError("maxlat", self.maxlat, f"a value greater than minlat={self.minlat}", "BBox")
        if self.maxlon - self.minlon > 6 or self.maxlat - self.minlat > 6:
            raise SpecError("maxlon/maxlat", (self.maxlon, self.maxlat),
                            "a box at most 6 degrees wide and tall (one UTM zone); split larger areas",
                            "BBox")

    def centroid(self) -> tuple[float, float]:
        return (self.minlon + self.maxlon) / 2, (self.minlat + self.maxlat) / 2

    def geometry(self):
        from shapely.geometry import box

        return box(self.minlon, self.minlat, self.maxlon, self.maxlat)


@dataclass(frozen=True)
class Polygon(_Spec):
    """A simple polygon given by its exterior ring of ``(lon, lat)`` vertices in EPSG:4326.

    Args:
        exterior: At least three distinct vertices; the ring is closed automatically.
    """

    exterior: tuple[tuple[float, float], ...]
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        try:
            ring = tuple((float(x), float(y)) for x, y in self.exterior)
        except (TypeError, ValueError):
            raise SpecError("exterior", self.exterior, "a sequence of (lon, lat) pairs", "Polygon") from None
        if ring and ring[0] == ring[-1]:
            ring = ring[:-1]
        if len(set(ring)) < 3:
            raise SpecError("exterior", self.exterior, "at least 3 distinct vertices", "Polygon")
        for lon, lat in ring:
            _number("Polygon", "exterior.lon", lon, -180, 180)
            _number("Polygon", "exterior.lat", lat, -80, 84)
        object.__setattr__(self, "exterior", ring)
        geom = self.geometry()
        if not geom.is_valid or geom.area == 0:
            raise SpecError("exterior", ring, "a valid, non-self-intersecting ring with area > 0", "Polygon")

    def centroid(self) -> tuple[float, float]:
        c = self.geometry().centroid
        return c.x, c.y

    def geometry(self):
        from shapely.geometry import Polygon as ShapelyPolygon

        return ShapelyPolygon(self.exterior)


SpatialSpec = Union[PointBuffer, BBox, Polygon]


def spatial_from_dict(d: dict[str, Any]) -> SpatialSpec:
    """Rebuild a spatial spec from :meth:`to_dict` output."""
    d = dict(d)
    kind = d.pop("kind", None)
    cls = {c.kind: c for c in (PointBuffer, BBox, Polygon)}.get(kind)
    if cls is None:
        raise SpecError("kind", kind, "one of 'point_buffer', 'bbox', 'polygon'", "SpatialSpec")
    if cls is Polygon:
        d["exterior"] = tuple(tuple(p) for p in d["exterior"])
    return cls(**d)


# ---------------------------------------------------------------- temporal


def _as_date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SpecError(name, value, "a date as YYYY-MM-DD", "TemporalSpec")


@dataclass(frozen=True)
class TemporalSpec(_Spec):
    """A half-open date window ``[start, end)``.

    Build with :meth:`year` or :meth:`range`.
    """

    start: dt.date
    end: dt.date
    kind: ClassVar[str] = "temporal"

    MIN_DATE: ClassVar[dt.date] = dt.date(1972, 1, 1)
    MAX_DATE: ClassVar[dt.date] = dt.date(2100, 1, 1)

    def __post_init__(self) -> None:
        start, end = _as_date("start", self.start), _as_date("end", self.end)
        for name, value in (("start", start), ("end", end)):
            if not self.MIN_DATE <= value <= self.MAX_DATE:
                raise SpecError(name, value.isoformat(),
                                f"a date in [{self.MIN_DATE}, {self.MAX_DATE}]", "TemporalSpec")
        if end <= start:
            raise SpecError("end", end.isoformat(),
                            f"a date after start={start.isoformat()} (the window is [start, end), "
                            "so end == start is empty)", "TemporalSpec")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def year(cls, year: int) -> "TemporalSpec":
        """The calendar year ``[year-01-01, year+1-01-01)``."""
        if isinstance(year, bool) or not isinstance(year, int) or not 1972 <= year <= 2099:
            raise SpecError("year", year, "an integer year in [1972, 2099]", "TemporalSpec")
        return cls(dt.date(year, 1, 1), dt.date(year + 1, 1, 1))

    @classmethod
    def range(cls, start: str | dt.date, end: str | dt.date) -> "TemporalSpec":
        """The half-open window ``[start, end)``."""
        return cls(_as_date("start", start), _as_date("end", end))

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def frame_bounds(self, frames: int) -> list[tuple[dt.date, dt.date]]:
        """Split the window into ``frames`` equal, contiguous, half-open bins (by days)."""
        total = self.days
        if frames > total:
            raise SpecError("frames", frames, f"at most the window length in days ({total})", "SensorSpec")
        edges = [self.start + dt.timedelta(days=round(i * total / frames)) for i in range(frames + 1)]
        return list(zip(edges[:-1], edges[1:]))


# ---------------------------------------------------------------- output


@dataclass(frozen=True)
class OutputSpec(_Spec):
    """What shape of embedding to return.

    ``pooled``: one vector per ROI, pooled with ``pooling`` (``"mean"`` or ``"max"``).
    ``grid``: a ``(dim, y, x)`` grid; ``cell_m`` sets the cell size in metres (``None`` = the
    model's native grid).
    """

    mode: str = "pooled"
    pooling: str = "mean"
    cell_m: float | None = None
    kind: ClassVar[str] = "output"

    def __post_init__(self) -> None:
        if self.mode not in ("pooled", "grid"):
            raise SpecError("mode", self.mode, "'pooled' or 'grid'", "OutputSpec")
        if self.pooling not in ("mean", "max"):
            raise SpecError("pooling", self.pooling, "'mean' or 'max'", "OutputSpec")
        if self.cell_m is not None:
            object.__setattr__(self, "cell_m",
                               _number("OutputSpec", "cell_m", self.cell_m, 0, 100_000, lo_open=True))

    @classmethod
    def pooled(cls, pooling: str = "mean") -> "OutputSpec":
        return cls("pooled", pooling, None)

    @classmethod
    def grid(cls, cell_m: float | None = None) -> "OutputSpec":
        return cls("grid", "mean", cell_m)


# ---------------------------------------------------------------- sensor


@dataclass(frozen=True)
class SensorSpec(_Spec):
    """What imagery to fetch and how to composite it.

    Args:
        collection: A known collection id (see :mod:`eoembed.collections`).
        bands: Non-empty tuple of distinct band names of that collection.
        scale_m: Output pixel size in metres, (0, 1000].
        cloudy_pct: Maximum scene cloud cover in percent, [0, 100].
        fill_value: Value written where no valid observation exists (finite).
        composite: ``"median"`` or ``"mosaic"`` (most recent valid observation).
        frames: Number of equal time bins, [1, 366]; 1 = a single composite.
    """

    collection: str = "sentinel-2-l2a"
    bands: tuple[str, ...] = ()
    scale_m: float = 10.0
    cloudy_pct: float = 100.0
    fill_value: float = 0.0
    composite: str = "median"
    frames: int = 1
    kind: ClassVar[str] = "sensor"

    def __post_init__(self) -> None:
        coll = get_collection(self.collection)
        bands = self.bands
        if isinstance(bands, str) or not isinstance(bands, (tuple, list)) or not bands:
            raise SpecError("bands", bands, f"a non-empty list drawn from {list(coll.bands)}", "SensorSpec")
        bands = tuple(bands)
        unknown = [b for b in bands if b not in coll.bands]
        if unknown:
            raise SpecError("bands", list(bands),
                            f"names from {list(coll.bands)} (unknown: {unknown})", "SensorSpec")
        if len(set(bands)) != len(bands):
            raise SpecError("bands", list(bands), "distinct band names", "SensorSpec")
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "scale_m",
                           _number("SensorSpec", "scale_m", self.scale_m, 0, 1000, lo_open=True))
        object.__setattr__(self, "cloudy_pct",
                           _number("SensorSpec", "cloudy_pct", self.cloudy_pct, 0, 100))
        if not coll.has_cloud_cover and self.cloudy_pct < 100:
            raise SpecError("cloudy_pct", self.cloudy_pct,
                            f"100 for collection {coll.id!r} (its scenes have no cloud cover)", "SensorSpec")
        object.__setattr__(self, "fill_value",
                           _number("SensorSpec", "fill_value", self.fill_value, -1e30, 1e30))
        if self.composite not in ("median", "mosaic"):
            raise SpecError("composite", self.composite, "'median' or 'mosaic'", "SensorSpec")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 1 <= self.frames <= 366:
            raise SpecError("frames", self.frames, "an integer in [1, 366]", "SensorSpec")

    def fetch_dict(self) -> dict[str, Any]:
        """The fields that decide what is downloaded (not how it is composited)."""
        return {"kind": "fetch", "collection": self.collection, "bands": list(self.bands),
                "scale_m": self.scale_m, "cloudy_pct": self.cloudy_pct}

    def fetch_key(self) -> str:
        """Stable key of the download: sensors differing only in compositing share it."""
        return stable_key(self.fetch_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SensorSpec":
        d = {k: v for k, v in d.items() if k != "kind"}
        if "bands" in d and isinstance(d["bands"], list):
            d["bands"] = tuple(d["bands"])
        return cls(**d)
