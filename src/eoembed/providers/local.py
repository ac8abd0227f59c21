"""The ``local`` provider: GeoTIFF/COG scenes indexed by a STAC catalogue file.

The catalogue is either a STAC ItemCollection (GeoJSON FeatureCollection of STAC Items,
asset hrefs may be relative to the catalogue file) or a stac-geoparquet file (``.parquet``).
Each item has a ``datetime``, a footprint geometry, ``proj:code`` (or ``proj:epsg``),
``eo:cloud_cover`` and one asset per band named like the band (``B02``, ..., ``SCL``).
Pixels are read straight onto the ROI grid by :class:`~eoembed.providers.reader.SceneReader`
(odc-stac's per-scene read/warp decisions without its per-ROI graph), same-day tiles mosaicked.
Reading, indexing and searching the catalogue file: :mod:`eoembed.providers.index`.

Units: band values are converted from the collection's source DN to stack units
(reflectance x 10000, :meth:`eoembed.collections.Collection.to_stack_units`; Sentinel-2 L2A
passes through unchanged) and the quality band, read with its own dtype, becomes uint8 class
codes (:func:`qa_codes`; Landsat ``QA_PIXEL`` bit flags are mapped to SCL-like codes).
Sentinel-2 L2A scenes of processing baseline 04.00+ have their ``BOA_ADD_OFFSET`` (-1000 DN)
removed exactly as the ``stac`` provider does (:meth:`LocalProvider._dn_offsets`).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.collections import get_collection
from eoembed.errors import ConfigError, NoDataError, ProviderError, TransientProviderError
from eoembed.grid import GridSpec, to_crs
from eoembed.items import Stack
from eoembed.providers.base import Provider
from eoembed.providers.index import (CatalogIndex, _footprint, _is_remote, _item_time, cached_index,  # noqa: F401
                                     read_catalog)
from eoembed.providers.reader import SceneReader
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec

__all__ = ["LocalProvider", "provider_error", "qa_codes", "read_catalog"]

_TRANSIENT = re.compile(  # HTTP 429/5xx, timeouts, dropped connections
    r"(http|status|code)[^0-9]{0,20}(429|5\d\d)\b|timed? ?out|timeout|temporar"
    r"|connection (reset|refused|aborted)|service unavailable|too many requests|broken pipe",
    re.IGNORECASE)
_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode",
               "min", "max", "med", "q1", "q3", "sum", "rms")


def provider_error(message: str) -> ProviderError:
    """A :class:`TransientProviderError` when ``message`` looks retryable (HTTP 429/5xx,
    timeouts, dropped connections), else a permanent :class:`ProviderError`."""
    cls = TransientProviderError if _TRANSIENT.search(message) else ProviderError
    return cls(message)


def no_scene_error(where: str, spatial: SpatialSpec, temporal: TemporalSpec,
                   sensor: SensorSpec) -> NoDataError:
    """The error for a search that found nothing, naming the ROI bounds, window and cloud limit."""
    b = spatial.geometry().bounds
    return NoDataError(f"no scene {where} for ROI lon/lat bounds ({b[0]:.5f}, {b[1]:.5f}, {b[2]:.5f}, "
                       f"{b[3]:.5f}) in window [{temporal.start}, {temporal.end}) with eo:cloud_cover <= "
                       f"{sensor.cloudy_pct}")


def qa_codes(raw: np.ndarray, nodata: float | None, collection) -> np.ndarray:
    """uint8 quality classes of a quality band as read (any dtype), 0 where it has no data.

    ``collection.qa_kind`` ``"classes"``: the values are the classes (cast to uint8); a bit-flag
    kind (``"landsat_qa_pixel"``, ``"hls_fmask"``): mapped by its function in
    :data:`~eoembed.providers.presets.QA_DECODERS`. Pixels equal to the band's ``nodata`` (or
    NaN, when read as floats) become class 0 (no data).
    """
    from eoembed.providers.presets import QA_DECODERS

    raw = np.asarray(raw)
    missing = np.zeros(raw.shape, bool)
    if np.issubdtype(raw.dtype, np.floating):
        missing = ~np.isfinite(raw)
        raw = np.where(missing, 0, raw)
    if collection.qa_kind in QA_DECODERS:
        codes = QA_DECODERS[collection.qa_kind](raw)
    elif collection.qa_kind == "classes":
        codes = raw.astype(np.uint8)
    else:
        raise ProviderError(f"qa_kind={collection.qa_kind!r} of collection {collection.id!r} is "
                            f"invalid: allowed 'classes' or one of {sorted(QA_DECODERS)}")
    if nodata is not None and not np.isnan(nodata):
        missing |= raw == nodata
    codes[missing] = 0
    return codes


class LocalProvider(Provider):
    """Scenes from local (or remote) GeoTIFF/COG files listed in a STAC catalogue file.

    Args:
        catalog: Path of a STAC ItemCollection JSON or a stac-geoparquet file.
        resampling: ``"auto"`` (``average`` when the grid is coarser than a band's native
            resolution, ``bilinear`` otherwise) or a rasterio resampling name for every
            spectral band. The quality band is always resampled with ``nearest``.
    """

    name: ClassVar[str] = "local"
    #: ROIs fetched at once by :func:`eoembed.pipeline.fetch_items` (config ``provider.io_workers``).
    default_io_workers: ClassVar[int] = 1  # local disks, 2 cores: Python-bound (4 threads measured 0.6x)

    def __init__(self, catalog: str | Path, resampling: str = "auto") -> None:
        super().__init__(catalog=str(catalog), resampling=resampling)
        if resampling != "auto" and resampling not in _RESAMPLING:
            raise ConfigError(f"resampling={resampling!r} is invalid: allowed 'auto' or one of "
                              f"{list(_RESAMPLING)}")
        self.catalog = str(catalog)
        self.resampling = resampling
        self._index: CatalogIndex | None = None
        self._index_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "catalog": self.catalog}

    @property
    def items(self) -> list:
        """All items of the catalogue as pystac Items (builds every one: a search builds only
        the items it returns)."""
        return self.index.items

    @property
    def index(self) -> "CatalogIndex":
        """The catalogue's spatial/temporal index (read once per file and process: reused by
        later providers of the same, unchanged file, e.g. repeated API calls)."""
        with self._index_lock:  # fetches run in a thread pool: build it once
            if self._index is None:
                self._index = cached_index(self.catalog)
        return self._index

    def search(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec) -> list:
        """Items intersecting the ROI in ``[start, end)`` with cloud cover <= the limit.

        Items of another collection are skipped; items without ``eo:cloud_cover`` pass only
        when ``sensor.cloudy_pct`` is 100. Candidates come from an STRtree over the footprints
        (:class:`CatalogIndex`), so a search is not linear in the catalogue; the result is the
        same list, in catalogue order, that a scan of every item would give.
        """
        roi = spatial.geometry()
        start = dt.datetime.combine(temporal.start, dt.time(), tzinfo=dt.timezone.utc)
        end = dt.datetime.combine(temporal.end, dt.time(), tzinfo=dt.timezone.utc)
        return self.index.query(roi, start, end, sensor.collection, sensor.cloudy_pct)

    def _resampling(self, bands: tuple[str, ...], qa: str | None, collection, res: float) -> dict:
        out = {}
        for band in bands:
            if self.resampling != "auto":
                out[band] = self.resampling
            else:
                native = float(collection.native_gsd_m.get(band, res))
                out[band] = "average" if res > native * 1.01 else "bilinear"
        if qa:
            out[qa] = "nearest"
        return out

    def fetch(self, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec,
              grid: GridSpec) -> Stack:
        """Read every matching scene onto ``grid``; same solar day = one mosaicked time step.

        Raises:
            NoDataError: no item matches the ROI, window and cloud limit.
            ProviderError: an asset is missing or a file cannot be read.
            TransientProviderError: a read failed in a way worth retrying (5xx, timeouts).
        """
        collection = get_collection(sensor.collection)
        items = self.search(spatial, temporal, sensor)
        if not items:
            raise no_scene_error(f"in catalog {self.catalog!r}", spatial, temporal, sensor)
        qa = collection.qa_band
        self._check_assets(items, list(sensor.bands) + ([qa] if qa else []))
        return self._read_stack(items, sensor, grid, collection, dn_shift=self._dn_shift(items, sensor))

    def _dn_offsets(self, item, sensor: SensorSpec) -> dict[str, float]:
        """Per band, the DN to add so values follow the collection's convention.

        A local catalogue follows the rule of the ``generic`` STAC preset for its collection:
        Sentinel-2 L2A items get :func:`~eoembed.providers.presets.s2_dn_offset` (the asset's
        ``raster:bands`` offset, else ``s2:processing_baseline``, else the date), other
        collections none.
        """
        from eoembed.providers.presets import get_preset, s2_dn_offset

        rule = get_preset("generic").collections.get(sensor.collection)
        if rule is None or rule.dn_offset != "s2_baseline":
            return {band: 0.0 for band in sensor.bands}
        when = _item_time(item)
        return {band: s2_dn_offset(item.properties,  # the asset fields it reads, without a deep copy
                                   {"raster:bands": item.assets[band].extra_fields.get("raster:bands")}, when)
                for band in sensor.bands}

    def _dn_shift(self, items: list, sensor: SensorSpec):
        """``(group_items, band) -> DN offset`` for :meth:`_read_stack` (one offset per solar day)."""
        offsets = {it.id: self._dn_offsets(it, sensor) for it in items}

        def dn_shift(group: list, band: str) -> float:
            shift = {offsets[it.id][band] for it in group}
            if len(shift) > 1:
                raise ProviderError(f"scenes {[it.id for it in group]} of one solar day need "
                                    f"different DN offsets {sorted(shift)} for band {band!r}")
            return shift.pop()

        return dn_shift

    def _read_stack(self, items: list, sensor: SensorSpec, grid: GridSpec, collection,
                    default_nodata: float | None = None, dn_shift=None) -> Stack:
        """Load ``items`` onto ``grid`` (same solar day = one time step) and build the Stack.

        Args:
            default_nodata: Nodata used for a band whose asset declares none (``None``: no masking).
            dn_shift: Optional ``(group_items, band) -> float`` added to a time step's digital
                numbers before unit conversion (e.g. Sentinel-2 processing-baseline offsets).
        """
        qa = collection.qa_band
        load_bands = list(sensor.bands) + ([qa] if qa else [])
        lon0 = float(to_crs(*self._centre(grid), grid.crs, "EPSG:4326")[0])
        groups = self._groups(items, lon0)
        data = self._load(items, load_bands, grid, collection, lon0)
        if data.sizes["time"] != len(groups):
            raise ProviderError(f"odc-stac returned {data.sizes['time']} time steps for "
                                f"{len(groups)} solar days")
        # all bands at once (the same float32 operations, element by element, as band by band)
        cube = np.empty((len(groups), len(sensor.bands), grid.height, grid.width), np.float32)
        nodatas = np.full(len(sensor.bands), np.nan, np.float32)  # NaN: nothing masked
        for i, band in enumerate(sensor.bands):
            cube[:, i] = data[band].values  # the cast of .astype(np.float32)
            nodata = data[band].attrs.get("nodata")
            nodata = default_nodata if nodata is None or np.isnan(nodata) else nodata
            if nodata is not None:
                nodatas[i] = np.float32(nodata)
        if not np.isnan(nodatas).all():
            cube[cube == nodatas[None, :, None, None]] = np.nan
        if dn_shift is not None:
            shift = np.array([[dn_shift(g, b) for b in sensor.bands] for g in groups], np.float32)
            cube += shift[:, :, None, None]
        if collection.is_sar:
            for i, band in enumerate(sensor.bands):
                cube[:, i] = collection.to_stack_units(cube[:, i], units=self._units(items, band))
        else:
            cube = collection.to_stack_units(cube)
        qa_arr = qa_codes(data[qa].values, data[qa].attrs.get("nodata"), collection) if qa else None
        times = [dt.datetime.fromisoformat(str(np.datetime_as_string(t, unit="us"))).replace(
            tzinfo=dt.timezone.utc) for t in data["time"].values]
        return Stack(data=cube, qa=qa_arr, times=times, bands=tuple(sensor.bands), grid=grid,
                     collection=sensor.collection, scenes=[[it.id for it in g] for g in groups])

    @staticmethod
    def _units(items: list, band: str) -> str | None:
        """The ``raster:bands[0].unit`` the items declare for ``band`` (SAR: dB or linear)."""
        units = {((item.assets[band].extra_fields.get("raster:bands") or [{}])[0] or {}).get("unit")
                 for item in items}
        if len(units) > 1:
            raise ProviderError(f"band {band!r}: the scenes declare different units "
                                f"{sorted(map(str, units))}; allowed one unit per band")
        return units.pop()

    @staticmethod
    def _centre(grid: GridSpec) -> tuple[float, float]:
        minx, miny, maxx, maxy = grid.bounds
        return (minx + maxx) / 2, (miny + maxy) / 2

    @staticmethod
    def _solar_day(item, lon: float) -> dt.date:
        """Local solar date of an item at longitude ``lon`` (UTC + lon / 15 hours)."""
        return (_item_time(item) + dt.timedelta(hours=lon / 15.0)).date()

    def _groups(self, items: list, lon: float) -> list[list]:
        """Items per solar day, days ascending, items by (time, id) as odc-stac orders them."""
        by_day: dict[dt.date, list] = {}
        for item in items:
            by_day.setdefault(self._solar_day(item, lon), []).append(item)
        return [sorted(by_day[d], key=lambda it: (_item_time(it), it.id)) for d in sorted(by_day)]

    def _check_assets(self, items: list, bands: list[str]) -> None:
        seen = self.__dict__.setdefault("_files_seen", set())  # a file is checked once per job
        for item in items:
            for band in bands:
                asset = item.assets.get(band)
                if asset is None:
                    raise ProviderError(f"item {item.id!r} has no asset {band!r} (assets: "
                                        f"{sorted(item.assets)})")
                if asset.href in seen or _is_remote(asset.href):
                    continue
                if not Path(asset.href).is_file():
                    raise ProviderError(f"asset {band!r} of item {item.id!r}: file not found: "
                                        f"{asset.href}")
                seen.add(asset.href)

    @property
    def reader(self) -> SceneReader:
        """The scene reader (open datasets kept across the ROIs of a job)."""
        if getattr(self, "_reader", None) is None:
            self._reader = SceneReader(gdal_env=getattr(self, "gdal_env", None))
        return self._reader

    def session(self, workers: int = 1):
        """The reader's session: its GDAL options set once for the thread's ROIs; remote files
        first opened ``workers`` at a time."""
        return self.reader.session(workers)

    def _load(self, items: list, bands: list[str], grid: GridSpec, collection, lon: float):
        qa = collection.qa_band
        resampling = self._resampling(tuple(b for b in bands if b != qa), qa, collection, grid.res)
        try:
            return self.reader.load(self._groups(items, lon), bands, grid, resampling)
        except Exception as exc:  # rasterio/GDAL errors: classify, keep the cause
            message = f"{type(exc).__name__}: {exc}"
            hrefs = [item.assets[b].href for item in items for b in bands]
            named = [h for h in hrefs if h in message]
            where = named[0] if named else f"one of {len(hrefs)} assets starting {hrefs[0]}"
            raise provider_error(f"reading {where} failed: {message}") from exc
