"""The provider interface: imagery for one ROI, time window and sensor, on the ROI grid."""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, ClassVar

from eoembed.grid import GridSpec
from eoembed.items import Stack
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec


class Provider(ABC):
    """Base class of imagery providers.

    A provider returns a :class:`~eoembed.items.Stack`: every scene that intersects the ROI
    in ``[temporal.start, temporal.end)`` with scene cloud cover <= ``sensor.cloudy_pct``,
    resampled onto ``grid``, with the collection's per-pixel quality band and scene ids.
    It raises :class:`~eoembed.errors.NoDataError` when nothing matches,
    :class:`~eoembed.errors.TransientProviderError` for failures worth retrying and
    :class:`~eoembed.errors.ProviderError` for other permanent failures.
    """

    name: ClassVar[str] = ""
    #: Options that never change the pixels returned (timeouts, concurrency, credentials'
    #: location, ...): they are no rerun trigger and no part of a stage key.
    operational: ClassVar[tuple[str, ...]] = ()
    #: True when the provider composites itself, so a fetch depends on the whole sensor
    #: (frames, compositing), not just on the bands, resolution and cloud limit.
    composites: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def fetch(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec,
              grid: GridSpec) -> Stack:
        """Return the imagery stack for one ROI."""

    def describe(self) -> dict[str, Any]:
        """Provenance of the provider (no credentials)."""
        return {"provider": self.name}

    def session(self, workers: int = 1) -> contextlib.AbstractContextManager:
        """Context in which one thread fetches many ROIs (:func:`eoembed.pipeline.fetch_items`
        enters it once per fetch thread; ``workers``: the job's I/O concurrency), e.g. GDAL
        options set once instead of per ROI. Default: the wrapped provider's (``inner``), else
        nothing."""
        inner = getattr(self, "inner", None)
        return inner.session(workers) if isinstance(inner, Provider) else contextlib.nullcontext()


class CountingMixin:
    """Thread-safe per-instance counters (requests, bytes, ...) exposed by :meth:`stats`."""

    def _init_counters(self, *names: str) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter({n: 0 for n in names})

    def stats(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counters)

    def _count(self, **inc: int) -> None:
        with self._lock:
            for k, v in inc.items():
                self.counters[k] += v
