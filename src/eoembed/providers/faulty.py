"""A provider wrapper that injects failures: for fault drills and the test suite.

Wraps a real provider (``inner``: its config dict) and makes

* a seeded fraction ``transient_fraction`` of ROIs fail their first ``transient_failures``
  fetch calls with :class:`TransientProviderError` (the calls after that go through), and
* the ROIs in ``permanent`` (spatial spec keys, see :meth:`PointBuffer.key`) fail every call
  with :class:`ProviderError`.

Which ROIs fail is a pure function of the seed and the ROI's spatial key, so a drill is
repeatable. Calls are counted per process (a fetch job retries within its process).

Example config::

    provider: {name: faulty, inner: {name: local, catalog: ...}, transient_fraction: 0.3,
               transient_failures: 2, permanent: [<spatial key>], retries: 3}
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, ClassVar

from eoembed.errors import ConfigError, ProviderError, TransientProviderError
from eoembed.grid import GridSpec
from eoembed.items import Stack
from eoembed.providers.base import Provider
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec


class FaultyProvider(Provider):
    """Inject transient and permanent failures around another provider."""

    name: ClassVar[str] = "faulty"

    def __init__(self, inner: dict[str, Any], transient_fraction: float = 0.0, transient_failures: int = 1,
                 permanent: list[str] | tuple[str, ...] = (), seed: int = 0) -> None:
        from eoembed.providers import get_provider

        if not 0 <= float(transient_fraction) <= 1:
            raise ConfigError(f"provider.transient_fraction={transient_fraction!r} is invalid: allowed [0, 1]")
        if int(transient_failures) < 0:
            raise ConfigError(f"provider.transient_failures={transient_failures!r} is invalid: allowed >= 0")
        opts = dict(inner)
        self.inner = get_provider(opts.pop("name"), **opts)
        self.transient_fraction = float(transient_fraction)
        self.transient_failures = int(transient_failures)
        self.permanent = frozenset(permanent)
        self.seed = int(seed)
        self.calls: Counter[str] = Counter()
        super().__init__(inner=inner, transient_fraction=transient_fraction,
                         transient_failures=transient_failures, permanent=list(permanent), seed=seed)

    def flaky(self, key: str) -> bool:
        """Whether the ROI with spatial key ``key`` fails transiently (seeded, deterministic)."""
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.transient_fraction

    def fetch(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec, grid: GridSpec) -> Stack:
        key = spatial.key()
        self.calls[key] += 1
        if key in self.permanent:
            raise ProviderError(f"injected permanent failure for ROI {key}")
        if self.flaky(key) and self.calls[key] <= self.transient_failures:
            raise TransientProviderError(f"injected transient failure {self.calls[key]}/{self.transient_failures} "
                                         f"for ROI {key} (HTTP 503)")
        return self.inner.fetch(spatial, temporal, sensor, grid)

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "inner": self.inner.describe(), "transient_fraction": self.transient_fraction,
                "transient_failures": self.transient_failures, "permanent": sorted(self.permanent), "seed": self.seed}
