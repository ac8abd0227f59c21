"""Concurrent forward passes on CPU ("streams"): a few batches at once, each on fewer torch threads.

On a CPU, torch splits every operator of one forward pass across its intra-op threads; between
operators (the Python of the model, small operators) the threads wait for each other, so a
small model can use its cores less well than the same batches run side by side, one thread
each. Measured on 2 cores, ``galileo_nano`` (64 x 64 px, batch 32), ``embed_items`` on 1,024
composites in memory, alternating in one process: 124-133 items/s one batch at a time on 2
threads, 148-152 with two batches at once on 1 thread each (the bare forward alone varies more
between runs: ``benchmarks/fetch_engine.py`` prints both ways). A single-threaded stream also
leaves no thread spinning at a barrier, so a fetch thread beside it shares the cores instead
of stalling them.

Streams are used only for models that declare their :meth:`~eoembed.models.base.Embedder.forward`
safe to call from several threads at once (``concurrent_forward``; a test shows the embeddings
bitwise equal to one stream) and only on CPU. Batches are formed exactly as without streams
(``batch_size`` consecutive items), so only where they run changes.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

__all__ = ["MAX_STREAMS", "cpu_streams", "torch_thread_count", "torch_threads"]

#: Streams at most (each gets ``torch threads // streams`` threads).
MAX_STREAMS = 4

_threads_lock = threading.Lock()


def torch_thread_count() -> int:
    """torch's intra-op threads (1 where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return 1
    return torch.get_num_threads()


def cpu_streams(embedder: Any, streams: int | str | None = "auto") -> int:
    """How many batches run at once for ``embedder``.

    ``"auto"`` (or ``None``): on CPU, for a model with ``concurrent_forward``, one stream per
    torch thread up to :data:`MAX_STREAMS` (so 2 on 2 cores); 1 otherwise. An integer asks for
    that many (still 1 where the model or the device does not allow it).
    """
    from eoembed.errors import ConfigError

    if streams in (None, "auto"):
        want = None
    else:
        try:
            want = int(streams)
        except (TypeError, ValueError):
            want = 0
        if isinstance(streams, bool) or want < 1 or str(want) != str(streams).strip():
            raise ConfigError(f"streams={streams!r} is invalid: allowed 'auto' or a positive integer")
    if not getattr(embedder, "concurrent_forward", False):
        return 1
    if not str(getattr(embedder, "device", "cpu")).startswith("cpu"):
        return 1
    threads = torch_thread_count()
    if want is None:
        return max(1, min(threads, MAX_STREAMS))
    return want


@contextlib.contextmanager
def torch_threads(n: int):
    """Set torch's intra-op threads to ``n`` inside the block, restoring the previous value."""
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        with _threads_lock:
            torch.set_num_threads(before)
