"""In-process fetch -> composite -> embed with the model kept busy (used by the API).

A producer thread fetches the requests block by block (the fetch itself uses the provider's
I/O thread pool) and hands them over through a bounded queue, while the calling thread loads
the model and embeds. Each block is composited by whichever side has time: by the producer
when blocks are already waiting (the model is the bottleneck), else by the calling thread
(the model waits for input: a light model on local files). Compositing is a pure function of
the fetched stacks, so where it runs changes no result. Embedding batches are formed exactly as
:func:`eoembed.pipeline.embed_items` forms them over the whole list (``batch_size``
consecutive non-failed items), so embeddings are identical to the stage-by-stage run.

With ``background=False`` the same blocks are fetched and composited in the calling thread,
between batches (bounded memory, no thread): faster where the model's forward pass already
keeps every core busy (a CPU model with as many torch threads as cores), where a fetch thread
only takes cores from it (see :func:`background_helps`).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from eoembed.errors import EoembedError
from eoembed.items import Request
from eoembed.models.base import Embedder
from eoembed.pipeline import Result, composite_items, embed_items, fetch_items
from eoembed.progress import Progress

__all__ = ["background_helps", "embed_overlapped"]

_DONE = object()


def background_helps(embedder: Embedder, provider, workers: int | None = None) -> bool:
    """Whether fetching in a background thread is expected to speed the run up.

    Yes when the forward pass leaves CPU free for it: the model runs on an accelerator, torch
    uses fewer threads than this process may use cores, or the provider's reads wait on the
    network (several I/O workers, e.g. STAC COGs). No for a CPU model whose torch threads
    already take every core, reading local files: there the fetch thread takes cores from the
    model's parallel regions (measured on 2 cores, ``galileo_nano``, 1,024 local chips: 0.66-0.70
    of the bare forward with the thread, 0.77-0.79 without; ``benchmarks/fetch_engine.py``).
    """
    import os

    from eoembed.pipeline import io_workers

    if not str(getattr(embedder, "device", "cpu")).startswith("cpu"):
        return True
    if io_workers(provider, workers) > 1:
        return True
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # weight-free numpy models: one thread
        threads = 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return threads < cores


def embed_overlapped(embedder: Embedder, requests: list[Request], sensor, provider, *,
                     fetch_kw: dict[str, Any], partial_below: float, embed_kw: dict[str, Any],
                     batch_size: int = 16, block: int | None = None, depth: int = 2,
                     progress: Progress | None = None,
                     background: bool = True) -> tuple[dict[str, Result], dict[str, Result]]:
    """Fetch/composite blocks of ``block`` requests ahead of the model (at most ``depth`` blocks
    waiting) in a background thread, or block by block in this thread (``background=False``).
    Returns ``(composites, results)`` per ROI id.

    A model that fails to load fails every item at ``embed`` with its error (after the
    composites are done, as in the stage-by-stage run).
    """
    block = block or max(batch_size, 4 * int(fetch_kw.get("workers") or 4))
    starts = range(0, len(requests), block)
    if not background:  # block after block in this thread: fetch, composite, embed
        blocks = ((requests[s:s + block], fetch_items(requests[s:s + block], sensor, provider, **fetch_kw),
                   False) for s in starts)
        return _consume(embedder, requests, blocks, sensor, partial_below, embed_kw, batch_size, progress)

    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for s in starts:
                if stop.is_set():
                    return
                part = requests[s:s + block]
                fetched = fetch_items(part, sensor, provider, **fetch_kw)
                if handoff.qsize() > 0:  # the model is behind: composite here
                    handoff.put((part, composite_items(fetched, part, sensor, partial_below=partial_below), True))
                else:  # the model waits for input: it composites this block itself
                    handoff.put((part, fetched, False))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            handoff.put(exc)
        finally:
            handoff.put(_DONE)

    def received():
        while (got := handoff.get()) is not _DONE:
            if isinstance(got, BaseException):
                raise got
            yield got

    producer = threading.Thread(target=produce, name="eoembed-fetch", daemon=True)
    producer.start()
    try:
        return _consume(embedder, requests, received(), sensor, partial_below, embed_kw, batch_size, progress)
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get(timeout=0.05)
            except queue.Empty:
                pass


def _consume(embedder: Embedder, requests: list[Request], blocks, sensor, partial_below: float,
             embed_kw: dict[str, Any], batch_size: int,
             progress: Progress | None) -> tuple[dict[str, Result], dict[str, Result]]:
    """Load the model, then embed the blocks ``(requests, results, composited?)`` as they come,
    in batches of ``batch_size`` non-failed items."""
    load_error = None
    try:
        embedder.load()
    except EoembedError as exc:
        load_error = exc
    comps: dict[str, Result] = {}
    results: dict[str, Result] = {}
    pending: list[Request] = []

    def flush() -> None:
        if pending:
            results.update(embed_items(embedder, comps, pending, batch_size=batch_size, **embed_kw))
            if progress is not None:
                progress.update(len(pending), failed=sum(results[r.roi_id][1]["status"] == "failed"
                                                         for r in pending))
            pending.clear()

    for part, handed, composited in blocks:
        comps.update(handed if composited else composite_items(handed, part, sensor, partial_below=partial_below))
        if load_error is not None:
            continue
        for req in part:
            pending.append(req)
            if sum(comps[r.roi_id][1]["status"] != "failed" for r in pending) == batch_size:
                flush()
    if load_error is not None:
        return comps, {r.roi_id: ({}, {**comps[r.roi_id][1], "status": "failed", "stage": "embed",
                                       "error": f"{type(load_error).__name__}: {load_error}"})
                       for r in requests}
    flush()
    return comps, {r.roi_id: results[r.roi_id] for r in requests}
