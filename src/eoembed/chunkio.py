"""Chunk files: the items of one ROI chunk for one stage, in a single ``.npz``.

Layout: for item ``roi`` and array ``name`` the member ``"<roi>/<name>"``; one member
``"__meta__"`` holds UTF-8 JSON with the chunk metadata and every item's record
(status, stage, error, timings and the item's own metadata). Files are written to a
temporary name and renamed, so a reader never sees a half-written chunk.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

META_KEY = "__meta__"


def atomic_path(path: str | os.PathLike, suffix: str = "") -> tuple[Path, Path]:
    """Return ``(final, temporary)`` paths in the same directory (created if needed).

    Temporaries of the same output left by a writer that was killed mid-write (SIGKILL) are
    removed first: only one job writes a given output.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp*"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    return final, Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def commit(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, give it the usual permissions (mkstemp makes 0600) and rename it onto ``final``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)


def publish_once(tmp: Path, final: Path) -> bool:
    """Like :func:`commit`, but never replaces an existing ``final``: ``tmp`` is hard-linked onto
    it, which fails atomically when it exists, so of several jobs racing to publish the same
    (deterministic) file exactly one wins. ``tmp`` is left for the caller to remove.

    Returns:
        True when this call published ``final``; False when it already existed.
    """
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: rename unless someone was first
        if final.exists():
            return False
        os.replace(tmp, final)
    return True


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is committed onto ``path``.

    On an exception the temporary is removed and ``path`` is left as it was::

        with atomic_output("out.tsv", ".tsv") as tmp:
            df.to_csv(tmp, sep="\t")
    """
    final, tmp = atomic_path(path, suffix)
    try:
        yield tmp
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str, suffix: str = "") -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename); returns the path."""
    with atomic_output(path, suffix) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_chunk(path: str | os.PathLike, items: dict[str, dict[str, np.ndarray]],
                records: dict[str, dict[str, Any]], meta: dict[str, Any] | None = None) -> None:
    """Atomically write a chunk file.

    Args:
        path: Destination ``.npz``.
        items: Per ROI id, the arrays of that item (failed items may have none).
        records: Per ROI id, a JSON-ready record (status, stage, error, ...).
        meta: Chunk-level metadata (stage, spec, versions).
    """
    payload = {"chunk": meta or {}, "records": records}
    arrays: dict[str, np.ndarray] = {
        META_KEY: np.frombuffer(json.dumps(payload, default=str).encode(), dtype=np.uint8)}
    for roi, named in items.items():
        for name, arr in named.items():
            arrays[f"{roi}/{name}"] = np.asarray(arr)
    with atomic_output(path, ".npz") as tmp:
        _savez_fast(tmp, arrays)


def _savez_fast(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with zlib level 1 instead of 6: the same ``.npz`` (``np.load``
    reads it), 5.7x faster to write for a 512-item composite chunk (0.67 s vs 3.82 s, 85 MB of
    float32) for 12 % more bytes (25.1 vs 22.4 MB); chunk files are written once per job."""
    import zipfile

    from numpy.lib import format as npy

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                         allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                npy.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def read_chunk(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]],
                                                 dict[str, dict[str, Any]], dict[str, Any]]:
    """Read a chunk file; returns ``(items, records, chunk_meta)``."""
    items: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as npz:
        payload = json.loads(npz[META_KEY].tobytes().decode())
        for key in npz.files:
            if key == META_KEY:
                continue
            roi, name = key.split("/", 1)
            items.setdefault(roi, {})[name] = npz[key]
    return items, payload["records"], payload["chunk"]


def read_chunk_records(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Only the records and chunk metadata of a chunk file (no array is read); ``(records, meta)``."""
    with np.load(path, allow_pickle=False) as npz:
        payload = json.loads(npz[META_KEY].tobytes().decode())
    return payload["records"], payload["chunk"]
