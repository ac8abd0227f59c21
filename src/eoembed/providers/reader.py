"""Direct scene reader: STAC assets onto a grid without building an odc-stac graph per ROI.

The ``local`` and ``stac`` providers used to call ``odc.stac.load`` once per ROI; building its
task graph (and opening every band file afresh) cost more than the model's forward pass.
:class:`SceneReader` does the same reads directly, with the *same per-scene decisions and GDAL
calls* as odc-loader's rasterio reader, so pixels are identical:

* ``odc.geo.overlap.compute_reproject_roi`` decides, per scene, between a **window read**
  (the source is on the grid's CRS and pixel size, sub-pixel offset within odc's tolerance:
  0.9 px for ``nearest``, 0.05 px otherwise) and ``rasterio.warp.reproject`` of that scene
  onto the overlapping part of the grid; overviews are used when the grid is >= 2x coarser.
* Output per band: the asset's ``raster:bands`` ``data_type`` (float32 when absent), filled
  with its declared ``nodata`` (NaN for floats, 0 for integers when none), scenes of one solar
  day fused first-valid-wins in (time, id) order.

What it adds: datasets are opened once per thread and kept (an LRU, see :meth:`_open`) across
the ROIs of a job; a multi-band asset (``eoembed:band_index`` on the asset, see
:func:`eoembed.catalog.build_catalog` with ``split=False``) is one file read for all its bands
(one window read of every needed band); GDAL options (e.g. cloud-read settings) are applied
per reading thread with ``rasterio.Env``, never process-wide.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eoembed.grid import GridSpec
from eoembed.providers.readplan import GridPlan, Src, pick_overview

__all__ = ["BAND_INDEX", "CONSTANT", "FIRST_OPEN", "Loaded", "SceneReader", "band_index"]

#: Datasets a reading thread keeps open at first (see ``max_open`` of :class:`SceneReader`).
FIRST_OPEN = 16

#: Asset field naming the 1-based band of a multi-band file that holds the asset's band.
BAND_INDEX = "eoembed:band_index"
#: Asset field of a *virtual* constant band (no file read): its value wherever the scene's
#: other bands have data (its ``raster:bands`` nodata elsewhere). Used for the quality band of
#: imagery declared cloud-free by :func:`eoembed.catalog.build_catalog` with ``split=False``.
CONSTANT = "eoembed:constant"


def band_index(asset) -> int:
    """1-based band of the asset's file that holds its data (1 for single-band assets)."""
    return int(asset.extra_fields.get(BAND_INDEX, 1))


@dataclass
class _Band:
    values: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


