"""An HTTP server implementing the Earth Engine REST endpoints the ``earthengine-api`` client
calls, so the real client runs offline against loopback.

Endpoints: the discovery document (the client package's own
``ee/tests/cloud_api_discovery_document.json`` with ``rootUrl``/``baseUrl`` rewritten to this
server), the ``algorithms`` listing (``ee/tests/algorithms.json``), ``value:compute`` (answers
:attr:`EarthEngineStandin.values`, in order) and ``image:computePixels`` (answers an
``np.save``d structured array, one field per requested band, whose value at each pixel is
:func:`pixel_value` of the band index and the pixel-centre coordinates of the request grid).
Every request body is recorded; :meth:`fail_next` injects HTTP errors (e.g. 429). A subprocess
(a workflow job) authenticates with :meth:`EarthEngineStandin.credentials_file`.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

__all__ = ["EarthEngineStandin", "init_client", "pixel_value"]


def _ee_tests_dir() -> Path:
    import ee

    return Path(ee.__file__).parent / "tests"


def pixel_value(band_index: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The value the stand-in returns for band ``band_index`` at pixel centre ``(x, y)``."""
    return (1000.0 * (band_index + 1) + np.mod(np.floor(x / 10.0), 97) + 3 * np.mod(np.floor(y / 10.0), 89)
            ).astype(np.float32)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: "EarthEngineStandin"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        return

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _handle(self, method: str) -> None:
        s = self.standin
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with s.lock:
            s.requests.append({"method": method, "path": path, "body": body,
                               "authorization": self.headers.get("Authorization", "")})
            fail = s.failures.pop(0) if s.failures and path.endswith(":computePixels") else None
        if path.endswith(("value:compute", "image:computePixels")):
            with s.lock:
                s.in_flight += 1
                s.max_in_flight = max(s.max_in_flight, s.in_flight)
            try:
                time.sleep(s.latency_s)  # Earth Engine's computation and network time
                self._answer(s, path, body, fail)
            finally:
                with s.lock:
                    s.in_flight -= 1
            return
        self._answer(s, path, body, fail)

    def _answer(self, s: "EarthEngineStandin", path: str, body, fail) -> None:
        if fail is not None:
            self._json(fail, {"error": {"code": fail, "status": "RESOURCE_EXHAUSTED" if fail == 429
                                        else "UNAVAILABLE",
                                        "message": "Too many concurrent aggregations." if fail == 429
                                        else "Service unavailable, try again."}})
            return
        if "$discovery" in path:
            self._send(200, s.discovery, "application/json")
        elif path.endswith("/algorithms"):
            self._send(200, s.algorithms, "application/json")
        elif path.endswith("value:compute"):
            with s.lock:
                result = s.values.pop(0) if s.values else None
            self._json(200, {"result": result})
        elif path.endswith("image:computePixels"):
            self._send(200, s.pixels(body), "application/octet-stream")

        else:
            self._json(404, {"error": {"code": 404, "message": f"no stand-in for {path}",
                                       "status": "NOT_FOUND"}})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class EarthEngineStandin:
    """The stand-in server on ``127.0.0.1:<ephemeral port>``.

    Attributes:
        url: Base URL to pass as ``ee.Initialize(url=...)``.
        requests: Every request: method, path, parsed JSON body, Authorization header.
        values: Results handed out by successive ``value:compute`` calls.
        failures: HTTP statuses for the next ``computePixels`` calls.
        latency_s: Seconds every ``value:compute`` / ``computePixels`` answer waits.
        max_in_flight: Most such requests being answered at once so far.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.values: list = []
        self.failures: list[int] = []
        self.latency_s = 0.0
        self.in_flight = self.max_in_flight = 0
        handler = type("Handler", (_Handler,), {"standin": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        doc = json.loads((_ee_tests_dir() / "cloud_api_discovery_document.json").read_text())
        doc["rootUrl"] = doc["baseUrl"] = self.url + "/"
        self.discovery = json.dumps(doc).encode()
        self.algorithms = (_ee_tests_dir() / "algorithms.json").read_bytes()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def credentials_file(path: Path, token: str = "standin-adc-token") -> Path:
        """Write application-default credentials (``authorized_user``) holding an access token
        valid until 2099, so no refresh is ever attempted; point ``GOOGLE_APPLICATION_CREDENTIALS``
        at it."""
        path.write_text(json.dumps({"type": "authorized_user", "client_id": "standin", "client_secret": "standin",
                                    "refresh_token": "standin-refresh", "token": token,
                                    "expiry": "2099-01-01T00:00:00Z"}))
        return path

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def pixel_requests(self) -> list[dict]:
        """Bodies of the ``computePixels`` requests answered so far (including failed ones)."""
        with self.lock:
            return [r["body"] for r in self.requests if r["path"].endswith(":computePixels")]

    @staticmethod
    def pixels(body: dict) -> bytes:
        grid = body["grid"]
        a = grid["affineTransform"]
        w, h = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
        bands = body.get("bandIds") or ["b0"]
        xs = a["translateX"] + a["scaleX"] * (np.arange(w) + 0.5)
        ys = a["translateY"] + a["scaleY"] * (np.arange(h) + 0.5)
        xx, yy = np.meshgrid(xs, ys)
        arr = np.zeros((h, w), dtype=[(b, "<f4") for b in bands])
        for i, b in enumerate(bands):
            arr[b] = pixel_value(i, xx, yy)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def init_client(standin: EarthEngineStandin, token: str = "standin-oauth-token", project: str = "standin-project"):
    """Test credentials for the real client (``google.oauth2.credentials.Credentials``)."""
    import google.oauth2.credentials

    return google.oauth2.credentials.Credentials(token=token)
