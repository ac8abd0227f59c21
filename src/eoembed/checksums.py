"""sha256 of files, checked before anything is loaded; cached in-process by (path, size, mtime)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

from eoembed.errors import WeightsError

__all__ = ["expected_hex", "file_sha256", "remember_sha256", "verify_sha256"]

CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# (absolute path, size, mtime_ns) -> sha256 hex; shared by every caller in this process.
_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def expected_hex(expected: str, where: str) -> str:
    value = (expected or "").strip().lower()
    if not _HEX64.match(value):
        raise WeightsError(f"{where}: expected sha256={expected!r} is invalid: allowed 64 hex digits")
    return value


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file, read in chunks; cached in-process by (path, size, mtime).

    Raises:
        WeightsError: The file does not exist or cannot be read.
    """
    p = Path(path).absolute()
    try:
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        with _HASHES_LOCK:
            if key in _HASHES:
                return _HASHES[key]
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {p}: {exc}") from exc
    digest = h.hexdigest()
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


def remember_sha256(path: Path, digest: str) -> None:
    st = path.stat()
    with _HASHES_LOCK:
        _HASHES[(str(path.absolute()), st.st_size, st.st_mtime_ns)] = digest


def verify_sha256(path: str | os.PathLike, expected: str) -> str:
    """Check that a file's sha256 equals ``expected``; return the digest.

    Raises:
        WeightsError: Mismatch (names the file, expected and actual digest), unreadable file,
            or an invalid ``expected`` value.
    """
    want = expected_hex(expected, f"weights file {path}")
    actual = file_sha256(path)
    if actual != want:
        raise WeightsError(f"sha256 mismatch for weights file {Path(path).absolute()}: expected {want}, "
                           f"actual {actual}. The file is corrupt or not the published one; "
                           "delete it and download it again.")
    return actual
