"""Streaming, verified, atomic downloads over http(s) (or file://), with retries.

A download goes to a temporary file beside its destination, is hashed while streaming, checked
against the expected sha256 (and size) and only then renamed into place: a failed or wrong
download never leaves a file behind. URLs are logged without credentials or query strings.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from eoembed.checksums import CHUNK, expected_hex, remember_sha256
from eoembed.chunkio import atomic_path, commit
from eoembed.errors import WeightsError

__all__ = ["download", "redact_url"]

# downloads report on the weights log channel, where users (and the tests) listen for them
log = logging.getLogger("eoembed.weights")

_SCHEMES = ("http", "https", "file")
_USER_AGENT = "eoembed-weights/1"


class _ShortRead(OSError):
    """The server closed the connection before sending the announced number of bytes."""


def redact_url(url: str) -> str:
    """``url`` without user info, query string or fragment (safe to log or print)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, (TimeoutError, ConnectionError, socket.timeout))
    return isinstance(exc, (TimeoutError, ConnectionError, http.client.IncompleteRead, _ShortRead))


def _request(url: str) -> urllib.request.Request:
    """A GET request; credentials in the URL (``user:pass@host``) become a Basic auth header."""
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": _USER_AGENT}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return urllib.request.Request(url, headers=headers)


def _fetch_once(url: str, tmp: Path, label: str, size_hint: int | None, timeout_s: float,
                progress: bool) -> tuple[str, int]:
    """Stream ``url`` into ``tmp``; return (sha256 hex, number of bytes)."""
    req = _request(url)
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(tmp, "wb") as out:
        announced = resp.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        total = announced or size_hint
        step = max(total // 10, CHUNK) if total else 64 * CHUNK
        next_log = step
        while block := resp.read(CHUNK):
            out.write(block)
            h.update(block)
            n += len(block)
            if progress and n >= next_log:
                shown = f"{n}/{total} bytes ({100 * n // total}%)" if total else f"{n} bytes"
                log.info("downloading %s: %s", label, shown)
                next_log += step
    if announced is not None and n != announced:
        raise _ShortRead(f"got {n} of {announced} bytes")
    return h.hexdigest(), n


def download(url: str, dest: str | os.PathLike, expected_sha256: str, *, size_bytes: int | None = None,
             retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its sha256 (and size, if given).

    Transient failures (HTTP 5xx/408/429, timeouts, dropped connections) are retried
    ``retries`` times, waiting ``backoff_s * 2**attempt`` seconds in between.

    Returns:
        ``dest`` as an absolute path.

    Raises:
        WeightsError: Permanent HTTP error, retries exhausted, or wrong size/sha256;
            nothing is left at ``dest`` (or beside it) in these cases.
    """
    want = expected_hex(expected_sha256, f"download of {redact_url(url)}")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise WeightsError(f"weights url scheme={scheme!r} is invalid: allowed {list(_SCHEMES)}")
    label = redact_url(url)
    dest = Path(dest).absolute()
    log.info("downloading weights %s -> %s%s", label, dest,
             f" ({size_bytes} bytes)" if size_bytes else "")
    for attempt in range(retries + 1):
        final, tmp = atomic_path(dest, ".part")
        try:
            try:
                digest, n = _fetch_once(url, tmp, label, size_bytes, timeout_s, progress)
            except Exception as exc:  # noqa: BLE001 - classified just below
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()
                if not _is_transient(exc):
                    raise WeightsError(f"download of {label} failed: {exc}") from exc
                if attempt >= retries:
                    raise WeightsError(f"download of {label} failed after {retries + 1} attempt(s): "
                                       f"{exc}") from exc
                wait = backoff_s * 2 ** attempt
                log.warning("download of %s failed (%s); retry %d/%d in %.1f s",
                            label, exc, attempt + 1, retries, wait)
                time.sleep(wait)
                continue
            if size_bytes is not None and n != size_bytes:
                raise WeightsError(f"download of {label}: size {n} bytes, expected {size_bytes}; "
                                   "nothing was saved")
            if digest != want:
                raise WeightsError(f"download of {label}: sha256 mismatch, expected {want}, actual "
                                   f"{digest}; nothing was saved")
            commit(tmp, final)
            remember_sha256(final, digest)
            log.info("downloaded %s: %d bytes, sha256 ok -> %s", label, n, final)
            return final
        finally:
            tmp.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
