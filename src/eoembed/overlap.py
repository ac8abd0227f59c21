"""In-process fetch -> composite -> embed, block by block, with the model kept busy (the API).

Requests are fetched in blocks. In the background mode a producer thread fetches the next
blocks (the fetch itself uses the provider's I/O thread pool) and hands them over through a
bounded queue while the calling thread embeds; each block is composited by whichever side has
time: by the producer when blocks are already waiting (the model is the bottleneck), else by
the calling thread. In the inline mode the calling thread fetches and composites each block
itself between batches (bounded memory, no thread): faster where the model's forward pass
already keeps every core busy, since a fetch thread then only takes cores from it.

``background="measure"`` starts inline and, after the first batch, moves the fetch to a thread
when the forward pass left cores idle (:func:`saturates`): measured on 2 cores,
``galileo_nano`` keeps both busy (1.97 cores; 1,024 local chips: 110.7 items/s inline vs 93.3
with the thread), MOSAIKS 1.46 and ``spectral`` 1.0 (demo ROIs: MOSAIKS 22.5 ROIs/s with the
thread vs 16-17.5 inline). With CPU streams (:mod:`eoembed.streams`: a few single-threaded
batches at once) the fetch always runs in the thread, which then also composites every block,
and the first block is one batch per stream so the streams start early (``galileo_nano``, the
1,024 chips: 113-117 items/s with 2 streams vs 98-109 with one batch at a time,
``benchmarks/fetch_engine.py``).

Compositing is a pure function of the fetched stacks, so where it runs changes no result.
Embedding batches are formed exactly as :func:`eoembed.pipeline.embed_items` forms them over
the whole list (``batch_size`` consecutive non-failed items), so embeddings are identical to
the stage-by-stage run in every mode.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from eoembed.errors import EoembedError
from eoembed.items import Request
from eoembed.models.base import Embedder
from eoembed.pipeline import Result, composite_items, embed_items, fetch_items, io_workers
from eoembed.progress import Progress
from eoembed.streams import cpu_streams

__all__ = ["background_helps", "embed_overlapped", "saturates", "usable_cores"]

log = logging.getLogger(__name__)

_DONE = object()
SATURATED = 0.9  # of the usable cores: the forward pass leaves no core for a fetch thread


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a SLURM allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def saturates(cpu_s: float, wall_s: float, cores: int) -> bool:
    """Whether embedding used at least :data:`SATURATED` of ``cores`` (process CPU seconds over
    wall seconds), i.e. a fetch thread would only take cores from the model."""
    return wall_s > 0 and cpu_s / wall_s >= SATURATED * cores


def background_helps(embedder: Embedder, provider, workers: int | None = None,
                     streams: int | str = "auto") -> bool | None:
    """Whether fetching in a background thread helps, where it is known before any batch runs.

    ``True`` when the forward pass leaves CPU free for it: the model runs on an accelerator,
    torch uses fewer threads than this process may use cores, or the provider's reads wait on
    the network (several I/O workers, e.g. STAC COGs); or when batches run in single-threaded
    streams (:mod:`eoembed.streams`: no torch thread waits at a barrier for a core the fetch
    thread holds, so the two share the cores). ``None`` otherwise (a CPU model on local
    files): :func:`embed_overlapped` then measures the first batch (``background="measure"``).
    """
    if not str(getattr(embedder, "device", "cpu")).startswith("cpu"):
        return True
    if io_workers(provider, workers) > 1:
        return True
    if cpu_streams(embedder, streams) > 1:
        return True
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # weight-free numpy models: one thread
        threads = 1
    return True if threads < usable_cores() else None


class _Feed:
    """The blocks ``(requests, results, composited?)`` in order: fetched in the calling thread
    until :meth:`to_background`, then by a producer thread."""

    def __init__(self, requests: list[Request], block: int, sensor, provider, fetch_kw: dict[str, Any],
                 partial_below: float, depth: int, first: int | None = None,
                 composite_ahead: bool = False) -> None:
        self.requests, self.sensor, self.provider = requests, sensor, provider
        self.composite_ahead = composite_ahead  # the producer always composites (the model's cores are busy)
        self.fetch_kw, self.partial_below = fetch_kw, partial_below
        self.handoff: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.background = False
        self.producer: threading.Thread | None = None
        first = min(first or block, block)  # a smaller first block: the model starts sooner
        # (start, stop) of the blocks not yet fetched
        self.starts = [(s, s + (first if s == 0 else block)) for s in [0, *range(first, len(requests), block)]
                       if s < len(requests)]
        self.fetched = False

    def _fetch(self, part: list[Request]) -> dict[str, Result]:
        return fetch_items(part, self.sensor, self.provider, **self.fetch_kw)

    def to_background(self) -> None:
        """Fetch the blocks not yet fetched in a producer thread (now, if nothing was fetched yet:
        while the model loads)."""
        self.background = True
        if not self.fetched:
            self._spawn(self.starts)

    def _spawn(self, starts: list[tuple[int, int]]) -> None:
        if self.producer is None and starts:
            self.producer = threading.Thread(target=self._produce, args=(list(starts),), name="eoembed-fetch",
                                             daemon=True)
            self.producer.start()

    def __iter__(self):
        while self.starts and not self.background:
            a, b = self.starts.pop(0)
            self.fetched = True
            part = self.requests[a:b]
            yield part, self._fetch(part), False
        if not self.starts:
            return
        self._spawn(self.starts)
        while (got := self.handoff.get()) is not _DONE:
            if isinstance(got, BaseException):
                raise got
            yield got

    def _produce(self, starts: list[tuple[int, int]]) -> None:
        try:
            for a, b in starts:
                if self.stop.is_set():
                    return
                part = self.requests[a:b]
                fetched = self._fetch(part)
                if self.composite_ahead or self.handoff.qsize() > 0:  # the model is behind: composite here
                    comps = composite_items(fetched, part, self.sensor, partial_below=self.partial_below)
                    self.handoff.put((part, comps, True))
                else:  # the model waits for input: it composites this block itself
                    self.handoff.put((part, fetched, False))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self.handoff.put(exc)
        finally:
            self.handoff.put(_DONE)

    def close(self) -> None:
        self.stop.set()
        while self.producer is not None and self.producer.is_alive():  # unblock a full queue
            try:
                self.handoff.get(timeout=0.05)
            except queue.Empty:
                pass


def embed_overlapped(embedder: Embedder, requests: list[Request], sensor, provider, *,
                     fetch_kw: dict[str, Any], partial_below: float, embed_kw: dict[str, Any],
                     batch_size: int = 16, block: int | None = None, depth: int = 2,
                     progress: Progress | None = None,
                     background: bool | str = True) -> tuple[dict[str, Result], dict[str, Result]]:
    """Embed ``requests`` block by block (``block`` requests; at most ``depth`` blocks waiting).

    ``background``: ``True`` fetches ahead in a thread from the start, ``False`` in this thread
    throughout, ``"measure"`` decides after the first batch (:func:`saturates`). Returns
    ``(composites, results)`` per ROI id. A model that fails to load fails every item at
    ``embed`` with its error (after the composites are done, as in the stage-by-stage run).
    """
    if background not in (True, False, "measure"):
        raise ValueError(f"background={background!r}: allowed True, False or 'measure'")
    streams = cpu_streams(embedder, embed_kw.get("streams", "auto"))
    per_flush = batch_size * streams * (4 if streams > 1 else 1)  # with streams: a few batches each
    # with streams, the producer composites every block (no stream waits while this thread does)
    # and the first block is one batch per stream (the streams start sooner)
    feed = _Feed(requests, block or max(per_flush, 4 * int(fetch_kw.get("workers") or 4)), sensor,
                 provider, fetch_kw, partial_below, depth,
                 first=batch_size * streams if streams > 1 else None, composite_ahead=streams > 1)
    if background is True:
        feed.to_background()
    measure = background == "measure"
    load_error = None
    comps: dict[str, Result] = {}
    results: dict[str, Result] = {}
    pending: list[Request] = []
    n_ok = 0  # non-failed requests in pending

    def ok_of(reqs: list[Request]) -> list[int]:
        return [i for i, r in enumerate(reqs) if comps[r.roi_id][1]["status"] != "failed"]

    def flush(whole_batches: bool = False) -> None:
        """Embed the pending requests (``whole_batches``: only up to the last whole batch of
        non-failed ones, so batches stay those of the whole list)."""
        nonlocal measure, n_ok
        cut = len(pending)
        if whole_batches:
            ok = ok_of(pending)
            whole = len(ok) // batch_size * batch_size
            cut = ok[whole - 1] + 1 if whole else 0
        now = pending[:cut]
        if not now:
            return
        cpu, wall = time.process_time(), time.perf_counter()
        results.update(embed_items(embedder, comps, now, batch_size=batch_size, **embed_kw))
        if measure:  # once: did the forward pass leave cores idle?
            measure = False
            cpu, wall, cores = time.process_time() - cpu, time.perf_counter() - wall, usable_cores()
            if not saturates(cpu, wall, cores):
                feed.to_background()
            log.info("embed %s used %.2f of %d cores: fetching %s", embedder.card.id, cpu / max(wall, 1e-9),
                     cores, "in a background thread" if feed.background else "between batches")
        if progress is not None:
            progress.update(len(now), failed=sum(results[r.roi_id][1]["status"] == "failed" for r in now))
        del pending[:cut]
        n_ok = len(ok_of(pending))

    try:
        try:
            embedder.load()
        except EoembedError as exc:
            load_error = exc
        first = True
        for part, handed, composited in feed:
            comps.update(handed if composited else
                         composite_items(handed, part, sensor, partial_below=partial_below))
            if load_error is not None:
                continue
            for req in part:
                pending.append(req)
                n_ok += comps[req.roi_id][1]["status"] != "failed"
                if n_ok == per_flush:
                    flush()
            if first and streams > 1:  # the (smaller) first block: start the streams on it
                flush(whole_batches=True)
            first = False
        if load_error is not None:
            return comps, {r.roi_id: ({}, {**comps[r.roi_id][1], "status": "failed", "stage": "embed",
                                           "error": f"{type(load_error).__name__}: {load_error}"})
                           for r in requests}
        flush()
        return comps, {r.roi_id: results[r.roi_id] for r in requests}
    finally:
        feed.close()
