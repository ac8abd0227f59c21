"""The ``gee`` provider: Google Earth Engine through ``earthengine-api``.

Choice of Stack contract: Earth Engine composites server side, so the Stack this provider
returns has one time step per *frame* of ``sensor.frames`` (not per scene): each step is the
per-pixel cloud-masked median (or most-recent mosaic) of the frame's scenes, with
``qa = 4`` ("vegetation", a valid SCL class) where a valid observation exists and ``qa = 0``
("no data", invalid) where every observation was masked. Compositing that Stack again in
:mod:`eoembed.composite` is then an identity per frame. Scene ids per frame come from one
``value:compute`` request per fetch.

Pixels: ``ee.data.computePixels`` on an explicit grid (CRS code, affine transform,
dimensions) equal to the ROI :class:`~eoembed.grid.GridSpec`; ROIs wider or taller than
``tile_px`` are split on pixel edges into tiles, requested concurrently, and ROIs are fetched
``io_workers`` (default ``max_concurrency``) at a time; at most ``max_concurrency`` requests of
a provider are in flight, each retried with exponential backoff on 429/5xx (the client's own
retries are switched off so the counts are exact).

Authentication: ``service_account_key`` (a JSON key file) or Google application-default
credentials; project from config, else ``$EE_PROJECT`` / ``$GOOGLE_CLOUD_PROJECT``.
Credentials never appear in :meth:`GeeProvider.describe`, logs or errors.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import re
import threading
import time
from typing import Any, ClassVar

import numpy as np

from eoembed.collections import get_collection
from eoembed.errors import ConfigError, NoDataError, ProviderError, TransientProviderError
from eoembed.grid import GridSpec
from eoembed.items import Stack
from eoembed.providers.base import CountingMixin, Provider
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec

__all__ = ["GEE_COLLECTIONS", "GeeProvider", "tiles"]

log = logging.getLogger(__name__)
_S2_EE = {b: ("B" + b[1:].lstrip("0") if b != "B8A" else "B8A") for b in
          ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")}
#: eoembed collection -> EE collection id, band-name map, QA band (``None``: no per-pixel mask
#: in ``mask="scl"`` mode), cloud-cover property (``None``: no scene filter), Cloud Score+
#: collection, units of the values (SAR), and per-band ``listContains`` filters on a property.
GEE_COLLECTIONS: dict[str, dict[str, Any]] = {
    "sentinel-2-l2a": {
        "id": "COPERNICUS/S2_SR_HARMONIZED",  # baseline offset already removed by Google
        "bands": {b: n for b, n in _S2_EE.items() if b != "B10"},
        "qa": "SCL", "cloud": "CLOUDY_PIXEL_PERCENTAGE",
        "cloud_score_plus": "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"},
    "sentinel-2-l1c": {
        "id": "COPERNICUS/S2_HARMONIZED",  # TOA, baseline offset removed by Google
        "bands": dict(_S2_EE), "qa": None, "cloud": "CLOUDY_PIXEL_PERCENTAGE",
        "cloud_score_plus": "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"},
    "sentinel-1-grd": {
        "id": "COPERNICUS/S1_GRD",  # sigma0 in dB (10 log10), converted to linear power
        "bands": {"VV": "VV", "VH": "VH"}, "qa": None, "cloud": None, "units": "dB",
        "require": "transmitterReceiverPolarisation"},
}
NODATA = -32768.0
VALID_CODE, MASKED_CODE = 4, 0
_TRANSIENT = re.compile(r"too many|quota|rate.?limit|exhausted|unavailable|internal error|backend"
                        r"|deadline|timed? ?out|timeout|\b(429|5\d\d)\b|connection", re.IGNORECASE)
_INIT_LOCK = threading.Lock()
_INITIALISED: set[tuple] = set()


def tiles(width: int, height: int, tile_px: int) -> list[tuple[int, int, int, int]]:
    """Split a ``width x height`` grid on pixel edges into ``(row0, col0, h, w)`` tiles."""
    return [(r, c, min(tile_px, height - r), min(tile_px, width - c))
            for r in range(0, height, tile_px) for c in range(0, width, tile_px)]


class GeeProvider(CountingMixin, Provider):
    """Server-side composites from Earth Engine on the ROI grid.

    Args:
        project: Google Cloud project id (default ``$EE_PROJECT``, else ``$GOOGLE_CLOUD_PROJECT``).
        service_account_key: Path of a service-account JSON key file (default:
            application-default credentials).
        url: Earth Engine REST base URL (default Google's).
        mask: ``"scl"`` (Sentinel-2 SCL invalid classes) or ``"cloud_score_plus"``.
        cs_threshold: Lowest Cloud Score+ ``cs_cdf`` of a clear pixel.
        max_concurrency: Concurrent ``computePixels`` requests.
        tile_px: Largest tile side in pixels (48 MB request limit: 12 float32 bands x
            1024^2 px = 48 MiB, so keep <= 1024).
        retries, backoff_s: Per-request retries of 429/5xx and the first delay (doubles).
        timeout_s: Reserved for the HTTP timeout (the client's default is used).
        credentials: A ready ``google.auth`` credentials object (library use and tests only;
            never recorded).
    """

    name: ClassVar[str] = "gee"
    operational: ClassVar[tuple[str, ...]] = ("project", "service_account_key", "max_concurrency", "tile_px",
                                              "retries", "backoff_s", "timeout_s")
    composites: ClassVar[bool] = True  # frames are composited by Earth Engine

    @property
    def default_io_workers(self) -> int:
        """ROIs fetched at once (config ``provider.io_workers``): ``max_concurrency``, so small
        ROIs (one request each) also keep that many requests in flight; every request still
        waits for one of the ``max_concurrency`` slots."""
        return self.max_concurrency

    def __init__(self, project: str | None = None, service_account_key: str | None = None,
                 url: str | None = None, mask: str = "scl", cs_threshold: float = 0.6,
                 max_concurrency: int = 4, tile_px: int = 1024, retries: int = 4,
                 backoff_s: float = 1.0, timeout_s: float = 300.0, credentials: Any = None) -> None:
        if mask not in ("scl", "cloud_score_plus"):
            raise ConfigError(f"mask={mask!r} is invalid: allowed 'scl' or 'cloud_score_plus'")
        for key, value, lo in (("max_concurrency", max_concurrency, 1), ("tile_px", tile_px, 16),
                               ("retries", retries, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"{key}={value!r} is invalid: allowed an integer >= {lo}")
        if not 0 <= float(cs_threshold) <= 1:
            raise ConfigError(f"cs_threshold={cs_threshold!r} is invalid: allowed a number in [0, 1]")
        project = project or os.environ.get("EE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        super().__init__(project=project, url=url, mask=mask)
        self.project, self.url, self.mask = project, url, mask
        self.service_account_key = service_account_key
        self.cs_threshold = float(cs_threshold)
        self.max_concurrency, self.tile_px = max_concurrency, tile_px
        self.retries, self.backoff_s, self.timeout_s = retries, float(backoff_s), float(timeout_s)
        self._credentials = credentials
        self._sem = threading.Semaphore(max_concurrency)
        # HTTP requests (incl. retries), retries, bytes received, tiles, fetches
        self._init_counters("requests", "retries", "bytes", "tiles", "fetches")

    # ------------------------------------------------------------------ bookkeeping

    def describe(self) -> dict[str, Any]:
        """Settings for provenance; the auth *kind* only, never a key or token."""
        auth = ("service_account_key" if self.service_account_key else
                "credentials_object" if self._credentials is not None else "application_default")
        return {"provider": self.name, "project": self.project, "url": self.url or "default",
                "mask": self.mask, "auth": auth, "tile_px": self.tile_px,
                "max_concurrency": self.max_concurrency}


    # ------------------------------------------------------------------ client

    def _load_credentials(self):
        if self._credentials is not None:
            return self._credentials
        import ee

        scopes = list(ee.oauth.SCOPES)
        try:
            if self.service_account_key:
                from google.oauth2 import service_account

                return service_account.Credentials.from_service_account_file(
                    self.service_account_key, scopes=scopes)
            import google.auth

            creds, project = google.auth.default(scopes=scopes)
            self.project = self.project or project
            return creds
        except Exception as exc:  # noqa: BLE001 - never echo key material, only the kind/path
            raise ConfigError(f"Earth Engine credentials could not be loaded "
                              f"({'service_account_key=' + repr(self.service_account_key) if self.service_account_key else 'application-default credentials'}): "
                              f"{type(exc).__name__}") from None

    def initialise(self) -> None:
        """``ee.Initialize`` once per process for this project/URL; client retries off."""
        import ee

        creds = self._load_credentials()
        if not self.project:
            raise ConfigError("project=None is invalid for provider 'gee': set provider.project "
                              "or $EE_PROJECT / $GOOGLE_CLOUD_PROJECT")
        key = (self.project, self.url, id(creds))
        with _INIT_LOCK:
            if key in _INITIALISED:
                return
            try:
                ee.Initialize(credentials=creds, project=self.project, url=self.url)
            except Exception as exc:  # noqa: BLE001
                raise self._error("ee.Initialize", exc) from None
            ee.data.setMaxRetries(0)
            _INITIALISED.clear()
            _INITIALISED.add(key)

    @staticmethod
    def _error(what: str, exc: BaseException) -> ProviderError:
        msg = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
        return (TransientProviderError if _TRANSIENT.search(str(exc)) else ProviderError)(msg)

    def _call(self, fn, what: str):
        """One Earth Engine request under the concurrency limit, retried on 429/5xx."""
        attempt = 0
        while True:
            attempt += 1
            with self._sem:
                self._count(requests=1)
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - EEException, HttpError, socket errors
                    err = self._error(what, exc)
            if not isinstance(err, TransientProviderError) or attempt > self.retries:
                raise err
            self._count(retries=1)
            delay = self.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: transient failure; retry %d/%d in %.2fs", what, attempt, self.retries, delay)
            time.sleep(delay)

    # ------------------------------------------------------------------ expressions

    def collection(self, spatial: SpatialSpec, start, end, sensor: SensorSpec):
        """The filtered, per-pixel masked ``ee.ImageCollection`` of one frame ``[start, end)``."""
        import ee

        spec = GEE_COLLECTIONS.get(sensor.collection)
        if spec is None:
            raise ConfigError(f"collection={sensor.collection!r} is invalid for provider 'gee': "
                              f"allowed one of {sorted(GEE_COLLECTIONS)}")
        geom = ee.Geometry.Polygon([list(map(list, spatial.geometry().exterior.coords))])
        col = ee.ImageCollection(spec["id"]).filterBounds(geom).filterDate(str(start), str(end))
        if spec.get("cloud"):
            col = col.filter(ee.Filter.lte(spec["cloud"], sensor.cloudy_pct))
        names = [spec["bands"][b] for b in sensor.bands]
        for name in names if spec.get("require") else ():  # scenes that have every band
            col = col.filter(ee.Filter.listContains(spec["require"], name))
        if self.mask == "cloud_score_plus":
            if not spec.get("cloud_score_plus"):
                raise ConfigError(f"mask='cloud_score_plus' is invalid for collection "
                                  f"{sensor.collection!r}: allowed mask='scl'")
            th = self.cs_threshold
            col = col.linkCollection(ee.ImageCollection(spec["cloud_score_plus"]), ["cs_cdf"])
            return col.map(lambda img: img.updateMask(img.select("cs_cdf").gte(th))
                           .select(names, list(sensor.bands)))
        invalid = list(get_collection(sensor.collection).invalid_qa)
        qa = spec["qa"]
        if qa is None:  # no per-pixel quality band: every observation counts
            return col.map(lambda img: img.select(names, list(sensor.bands)))
        return col.map(lambda img: img.updateMask(img.select(qa).remap(invalid, [0] * len(invalid), 1))
                       .select(names, list(sensor.bands)))

    def composite(self, col, sensor: SensorSpec):
        """Median, or the most recent valid pixel (``mosaic``), as float with a no-data fill."""
        image = col.median() if sensor.composite == "median" else col.sort("system:time_start").mosaic()
        return image.toFloat().unmask(NODATA, False)

    # ------------------------------------------------------------------ fetch

    def fetch(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec,
              grid: GridSpec) -> Stack:
        """Frame composites on ``grid``: ``data (frame, band, y, x)``, ``qa`` 4 valid / 0 masked.

        Raises:
            NoDataError: no scene in any frame.
            TransientProviderError: 429/5xx/timeouts still failing after the retries.
            ProviderError: other Earth Engine errors.
        """
        import ee

        self.initialise()
        bounds = temporal.frame_bounds(sensor.frames)
        cols = [self.collection(spatial, a, b, sensor) for a, b in bounds]
        ids_expr = ee.List([c.aggregate_array("system:index") for c in cols])
        scenes = self._call(lambda: ee.data.computeValue(ids_expr), "listing scenes")
        scenes = [list(map(str, s or [])) for s in (scenes or [[] for _ in bounds])]
        if not any(scenes):
            b = spatial.geometry().bounds
            raise NoDataError(f"no Earth Engine scene for ROI lon/lat bounds ({b[0]:.5f}, {b[1]:.5f}, "
                              f"{b[2]:.5f}, {b[3]:.5f}) in [{temporal.start}, {temporal.end}) with "
                              f"cloud cover <= {sensor.cloudy_pct}")
        data = np.full((len(bounds), len(sensor.bands), grid.height, grid.width), np.nan, np.float32)
        jobs = [(f, t) for f in range(len(bounds)) if scenes[f]
                for t in tiles(grid.width, grid.height, self.tile_px)]
        images = {f: self.composite(cols[f], sensor) for f, _ in jobs}
        with cf.ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {pool.submit(self._pixels, images[f], grid, t, sensor.bands): (f, t) for f, t in jobs}
            for fut in cf.as_completed(futures):
                f, (r0, c0, h, w) = futures[fut]
                data[f, :, r0:r0 + h, c0:c0 + w] = fut.result()
        data[data == NODATA] = np.nan
        data = get_collection(sensor.collection).to_stack_units(
            data, units=GEE_COLLECTIONS[sensor.collection].get("units"))
        valid = np.isfinite(data).all(axis=1)
        qa = np.where(valid, VALID_CODE, MASKED_CODE).astype(np.uint8)
        import datetime as dt

        times = [dt.datetime.combine(a, dt.time(), tzinfo=dt.timezone.utc) for a, _ in bounds]
        self._count(fetches=1, tiles=len(jobs))
        return Stack(data=data, qa=qa, times=times, bands=tuple(sensor.bands), grid=grid,
                     collection=sensor.collection, scenes=scenes)

    def _pixels(self, image, grid: GridSpec, tile: tuple[int, int, int, int], bands) -> np.ndarray:
        """One tile: ``computePixels`` on the tile's sub-grid; returns ``(band, h, w)``."""
        import ee

        r0, c0, h, w = tile
        a, b, c, d, e, f = grid.transform
        request = {
            "expression": image,
            "fileFormat": "NUMPY_NDARRAY",
            "bandIds": list(bands),
            "grid": {"dimensions": {"width": w, "height": h},
                     "affineTransform": {"scaleX": a, "shearX": b, "translateX": c + a * c0 + b * r0,
                                         "shearY": d, "scaleY": e, "translateY": f + d * c0 + e * r0},
                     "crsCode": grid.crs}}
        arr = self._call(lambda: ee.data.computePixels(request), f"computePixels tile {tile}")
        if arr.shape != (h, w):
            raise ProviderError(f"computePixels returned shape {arr.shape}, expected {(h, w)}")
        self._count(bytes=int(arr.nbytes))
        return np.stack([np.asarray(arr[band], np.float32) for band in bands])
