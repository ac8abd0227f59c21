"""The three per-item stages (fetch, composite, embed), shared by the workflow and the API.

Each stage takes the previous stage's results for a list of ROIs and returns, per ROI id,
``(arrays, record)``. A record always carries ``status`` (ok / partial / failed), ``stage``
(where the item is, or where it failed) and ``error``; a failure of one item never stops
the others. The workflow stores stage results in chunk files (:mod:`eoembed.chunkio`);
the API keeps them in memory; the code path is the same.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eoembed.errors import ConfigError, EoembedError, ModelError
from eoembed.grid import grid_for
from eoembed.items import Composite, Request, Stack
from eoembed.progress import Progress
from eoembed.providers.base import Provider
from eoembed.retry import call_with_retries
from eoembed.specs import OutputSpec, SensorSpec, stable_key
from eoembed.streams import cpu_streams, torch_thread_count, torch_threads

if TYPE_CHECKING:  # annotations only: fetch and composite do not run model code
    from eoembed.models.base import Embedder

log = logging.getLogger(__name__)

Result = tuple[dict[str, np.ndarray], dict[str, Any]]


def _error_text(exc: BaseException) -> str:
    """One-line error: type and message (internal errors keep their last frame)."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " | ")
    if not isinstance(exc, EoembedError):
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        if frame:
            text += f" (at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno})"
    return text


def failed(stage: str, exc: BaseException, **extra: Any) -> dict[str, Any]:
    return {"status": "failed", "stage": stage, "error": _error_text(exc), **extra}


def fetch_cache_path(cache_dir: str | Path, req: Request, sensor: SensorSpec, provider: Provider) -> Path:
    """Where the input cache keeps one ROI's fetched stack.

    Keyed by the sensor fields the fetch depends on (:func:`fetch_sensor_fields`), the request
    (place + window) and the provider's description (which never holds credentials), so only
    an identical request can reuse it.
    """
    fields = fetch_sensor_fields(sensor, provider)
    key = stable_key({"fetch": fields, "request": req.key(), "provider": provider.describe()})
    return Path(cache_dir) / stable_key(fields) / f"{key}.npz"


def fetch_sensor_fields(sensor: SensorSpec, provider: Provider) -> dict[str, Any]:
    """The sensor fields a fetch depends on: the download fields, or the whole sensor when the
    provider (or the one it wraps) composites server side (frames, compositing, masks)."""
    p: Provider | None = provider
    while p is not None:
        if type(p).composites:
            return sensor.to_dict()
        p = getattr(p, "inner", None)
    return sensor.fetch_dict()


def _cached_stack(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    from eoembed.chunkio import read_chunk

    try:
        items, records, _ = read_chunk(path)
        return items["stack"], records["stack"]["meta"]
    except (OSError, KeyError, ValueError):  # absent or unreadable: fetch again
        return None


def io_workers(provider: Provider, workers: int | None = None) -> int:
    """Concurrent fetches for ``provider``: ``workers`` when given, else the provider's
    ``default_io_workers`` (local files 1, STAC COGs 8; 1 for providers not known thread-safe)."""
    n = getattr(provider, "default_io_workers", 1) if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"provider.io_workers={n!r} is invalid: allowed an integer >= 1")
    return n


def _session(provider, workers: int):
    """The provider's per-thread session (:meth:`Provider.session`; nothing for duck-typed ones)."""
    import contextlib

    session = getattr(provider, "session", None)
    return session(workers) if session is not None else contextlib.nullcontext()


