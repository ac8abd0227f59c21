"""Stable ROI chunks: a ROI's chunk depends on its id and a frozen chunk count only.

A ROI goes to bucket ``sha256(roi_id) mod n_chunks``; within a chunk, members are sorted by
id. The chunk count is computed once from ``chunk_size`` and the table length and then
*frozen* in a small file (``results/chunks.json``), so appending rows, re-sorting the table
or growing it past an ``auto`` step never moves a ROI to another chunk: only the chunks that
gain or lose a ROI change (and only their jobs rerun). Changing ``chunk_size`` in the config
re-chunks on purpose (the file records the value it was frozen for).

Chunks are only as balanced as a hash: sizes scatter around ``n_rois / n_chunks`` and, for a
table much larger than the one the count was frozen for, grow with it (a warning says when the
mean size passes four times the configured one; delete the file to re-chunk).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from eoembed.errors import ConfigError

log = logging.getLogger(__name__)

SCHEME = "sha256-mod-v1"
#: Where the workflow freezes its chunk count (relative to the working directory).
CHUNKS_FILE = "results/chunks.json"
AUTO_MAX_CHUNKS = 1000
AUTO_MIN_CHUNK = 16


def resolve_chunk_size(chunk_size: int | str, n_rows: int) -> int:
    """The chunk size to use: an integer as given, or for ``"auto"`` ``max(16, ceil(n / 1000))``."""
    if chunk_size == "auto":
        return max(AUTO_MIN_CHUNK, -(-n_rows // AUTO_MAX_CHUNKS))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r} is invalid: allowed 'auto' or an integer >= 1")
    return chunk_size


def chunk_count(chunk_size: int | str, n_rows: int) -> int:
    """How many chunks a table of ``n_rows`` gets when the count is first frozen."""
    return max(1, -(-n_rows // resolve_chunk_size(chunk_size, n_rows)))


def bucket(roi_id: str, n_chunks: int) -> int:
    """The chunk index of ``roi_id``: a function of the id and ``n_chunks`` only."""
    return int.from_bytes(hashlib.sha256(roi_id.encode("utf-8")).digest()[:8], "big") % n_chunks


def chunk_name(index: int, n_chunks: int) -> str:
    """``c00000``-style name (wide enough for ``n_chunks``)."""
    return f"c{index:0{max(5, len(str(n_chunks - 1)))}d}"


def chunk_members(roi_ids: list[str], n_chunks: int) -> dict[str, list[str]]:
    """Map chunk name -> sorted ROI ids, for the non-empty chunks, by chunk name."""
    out: dict[int, list[str]] = {}
    for rid in roi_ids:
        out.setdefault(bucket(rid, n_chunks), []).append(rid)
    return {chunk_name(i, n_chunks): sorted(out[i]) for i in sorted(out)}


def frozen_chunk_count(chunk_size: int | str, n_rows: int, path: str | Path = CHUNKS_FILE, *,
                       write: bool = True) -> int:
    """The chunk count recorded in ``path`` for this ``chunk_size``, else a new one.

    A new count is written to ``path`` (atomically) when ``write`` is true: the workflow's main
    process writes it, dry runs and cluster jobs only read it.
    """
    path = Path(path)
    recorded: dict[str, Any] | None = None
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"chunk file {path} is unreadable ({exc}): delete it to re-chunk "
                              f"(every chunk is then recomputed)") from None
    if recorded and recorded.get("scheme") == SCHEME and recorded.get("chunk_size") == chunk_size:
        n = int(recorded["n_chunks"])
        target = resolve_chunk_size(chunk_size, n_rows)
        if n_rows > 4 * target * n:
            log.warning("%d ROIs in %d frozen chunks (%s): mean chunk %.0f ROIs, over 4x chunk_size %d; "
                        "delete %s to re-chunk", n_rows, n, path, n_rows / n, target, path)
        return n
    n = chunk_count(chunk_size, n_rows)
    if recorded:
        log.warning("chunk_size changed from %r to %r: re-chunking into %d chunks (every chunk reruns)",
                    recorded.get("chunk_size"), chunk_size, n)
    if write:
        from eoembed.chunkio import write_text_atomic

        write_text_atomic(path, json.dumps({"scheme": SCHEME, "chunk_size": chunk_size, "n_chunks": n,
                                            "n_rois_when_frozen": n_rows}, indent=1) + "\n")
    return n


def workflow_chunks(roi_ids: list[str], chunk_size: int | str, path: str | Path = CHUNKS_FILE, *,
                    write: bool = True) -> dict[str, list[str]]:
    """The workflow's chunks: frozen count (:func:`frozen_chunk_count`) + hash buckets."""
    return chunk_members(roi_ids, frozen_chunk_count(chunk_size, len(roi_ids), path, write=write))
