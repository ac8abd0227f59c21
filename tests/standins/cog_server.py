"""A Range-capable HTTP file server on loopback, standing in for a cloud object store.

It serves the files under one folder (GDAL reads COGs from it with HTTP Range requests),
answers the Planetary Computer SAS token endpoint (``/sas/v1/token/<account>/<container>``)
with a test token, and also accepts proxy-style absolute request targets
(``GET http://acct.blob.core.windows.net/container/x.tif``) so hrefs that look like Azure
Blob Storage URLs can be served when GDAL is told to use this server as its HTTP proxy.
Every request is recorded (method, host, path, query, Range) for the tests to assert on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["CogServer", "Hit", "TEST_SAS_TOKEN"]

#: The query string the token endpoint hands out (looks like an Azure SAS token).
TEST_SAS_TOKEN = "st=2030-01-01T00%3A00%3A00Z&se=2030-01-02T00%3A00%3A00Z&sp=rl&sig=STANDINSECRETSIG"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Hit:
    """One request the server answered."""

    method: str
    host: str
    path: str
    query: str
    range: str | None
    status: int
    nbytes: int


@dataclass
class _State:
    root: Path
    hits: list[Hit] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    latency_s: float = 0.0  # added before every answer (a remote server's round trip)
    in_flight: int = 0  # requests being answered now, and the most at once since clear()
    max_in_flight: int = 0


class _Handler(BaseHTTPRequestHandler):
    server_version = "eoembed-standin-cog/1"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold every answer ~40 ms on loopback (object stores set TCP_NODELAY)
    disable_nagle_algorithm = True
    state: _State  # set on the subclass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep stderr quiet
        return

    def _record(self, host: str, path: str, query: str, status: int, nbytes: int) -> None:
        with self.state.lock:
            self.state.hits.append(Hit(self.command, host, path, query, self.headers.get("Range"),
                                       status, nbytes))

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _target(self) -> tuple[str, str, str]:
        parts = urlsplit(self.path)  # absolute-form (proxy) or origin-form
        host = parts.netloc or self.headers.get("Host", "")
        return host, unquote(parts.path), parts.query

    def _serve(self, head: bool) -> None:
        if self.state.latency_s:
            time.sleep(self.state.latency_s)
        host, path, query = self._target()
        with self.state.lock:
            fail = self.state.fail_next.pop(0) if self.state.fail_next else None
        if fail is not None:
            self._record(host, path, query, fail, 0)
            self._send(fail, b"injected failure", "text/plain", head=head)
            return
        if path.startswith("/sas/v1/token/"):
            expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
            body = json.dumps({"msft:expiry": expiry, "token": TEST_SAS_TOKEN}).encode()
            self._record(host, path, query, 200, len(body))
            self._send(200, body, "application/json", head=head)
            return
        rel = path.lstrip("/")
        if ".blob.core.windows.net" in host:  # http://<account>.blob.../<container>/<blob>
            rel = rel.split("/", 1)[1] if "/" in rel else ""
        file = (self.state.root / rel).resolve()
        if self.state.root not in file.parents or not file.is_file():
            self._record(host, path, query, 404, 0)
            self._send(404, b"not found", "text/plain", head=head)
            return
        size = file.stat().st_size
        m = _RANGE.match(self.headers.get("Range", "") or "")
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or end < start:
                self._record(host, path, query, 416, 0)
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"}, head)
                return
            with open(file, "rb") as fh:
                fh.seek(start)
                body = fh.read(end - start + 1)
            self._record(host, path, query, 206, len(body))
            self._send(206, body, "image/tiff", {"Content-Range": f"bytes {start}-{end}/{size}"},
                       head)
            return
        body = b"" if head else file.read_bytes()
        self._record(host, path, query, 200, len(body))
        self.send_response(200)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _counted(self, head: bool) -> None:
        with self.state.lock:
            self.state.in_flight += 1
            self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
        try:
            self._serve(head)
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def do_GET(self) -> None:  # noqa: N802
        self._counted(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._counted(head=True)


class CogServer:
    """Serve ``root`` over HTTP on ``127.0.0.1:<ephemeral port>`` until :meth:`stop`.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:40123``.
        hits: Requests answered so far.
    """

    def __init__(self, root: str | os.PathLike, latency_s: float = 0.0) -> None:
        self._state = _State(Path(root).resolve(), latency_s=latency_s)
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> list[Hit]:
        with self._state.lock:
            return list(self._state.hits)

    @property
    def bytes_served(self) -> int:
        return sum(h.nbytes for h in self.hits)

    def clear(self) -> None:
        with self._state.lock:
            self._state.hits.clear()
            self._state.max_in_flight = self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests answered at once since the server started or :meth:`clear`."""
        with self._state.lock:
            return self._state.max_in_flight

    def fail_next(self, *statuses: int) -> None:
        """Answer the next ``len(statuses)`` requests with these HTTP error statuses."""
        with self._state.lock:
            self._state.fail_next.extend(statuses)

    @property
    def sas_url(self) -> str:
        """The token endpoint, for ``PC_SDK_SAS_URL``."""
        return f"{self.url}/sas/v1/token"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "CogServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