def fetch_items(requests: list[Request], sensor: SensorSpec, provider: Provider, *,
                retries: int = 3, backoff_s: float = 1.0, sleep=time.sleep,
                cache_dir: str | Path | None = None, workers: int | None = None,
                progress: Progress | None = None) -> dict[str, Result]:
    """Fetch imagery for each request on its UTM grid, retrying transient failures.

    With ``cache_dir``, every successful fetch is also kept in an input cache keyed by the
    request's stable key (:func:`fetch_cache_path`), and a cached stack is used instead of
    downloading again: a rerun, or a new model on the same sensor, skips the download.

    ``workers`` (default :func:`io_workers`) ROIs are fetched at once by a bounded thread
    pool (GDAL reads and HTTP waits release the GIL); results are the same as one at a time.
    """
    from eoembed.chunkio import write_chunk

    def one(i: int, req: Request) -> Result:
        t0 = time.perf_counter()
        base = {"roi_id": req.roi_id, "request": req.to_dict(), "request_key": req.key()}
        cache = fetch_cache_path(cache_dir, req, sensor, provider) if cache_dir else None
        hit = _cached_stack(cache) if cache is not None and cache.exists() else None
        if hit is not None:
            log.info("fetch %d/%d %s: from cache %s", i + 1, len(requests), req.roi_id, cache)
            return (hit[0], {**base, "status": "ok", "stage": "fetch", "error": None, "attempts": 0,
                             "cached": True, "meta": hit[1],
                             "timings": {"fetch_s": time.perf_counter() - t0}})
        try:
            grid = grid_for(req.spatial, sensor.scale_m)
            stack, attempts = call_with_retries(
                lambda: provider.fetch(req.spatial, req.temporal, sensor, grid),
                retries=retries, backoff_s=backoff_s, what=f"fetch {req.roi_id}", sleep=sleep)
            arrays, meta = stack.to_arrays()
            rec = {**base, "status": "ok", "stage": "fetch", "error": None, "attempts": attempts,
                   "cached": False, "meta": meta, "timings": {"fetch_s": time.perf_counter() - t0}}
            provenance = getattr(provider, "last_provenance", None)  # e.g. STAC item ids + asset hrefs
            if provenance:
                rec["provenance"] = provenance
            result = (arrays, rec)
            if cache is not None:
                write_chunk(cache, {"stack": arrays}, {"stack": {"meta": meta, "request": base["request"]}},
                            {"stage": "fetch-cache", "sensor": fetch_sensor_fields(sensor, provider)})
        except Exception as exc:  # noqa: BLE001 - one bad ROI must not sink the chunk
            log.warning("fetch %s failed: %s", req.roi_id, exc)
            result = ({}, {**base, **failed("fetch", exc), "timings": {"fetch_s": time.perf_counter() - t0}})
        log.info("fetch %d/%d %s: %s", i + 1, len(requests), req.roi_id, result[1]["status"])
        return result

    def done(result: Result) -> Result:
        if progress is not None:
            progress.update(1, failed=result[1]["status"] == "failed")
        return result

    n = min(io_workers(provider, workers), max(1, len(requests)))
    if n == 1:
        with _session(provider, n):
            results = [done(one(i, req)) for i, req in enumerate(requests)]
    else:  # n threads, each in one provider session, take the next request until none is left
        import itertools
        import threading
        from concurrent.futures import ThreadPoolExecutor

        results: list[Result | None] = [None] * len(requests)
        order = itertools.count()
        take = threading.Lock()

        def worker() -> None:
            with _session(provider, n):
                while True:
                    with take:
                        i = next(order)
                    if i >= len(requests):
                        return
                    results[i] = done(one(i, requests[i]))

        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="fetch") as pool:
            for f in [pool.submit(worker) for _ in range(n)]:
                f.result()
    return {req.roi_id: res for req, res in zip(requests, results)}


def composite_items(fetched: dict[str, Result], requests: list[Request], sensor: SensorSpec,
                    partial_below: float = 0.5) -> dict[str, Result]:
    """Cloud-mask and composite each fetched stack (failed fetches pass through)."""
    from eoembed.composite import make_composite

    out: dict[str, Result] = {}
    for req in requests:
        arrays, rec = fetched[req.roi_id]
        rec = dict(rec)
        if rec["status"] == "failed":
            out[req.roi_id] = ({}, rec)
            continue
        t0 = time.perf_counter()
        try:
            stack = Stack.from_arrays(arrays, rec["meta"])
            roi_mask = stack.grid.inside_mask(req.spatial.geometry())
            comp = make_composite(stack, sensor, req.temporal, roi_mask)
            c_arrays, meta = comp.to_arrays()
            vf = meta["valid_fraction"]
            if max(vf) == 0:
                raise EoembedError(f"no valid (cloud-free) pixel in any of {len(vf)} frame(s) "
                                   f"from {len(stack.times)} scene(s)")
            partial = min(vf) == 0 or float(np.mean(vf)) < partial_below
            rec.update(status="partial" if partial else "ok", stage="composite", meta=meta,
                       valid_fraction=vf, scenes=sorted({s for day in stack.scenes for s in day}))
            if partial:
                rec["error"] = (f"valid-pixel fraction per frame {[round(v, 3) for v in vf]} "
                                f"(partial below {partial_below} or an empty frame)")
            out[req.roi_id] = (c_arrays, rec)
        except Exception as exc:  # noqa: BLE001
            log.warning("composite %s failed: %s", req.roi_id, exc)
            rec.update(failed("composite", exc))
            rec.pop("meta", None)
            out[req.roi_id] = ({}, rec)
        rec.setdefault("timings", {})["composite_s"] = time.perf_counter() - t0
    return out


