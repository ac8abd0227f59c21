"""The ``stac`` provider: search a STAC API with pystac-client, read COGs directly.

Search: the ROI's lon/lat bounding box, the window ``[start, end)`` (STAC datetime ranges are
inclusive, so the end sent is ``end - 1 microsecond``; items are re-checked client-side),
the catalogue's collection id, and the scene cloud limit: sent as a ``query`` when the
server conforms to STAC API - Query, as CQL2 ``filter`` when it conforms to Filter, and
applied client-side in every case (some servers, e.g. ``rustac serve`` with its memory
backend, silently return nothing for such filters). Footprints are checked against the exact
ROI geometry client-side.

Read: assets are renamed from the catalogue's keys to eoembed band names (see
:mod:`eoembed.providers.presets`), signed with ``planetary_computer.sign_inplace`` when the
preset or config asks for it, and loaded with the same reader as the ``local`` provider
(:class:`~eoembed.providers.reader.SceneReader`, odc-stac's read decisions, GDAL cloud settings
per reading thread) (onto the ROI grid, same solar day mosaicked). Sentinel-2 processing-baseline
offsets are removed and other collections' DN converted
(:meth:`~eoembed.collections.Collection.to_stack_units`; Landsat C2 L2: DN x 0.275 - 2000) so
every scene is reflectance x 10000. The quality band is read with its own dtype and turned
into uint8 class codes (:func:`~eoembed.providers.local.qa_codes`: Landsat ``QA_PIXEL`` bit
flags -> SCL-like codes). Presets may restrict a collection to some platforms (Landsat:
``landsat-8``/``landsat-9``, whose OLI bands eoembed's ``SR_B1``..``SR_B7`` name).

Provenance: :attr:`StacProvider.last_provenance` holds, for the last fetch, every item id
and its asset hrefs with the query string (signing tokens) removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from eoembed.collections import get_collection
from eoembed.errors import ConfigError, ProviderError, TransientProviderError
from eoembed.grid import GridSpec
from eoembed.items import Stack
from eoembed.providers.base import CountingMixin
from eoembed.providers.local import LocalProvider, _footprint, _item_time, no_scene_error, provider_error
from eoembed.providers.presets import StacPreset, get_preset, s2_dn_offset
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec

__all__ = ["StacProvider", "strip_query"]

log = logging.getLogger(__name__)
_QUERY = "https://api.stacspec.org/v1.0.0/item-search#query"


def strip_query(href: str) -> str:
    """``href`` without its query string and fragment (drops signing tokens)."""
    parts = urlsplit(href)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _clear_gdal_http_cache() -> bool:
    """Call GDAL's ``VSICurlClearCache()`` (not exposed by rasterio) on the loaded libgdal.

    Returns False when the library cannot be found (then a retry may see the cached failure).
    """
    import ctypes
    import ctypes.util
    import glob
    import os

    import rasterio

    libs = sorted(glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs", "libgdal*")))
    name = libs[0] if libs else ctypes.util.find_library("gdal")
    if not name:
        return False
    try:
        fn = ctypes.CDLL(name).VSICurlClearCache
    except (OSError, AttributeError):
        return False
    fn.restype = None
    fn()
    return True


class StacProvider(CountingMixin, LocalProvider):
    """Scenes from a STAC API (Planetary Computer, Earth Search or any other).

    Args:
        preset: ``"planetary_computer"``, ``"earth_search"`` or ``"generic"`` (assets named
            like eoembed bands); default ``"generic"`` when ``url`` is given.
        url: STAC API root URL; overrides the preset's.
        sign: Sign asset URLs with ``planetary_computer`` (default: the preset's choice).
        resampling: As for :class:`~eoembed.providers.local.LocalProvider`.
        timeout_s: HTTP timeout of STAC API requests and of GDAL's COG reads.
        max_items: Upper bound on items taken from one search (bounds paging).
        gdal_retries: GDAL's own retries of a failed HTTP read (``GDAL_HTTP_MAX_RETRY``;
            its delay doubles from ``gdal_retry_delay_s``). Kept small: the pipeline retries
            transient failures itself.
        gdal_retry_delay_s: First GDAL retry delay in seconds.
    """

    name: ClassVar[str] = "stac"
    default_io_workers: ClassVar[int] = 8  # remote COGs: HTTP latency, not CPU, bounds a fetch
    operational: ClassVar[tuple[str, ...]] = ("timeout_s", "gdal_retries", "gdal_retry_delay_s")

    def __init__(self, preset: str | None = None, url: str | None = None, sign: bool | None = None,
                 resampling: str = "auto", timeout_s: float = 60.0, max_items: int = 500,
                 gdal_retries: int = 2, gdal_retry_delay_s: float = 0.5) -> None:
        if preset is None and url is None:
            raise ConfigError("provider 'stac' needs preset= (one of 'planetary_computer', "
                              "'earth_search', 'generic') or url=")
        self.preset: StacPreset = get_preset(preset or "generic")
        url = url or self.preset.url
        if not url:
            raise ConfigError(f"preset={self.preset.name!r} has no URL: give url=")
        if sign is not None and not isinstance(sign, bool):
            raise ConfigError(f"sign={sign!r} is invalid: allowed true or false")
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ConfigError(f"max_items={max_items!r} is invalid: allowed an integer >= 1")
        super().__init__(catalog=url, resampling=resampling)
        self.url = url.rstrip("/")
        self.sign = self.preset.sign if sign is None else sign
        self.timeout_s = float(timeout_s)
        self.max_items = max_items
        if isinstance(gdal_retries, bool) or not isinstance(gdal_retries, int) or gdal_retries < 0:
            raise ConfigError(f"gdal_retries={gdal_retries!r} is invalid: allowed an integer >= 0")
        self.gdal_env = {"GDAL_HTTP_MAX_RETRY": str(gdal_retries),
                         "GDAL_HTTP_RETRY_DELAY": str(float(gdal_retry_delay_s)),
                         "GDAL_HTTP_TIMEOUT": str(max(1, round(self.timeout_s))),
                         "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
                         # cloud reads, set per job and per reading thread (rasterio.Env), never
                         # process-wide: HTTP/2 multiplexing, merged range requests, a block cache
                         "GDAL_HTTP_VERSION": "2", "GDAL_HTTP_MULTIPLEX": "YES",
                         "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES", "VSI_CACHE": "TRUE",
                         "VSI_CACHE_SIZE": str(25 * 2**20)}
        self.options = {"preset": self.preset.name, "url": strip_query(self.url), "sign": self.sign,
                        "resampling": resampling, "timeout_s": self.timeout_s, "max_items": max_items}
        self._client = None
        self._provenance = threading.local()  # fetches run in a thread pool
        # searches sent, items found/read, signed items, array bytes
        self._init_counters("searches", "items", "items_read", "signed_items", "bytes_loaded")

    @property
    def last_provenance(self) -> dict[str, Any]:
        """Item ids and asset hrefs (no query string) of this thread's last fetch."""
        return getattr(self._provenance, "value", {})

    @last_provenance.setter
    def last_provenance(self, value: dict[str, Any]) -> None:
        self._provenance.value = value

    # ------------------------------------------------------------------ describe / stats

    def describe(self) -> dict[str, Any]:
        """Provider settings for provenance: preset, URL (no query), signing on/off."""
        return {"provider": self.name, "preset": self.preset.name, "url": strip_query(self.url),
                "sign": self.sign}

    # ------------------------------------------------------------------ search

    @property
    def client(self):
        """The pystac-client :class:`Client` (root and conformance read once)."""
        if self._client is None:
            from pystac_client import Client

            self._client = self._call(lambda: Client.open(self.url, timeout=self.timeout_s),
                                      f"opening STAC API {strip_query(self.url)}")
        return self._client

    @staticmethod
    def _call(fn, what: str):
        """Run a pystac-client call; classify its failures (429/5xx/timeouts are transient)."""
        import requests
        from pystac_client.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            code = getattr(exc, "status_code", None)
            msg = f"{what}: HTTP {code}: {str(exc)[:300]}"
            if code is not None and (code == 429 or code >= 500):
                raise TransientProviderError(msg) from exc
            raise ProviderError(msg) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientProviderError(f"{what}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - parsing, bad JSON, ...
            raise provider_error(f"{what}: {type(exc).__name__}: {exc}") from exc

    def _cloud_filter(self, pct: float) -> dict[str, Any]:
        if pct >= 100:
            return {}
        client = self.client
        if client.conforms_to("QUERY"):
            return {"query": {"eo:cloud_cover": {"lte": pct}}}
        if client.conforms_to("FILTER"):
            return {"filter": {"op": "<=", "args": [{"property": "eo:cloud_cover"}, pct]},
                    "filter_lang": "cql2-json"}
        return {}

    def search(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec) -> list:
        """Items of the sensor's collection over the ROI in ``[start, end)`` under the cloud limit.

        Returns pystac Items with assets renamed to eoembed band names (and the quality band
        to the collection's ``qa_band``), signed when signing is on; sorted by (time, id).
        """
        cpreset = self.preset.collection(sensor.collection)
        collection = get_collection(sensor.collection)
        roi = spatial.geometry()
        start = dt.datetime.combine(temporal.start, dt.time(), tzinfo=dt.timezone.utc)
        end = dt.datetime.combine(temporal.end, dt.time(), tzinfo=dt.timezone.utc)
        kwargs = dict(collections=cpreset.remote_ids(), bbox=list(roi.bounds),
                      datetime=[start, end - dt.timedelta(microseconds=1)], limit=100,
                      max_items=self.max_items, **self._cloud_filter(sensor.cloudy_pct))
        what = f"searching {strip_query(self.url)} for {', '.join(cpreset.remote_ids())}"
        found = self._call(lambda: list(self.client.search(**kwargs).items()), what)
        self._count(searches=1, items=len(found))

        def wanted(remote: str | None) -> dict[str, str]:  # eoembed name -> this item's asset key
            names = {b: cpreset.asset(b, remote) for b in sensor.bands}
            if collection.qa_band:
                names[collection.qa_band] = cpreset.qa_asset or collection.qa_band
            return names

        out, seen = [], set()
        for item in sorted(found, key=lambda it: (_item_time(it), it.id)):
            cloud = item.properties.get("eo:cloud_cover")
            if item.id in seen or not start <= _item_time(item) < end:
                continue
            if sensor.cloudy_pct < 100 if cloud is None else float(cloud) > sensor.cloudy_pct:
                continue
            if cpreset.platforms and item.properties.get("platform") not in cpreset.platforms:
                continue
            if not _footprint(item).intersects(roi):
                continue
            seen.add(item.id)
            out.append(self._renamed(item, wanted(item.collection_id), cpreset.units))
        return out

    @staticmethod
    def _renamed(item, wanted: dict[str, str], units: str = ""):
        """A copy of ``item`` whose assets are exactly ``wanted`` (eoembed name -> asset key);
        ``units`` (the preset's) is declared on assets whose ``raster:bands`` state none."""
        clone = item.clone()
        missing = [key for key in wanted.values() if key not in clone.assets]
        if missing:
            raise ProviderError(f"item {item.id!r} has no asset(s) {missing} (assets: "
                                f"{sorted(clone.assets)})")
        clone.assets = {name: clone.assets[key].clone() for name, key in wanted.items()}
        for asset in clone.assets.values():
            asset.set_owner(clone)
            bands = asset.extra_fields.get("raster:bands") or [{}]
            if units and not bands[0].get("unit"):
                asset.extra_fields["raster:bands"] = [{**bands[0], "unit": units}, *bands[1:]]
        return clone

    # ------------------------------------------------------------------ fetch

    def _sign(self, items: list) -> None:
        if not self.sign:
            return
        try:
            import planetary_computer
        except ImportError:
            raise ConfigError("sign=true needs the 'planetary-computer' package "
                              "(pip install planetary-computer)") from None
        for item in items:
            self._call(lambda: planetary_computer.sign_inplace(item), f"signing item {item.id!r}")
        self._count(signed_items=len(items))

    def fetch(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec,
              grid: GridSpec) -> Stack:
        """Search, sign, read onto ``grid`` (same solar day mosaicked), remove DN offsets.

        Raises:
            NoDataError: no item matches the ROI, window and cloud limit.
            TransientProviderError: HTTP 429/5xx, timeouts, dropped connections.
            ProviderError: other failures (missing assets, unreadable files, ...).
        """
        collection = get_collection(sensor.collection)
        items = self.search(spatial, temporal, sensor)
        if not items:
            raise no_scene_error(f"at {strip_query(self.url)}", spatial, temporal, sensor)
        self.last_provenance = {
            "items": [it.id for it in items],
            "assets": {it.id: {name: strip_query(a.href) for name, a in it.assets.items()}
                       for it in items}}
        dn_shift = self._dn_shift(items, sensor)  # before signing: offsets come from the unsigned items
        self._sign(items)
        stack = self._read_stack(items, sensor, grid, collection, default_nodata=collection.nodata,
                                 dn_shift=dn_shift)
        self._count(items_read=len(items), bytes_loaded=int(stack.data.nbytes))
        return stack

    def _load(self, items: list, bands: list[str], grid: GridSpec, collection, lon: float):
        """The scene reader under this provider's GDAL HTTP settings (:attr:`gdal_env`, which
        the reader sets per ROI or per fetch thread; GDAL's own retries kept small: the
        pipeline retries transient failures itself)."""
        try:
            return super()._load(items, bands, grid, collection, lon)
        except TransientProviderError:
            _clear_gdal_http_cache()  # GDAL remembers failed URLs; a retry must ask again
            raise

    def _dn_offsets(self, item, sensor: SensorSpec) -> dict[str, float]:
        """Per band, the DN to add so values follow the collection's convention."""
        cpreset = self.preset.collection(sensor.collection)
        if cpreset.dn_offset != "s2_baseline":
            return {band: 0.0 for band in sensor.bands}
        when = _item_time(item)
        return {band: s2_dn_offset(item.properties,  # the asset fields it reads, without a deep copy
                                   {"raster:bands": item.assets[band].extra_fields.get("raster:bands")}, when)
                for band in sensor.bands}