class Loaded:
    """What :meth:`SceneReader.load` returns: ``data[band].values`` (time, y, x),
    ``data[band].attrs["nodata"]``, ``data["time"].values`` and ``sizes["time"]`` (the parts
    of odc-stac's xarray Dataset the providers use)."""

    def __init__(self, bands: dict[str, _Band], times: list[dt.datetime]) -> None:
        self._bands = bands
        self._times = _Band(np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[us]"))
        self.sizes = {"time": len(times)}

    def __getitem__(self, name: str) -> _Band:
        return self._times if name == "time" else self._bands[name]


def _band_meta(asset) -> tuple[np.dtype, float | None]:
    """(output dtype, declared nodata) of an asset, as odc-stac derives them."""
    meta = (asset.extra_fields.get("raster:bands") or [{}])[0] or {}
    nodata = meta.get("nodata")
    if isinstance(nodata, str):
        nodata = float(nodata)
    return np.dtype(meta.get("data_type") or "float32"), nodata


class SceneReader:
    """Reads scenes onto grids, reusing open datasets.

    Args:
        max_open: Datasets kept open per thread at most (least recently used closed first). A
            thread starts by keeping :data:`FIRST_OPEN` and doubles that each time it reopens a
            file it had closed: every open dataset makes GDAL's next open and close slower
            (1,024 chips read once each: 0.59 ms per file with 16 kept open, 0.76 with 256),
            so a catalogue of chips read once keeps few, a job that returns to its scenes many.
        gdal_env: GDAL options set (thread-locally, via ``rasterio.Env``) around every read.
        use_overviews: Read from an overview when the grid is >= 2x coarser (as odc-stac).
        prefetch_workers: Remote files of a ROI first opened at once (:meth:`_prefetch`); a
            :meth:`session` sets it to the job's I/O concurrency (``provider.io_workers``).
    """

    def __init__(self, max_open: int = 256, gdal_env: dict[str, str] | None = None,
                 use_overviews: bool = True, prefetch_workers: int = 1) -> None:
        self.max_open = int(max_open)
        # no directory listing on open (a folder of 1,000 chips is listed once per file
        # otherwise); sidecar files (.ovr, .msk, .aux.xml) are still probed by name
        self.gdal_env = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE", **(gdal_env or {})}
        self.use_overviews = use_overviews
        self._local = threading.local()
        self._opened: set[str] = set()  # remote files opened once (GDAL caches their headers)
        self.prefetch_workers = int(prefetch_workers)
        self._pool = None
        self._pool_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ------------------------------------------------------------------ datasets

    def _open(self, href: str, overview: int | None = None):
        import rasterio

        cache: OrderedDict = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
            self._local.closed = OrderedDict()  # keys closed for room, most recent last
            self._local.limit = min(FIRST_OPEN, self.max_open)
        key = (href, overview)
        src = cache.get(key)
        if src is not None and not src.ds.closed:
            cache.move_to_end(key)
            return src
        closed = self._local.closed
        if closed.pop(key, None) is not None:  # closed too early: keep more open
            self._local.limit = min(2 * self._local.limit, self.max_open)
        kw = {} if overview is None else {"overview_level": overview}
        opener = rasterio.open
        if not _remote(href) and rasterio.env.local._env:
            # rasterio.open enters one more Env per call for its credentials session (s3:// and
            # the like; GDALEnv.start() probes the GDAL/PROJ data folders each time); a local
            # file needs none and the reader's Env is active: the undecorated open
            opener = getattr(rasterio.open, "__wrapped__", rasterio.open)
        with self._first_open(href):
            src = cache[key] = Src(opener(href, "r", sharing=False, **kw))
        while len(cache) > self._local.limit:
            old, gone = cache.popitem(last=False)
            gone.ds.close()
            closed[old] = True
            if len(closed) > self.max_open:
                closed.popitem(last=False)
        return src

    @contextlib.contextmanager
    def session(self, workers: int = 1):
        """Keep this thread's GDAL options set across many :meth:`load` calls (one
        ``rasterio.Env`` per fetch thread and job instead of one per ROI); ``workers``: the
        job's I/O concurrency, also the number of remote files first opened at once."""
        import rasterio

        self.prefetch_workers = max(1, int(workers))
        if getattr(self._local, "session", False):
            yield
            return
        with rasterio.Env(**self.gdal_env):
            self._local.session = True
            try:
                yield
            finally:
                self._local.session = False

    @contextlib.contextmanager
    def _first_open(self, href: str):
        """Let one thread open a remote file first while the others wanting it wait.

        Each fetch thread opens its own dataset (GDAL datasets are not thread-safe). Without
        this, threads starting on ROIs of the same scenes all open the same files at once, each
        sending its own header requests (HEAD + first range, one round trip each) before any
        answer reaches GDAL's shared caches (file properties, downloaded ranges): with 8
        threads, 4x the requests of one thread. Waiting for the first open makes the others
        open from those caches. Local paths open at once.
        """
        if href in self._opened or not _remote(href):
            yield
            return
        with self._locks_lock:
            lock = self._locks.setdefault(href, threading.Lock())
        with lock:
            yield
            self._opened.add(href)

    def _prefetch(self, hrefs: list[str]) -> None:
        """Open the remote files of one ROI that no thread has opened yet, all at once.

        A ROI's files are read one after the other; their first opens (one or two round trips
        each) are what a remote read waits for. They go out together from a small pool
        (``prefetch_workers`` at a time); the reading thread then opens them from GDAL's caches.
        """
        import rasterio

        todo = [h for h in dict.fromkeys(hrefs) if h not in self._opened and _remote(h)]
        if len(todo) < 2 or self.prefetch_workers < 2:
            return

        def touch(href: str) -> None:
            with rasterio.Env(**self.gdal_env), self._first_open(href):
                if href not in self._opened:
                    rasterio.open(href, "r", sharing=False).close()

        with self._pool_lock:
            if self._pool is None or self._pool[0] != self.prefetch_workers:
                from concurrent.futures import ThreadPoolExecutor

                if self._pool is not None:
                    self._pool[1].shutdown(wait=False)
                self._pool = (self.prefetch_workers, ThreadPoolExecutor(
                    self.prefetch_workers, thread_name_prefix="eoembed-open"))
            pool = self._pool[1]
        for f in [pool.submit(touch, h) for h in todo]:
            try:
                f.result()
            except Exception:  # noqa: BLE001 - the reading thread's own open reports it
                pass

    def close(self) -> None:
        """Close the datasets this thread keeps open."""
        cache = getattr(self._local, "cache", None) or {}
        for src in cache.values():
            src.ds.close()
        cache.clear()

    # ------------------------------------------------------------------ reads

    def load(self, groups: list[list], bands: list[str], grid: GridSpec,
             resampling: dict[str, str]) -> Loaded:
        """Read ``bands`` of every item of ``groups`` (one group = one time step) onto ``grid``."""
        import rasterio

        first = groups[0][0]
        metas = {b: _band_meta(first.assets[b]) for b in bands}
        out: dict[str, _Band] = {}
        for b in bands:
            dtype, nodata = metas[b]
            fill = nodata if nodata is not None else (np.nan if dtype.kind == "f" else 0)
            arr = np.full((len(groups), grid.height, grid.width), fill, dtype=dtype)
            out[b] = _Band(arr, {} if nodata is None else {"nodata": nodata})
        plan = GridPlan(grid)
        self._prefetch([it.assets[b].href for g in groups for it in g for b in bands
                        if CONSTANT not in it.assets[b].extra_fields])
        env = contextlib.nullcontext() if getattr(self._local, "session", False) \
            else rasterio.Env(**self.gdal_env)
        try:
            with env:
                for t, group in enumerate(groups):
                    fresh = set(bands)  # bands no scene of this time step has written yet
                    for item in group:
                        self._read_item(item, bands, plan, resampling, metas,
                                        {b: out[b].values[t] for b in bands}, fresh)
        except Exception:
            self.close()  # a retry opens the files afresh (a remote one may have recovered)
            raise
        return Loaded(out, [_group_time(g) for g in groups])

    def _read_item(self, item, bands, plan: "GridPlan", resampling, metas,
                   dst: dict[str, np.ndarray], fresh: set) -> None:
        """Read one scene's bands and fuse them into ``dst`` where it still has no data."""
        by_file: dict[str, list[str]] = {}
        constant = [b for b in bands if CONSTANT in item.assets[b].extra_fields]
        for b in bands:  # one open + one window read for the bands a multi-band file holds
            if b not in constant:
                by_file.setdefault(item.assets[b].href, []).append(b)
        has_data = np.zeros(next(iter(dst.values())).shape, bool) if constant else None
        for href, names in by_file.items():
            multi = BAND_INDEX in item.assets[names[0]].extra_fields
            same = [n for n in names if resampling[n] == resampling[names[0]]
                    and metas[n] == metas[names[0]]]
            rest = [n for n in names if n not in same]
            self._read_file(href, [band_index(item.assets[n]) for n in same], same, plan,
                            resampling[names[0]], metas[names[0]], dst, fresh, has_data, multi)
            for n in rest:
                self._read_file(href, [band_index(item.assets[n])], [n], plan, resampling[n],
                                metas[n], dst, fresh, has_data, multi)
        for b in constant:
            value = item.assets[b].extra_fields[CONSTANT]
            fuse_nodata = metas[b][1] if metas[b][1] is not None else 0
            np.copyto(dst[b], dst[b].dtype.type(value), where=has_data & _missing(dst[b], fuse_nodata))
            fresh.discard(b)

    def _read_file(self, href, bidx, names, plan: "GridPlan", resampling, meta, dst, fresh: set,
                   has_data=None, fallback: bool = False) -> None:
        import rasterio
        import rasterio.warp
        from odc.geo.roi import w_

        dtype, nodata = meta
        src = self._open(href)
        rr = plan.reproject(src, 0.9 if resampling == "nearest" else 0.05)
        if _empty(rr.roi_dst) or _empty(rr.roi_src):
            return
        ovr = None
        if self.use_overviews and rr.read_shrink > 1:
            ovr = pick_overview(rr.read_shrink, src.ds.overviews(bidx[0]))
            if ovr is not None:
                src = self._open(href, ovr)
        ds, roi = src.ds, rr.roi_dst
        shape = (len(bidx), roi[0].stop - roi[0].start, roi[1].stop - roi[1].start)
        src_nodata = src.nodatavals[bidx[0] - 1]  # odc-loader: the file's nodata for the source
        if src_nodata is None and fallback:  # a user's multi-band file: its declared nodata
            src_nodata = nodata
        dst_nodata = nodata if nodata is not None else (np.nan if dtype.kind == "f" else src_nodata)
        pix = np.empty(shape, dtype=dtype) if rr.paste_ok and rr.read_shrink == 1 else np.zeros(shape, dtype)
        if rr.paste_ok and rr.read_shrink == 1:
            ds.read(bidx, out=pix, window=w_[rr.roi_src])
            if dst_nodata is not None and not _same(src_nodata, dst_nodata):
                np.copyto(pix, dtype.type(dst_nodata), where=_missing(pix, src_nodata))
        else:
            geobox = plan.geobox
            kw = dict(src_nodata=src_nodata, dst_crs=str(geobox.crs), dst_transform=geobox[roi].transform,
                      dst_nodata=dst_nodata, resampling=getattr(rasterio.enums.Resampling, resampling))
            if len(bidx) > 1 and ovr is None and _none_missing(ds, bidx, rr, src_nodata):
                # one GDAL warp for the file's bands (12 warper set-ups cost ~10 ms per 64 x 64
                # chip, one ~2 ms); GDAL's multi-band warp treats pixels next to a nodata source
                # pixel differently from per-band warps, so only where the source has none
                rasterio.warp.reproject(rasterio.band(ds, list(bidx)), pix, **kw)
            else:  # odc-loader: one warp per band
                for k, b in enumerate(bidx):
                    rasterio.warp.reproject(rasterio.band(ds, b), pix[k], **kw)
        fuse_nodata = nodata if nodata is not None else (np.nan if dtype.kind == "f" else 0)
        for k, name in enumerate(names):
            target = dst[name][roi]
            if name in fresh:  # still all fill (= missing): first-valid-wins is a plain copy
                target[...] = pix[k]
                fresh.discard(name)
            else:
                np.copyto(target, pix[k], where=_missing(target, fuse_nodata))
        if has_data is not None:  # pixels where this scene has data in any band
            has_data[roi] |= ~_missing(pix, fuse_nodata).all(axis=0)


def _none_missing(ds, bidx, rr, src_nodata) -> bool:
    """Whether no source pixel the warp may use is missing (nodata, or NaN) in any of ``bidx``.

    Checks the source window odc planned, widened by the resampling kernel's reach (lanczos: 3
    source pixels, times the read shrink when downsampling) plus a margin."""
    from rasterio.windows import Window

    rows, cols = rr.roi_src
    pad = 3 * max(1, int(rr.read_shrink)) + 4
    r0, c0 = max(0, rows.start - pad), max(0, cols.start - pad)
    r1, c1 = min(ds.height, rows.stop + pad), min(ds.width, cols.stop + pad)
    if r1 <= r0 or c1 <= c0:
        return False
    window = ds.read(list(bidx), window=Window(c0, r0, c1 - c0, r1 - r0))
    nodatas = {src_nodata} if src_nodata is not None else {ds.nodatavals[b - 1] for b in bidx}
    if window.dtype.kind == "f" and np.isnan(window).any():
        return False
    return not any(nd is not None and not np.isnan(nd) and (window == nd).any() for nd in nodatas)


def _remote(href: str) -> bool:
    return "://" in href or href.startswith("/vsi")


def _group_time(group: list) -> dt.datetime:
    from eoembed.providers.local import _item_time

    return _item_time(group[0]).astimezone(dt.timezone.utc)


def _empty(roi) -> bool:
    return any(s.stop <= s.start for s in roi)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return a == b


def _missing(pix: np.ndarray, nodata) -> np.ndarray:
    """odc-loader's nodata mask: NaN (and ``nodata``) for floats, ``== nodata`` for integers."""
    if pix.dtype.kind == "f":
        if nodata is None or np.isnan(nodata):
            return np.isnan(pix)
        return np.isnan(pix) | (pix == nodata)
    if nodata is None:
        return np.zeros(pix.shape, bool)
    return pix == nodata