def sha256_array(arr: np.ndarray) -> str:
    """sha256 of the float32 little-endian bytes of ``arr``."""
    return hashlib.sha256(np.ascontiguousarray(arr, dtype="<f4").tobytes()).hexdigest()


def embed_items(embedder: Embedder, composites: dict[str, Result], requests: list[Request], *,
                pooling: str = "mean", grid: bool = False, cell_m: float | None = None,
                batch_size: int = 16, extra: dict[str, dict[str, Result]] | None = None,
                progress: Progress | None = None, precision: str = "fp32",
                streams: int | str = "auto") -> dict[str, Result]:
    """Embed composites in batches (pooled, and grid when asked and supported).

    The model must already be loaded. A batch that raises is retried item by item so one
    bad input fails alone.

    Args:
        composites: Per ROI, the composite of the model's primary input.
        extra: For multi-modal models: modality -> per ROI composite of that input (on the same
            grid). An item whose extra input failed fails with that input's error.
        precision: ``"fp32"`` (default), or ``"bf16"`` / ``"fp16"``: forward passes under
            ``torch.autocast`` with that dtype (faster on GPUs; slightly different embeddings).
        streams: Batches embedded at once on CPU (:func:`eoembed.streams.cpu_streams`; ``"auto"``:
            one per torch thread for models that allow it). Same batches, same embeddings.
    """
    out: dict[str, Result] = {}
    todo: list[tuple[Request, Composite | dict[str, Composite], dict]] = []
    primary = embedder.inputs()[0].modality if hasattr(embedder, "inputs") else None
    for req in requests:
        arrays, rec = composites[req.roi_id]
        rec = {k: v for k, v in rec.items() if k != "meta"} | {"model": embedder.card.id}
        bad = [(m, r[req.roi_id][1]) for m, r in (extra or {}).items() if r[req.roi_id][1]["status"] == "failed"]
        if rec["status"] != "failed" and bad:
            rec.update({k: bad[0][1][k] for k in ("status", "stage", "error")}, failed_input=bad[0][0])
        if rec["status"] == "failed":
            out[req.roi_id] = ({}, rec)
            continue
        comp = Composite.from_arrays(arrays, composites[req.roi_id][1]["meta"])
        if extra:
            comp = {primary: comp} | {m: Composite.from_arrays(r[req.roi_id][0], r[req.roi_id][1]["meta"])
                                      for m, r in extra.items()}
        todo.append((req, comp, rec))

    want_grid = grid and "grid" in embedder.card.outputs
    pooled_spec = OutputSpec.pooled(pooling)
    grid_spec = OutputSpec.grid(cell_m)

    def run(batch: list[tuple[Request, Composite, dict]]) -> None:
        comps = [c for _, c, _ in batch]
        t0 = time.perf_counter()
        if want_grid:
            pooled, grids = embedder.embed_outputs(comps, [pooled_spec, grid_spec])
        else:
            (pooled,), grids = embedder.embed_outputs(comps, [pooled_spec]), [None] * len(batch)
        per_item = (time.perf_counter() - t0) / len(batch)
        infos = embedder.grid_info if want_grid else [None] * len(batch)
        preps = getattr(embedder, "prep_used", []) or [None] * len(batch)
        for (req, comp, rec), vec, g, info, prep in zip(batch, pooled, grids, infos, preps):
            vec = np.asarray(vec, dtype=np.float32)
            if vec.shape != (embedder_dims(embedder),) or not np.all(np.isfinite(vec)):
                raise ModelError(f"model {embedder.card.id} returned shape {vec.shape} "
                                 f"(finite: {bool(np.all(np.isfinite(vec)))}) for {req.roi_id}")
            arrays = {"pooled": vec}
            shapes = {"pooled": list(vec.shape)}
            if g is not None:
                arrays["grid"] = np.asarray(g, dtype=np.float32)
                shapes["grid"] = list(arrays["grid"].shape)
            ref = comp[primary] if isinstance(comp, dict) else comp
            rec.update(stage="done", grid=(info[0] if info else ref.grid).to_dict(), output_shape=shapes,
                       input_grid=ref.grid.to_dict(), input_prep=prep,
                       cell_px=info[1] if info else None,
                       embedding_sha256=sha256_array(vec),
                       geometry_wkt=req.spatial.geometry().wkt,
                       centroid=list(req.spatial.centroid()))
            rec.setdefault("timings", {})["embed_s"] = per_item
            out[req.roi_id] = (arrays, rec)

    if progress is not None and len(todo) < len(requests):  # failed before embedding
        progress.update(len(requests) - len(todo), failed=len(requests) - len(todo))

    def one_batch(batch: list[tuple[Request, Composite, dict]]) -> None:
        try:
            with _inference_mode(), _autocast(precision, embedder):
                run(batch)
        except Exception as exc:  # noqa: BLE001
            if len(batch) == 1:
                req, _, rec = batch[0]
                log.warning("embed %s failed: %s", req.roi_id, exc)
                out[req.roi_id] = ({}, {**rec, **failed("embed", exc)})
                return
            log.warning("embed batch of %d failed (%s); retrying item by item", len(batch), exc)
            for item in batch:
                try:
                    with _inference_mode(), _autocast(precision, embedder):
                        run([item])
                except Exception as exc1:  # noqa: BLE001
                    out[item[0].roi_id] = ({}, {**item[2], **failed("embed", exc1)})

    def done(start: int, batch: list) -> None:
        log.info("embed %s: %d/%d items", embedder.card.id, min(start + batch_size, len(todo)), len(todo))
        if progress is not None:
            progress.update(len(batch), failed=sum(r.roi_id not in out or out[r.roi_id][1]["status"] == "failed"
                                                   for r, _, _ in batch))

    starts = list(range(0, len(todo), batch_size))
    n_streams = min(cpu_streams(embedder, streams), len(starts))
    if n_streams > 1:  # batches side by side, torch's threads shared out (eoembed.streams)
        from concurrent.futures import ThreadPoolExecutor

        with torch_threads(torch_thread_count() // n_streams), \
                ThreadPoolExecutor(n_streams, thread_name_prefix="eoembed-stream") as pool:
            futures = [pool.submit(one_batch, todo[s:s + batch_size]) for s in starts]
            for s, fut in zip(starts, futures):
                fut.result()
                done(s, todo[s:s + batch_size])
    else:
        for s in starts:
            one_batch(todo[s:s + batch_size])
            done(s, todo[s:s + batch_size])
    return {req.roi_id: out[req.roi_id] for req in requests}


def _inference_mode():
    """``torch.inference_mode()`` (no autograd bookkeeping) when torch is installed."""
    try:
        import torch
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return torch.inference_mode()


def _autocast(precision: str, embedder: Embedder):
    """``torch.autocast`` on the embedder's device type for ``bf16``/``fp16``; nothing for fp32."""
    import contextlib

    if precision in (None, "fp32"):
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ConfigError(f"precision={precision!r} is invalid: allowed 'fp32', 'bf16' or 'fp16'")
    import torch

    device = str(getattr(embedder, "device", "cpu"))
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                          dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def embedder_dims(embedder: Embedder) -> int:
    """The embedding size the embedder reports (may depend on options)."""
    return int(embedder.describe().get("dims", embedder.card.dims))


def location_items(embedder: Embedder, requests: list[Request]) -> dict[str, Result]:
    """Embed each request's centre with a location encoder (``card.kind == "location"``).

    Nothing is fetched: the input is the ROI centroid as ``[lat, lon]`` degrees. Pooled output only.
    """
    out: dict[str, Result] = {}
    t0 = time.perf_counter()
    latlon = np.array([[lat, lon] for lon, lat in (r.spatial.centroid() for r in requests)], dtype=np.float64)
    base = [{"roi_id": r.roi_id, "request": r.to_dict(), "request_key": r.key(), "model": embedder.card.id}
            for r in requests]
    try:
        vecs = embedder.forward_locations(latlon) if requests else np.zeros((0, embedder.card.dims))
    except Exception as exc:  # noqa: BLE001 - every item records the failure
        return {r.roi_id: ({}, {**b, **failed("embed", exc)}) for r, b in zip(requests, base)}
    per_item = (time.perf_counter() - t0) / max(1, len(requests))
    for req, rec, vec, ll in zip(requests, base, vecs, latlon):
        vec = np.asarray(vec, dtype=np.float32)
        rec.update(status="ok", stage="done", error=None, input_latlon=ll.tolist(),
                   output_shape={"pooled": list(vec.shape)}, embedding_sha256=sha256_array(vec),
                   geometry_wkt=req.spatial.geometry().wkt, centroid=list(req.spatial.centroid()),
                   timings={"embed_s": per_item})
        out[req.roi_id] = ({"pooled": vec}, rec)
    return out
