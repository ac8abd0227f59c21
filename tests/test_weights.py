"""Tests of eoembed.weights: lookup, download (real local HTTP server), verification, loading."""

from __future__ import annotations

import base64
import builtins
import hashlib
import http.server
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from eoembed.errors import WeightsError
from eoembed.models.base import WeightsFile
from eoembed.weights import (default_cache_dir, format_status, load_state_dict, resolve, status,
                             verify_sha256)

PAYLOAD = bytes(range(256)) * 1000  # 256 kB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class Evil:
    """Unpickling this would create ``marker`` (arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


# ------------------------------------------------------------------ local HTTP server


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            srv.auth.append(self.headers.get("Authorization"))
            k = len(srv.requests)
        if k <= srv.fail_first:
            if srv.mode == "503":
                self.send_error(503, "busy")
                return
            if srv.mode == "truncate":
                self.send_response(200)
                self.send_header("Content-Length", str(len(srv.body)))
                self.end_headers()
                self.wfile.write(srv.body[: len(srv.body) // 3])
                self.close_connection = True
                return
            if srv.mode == "slow":
                time.sleep(0.4)
        if srv.status != 200:
            self.send_error(srv.status)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(srv.body)))
        self.end_headers()
        self.wfile.write(srv.body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.requests, srv.auth = [], []
    srv.body, srv.mode, srv.fail_first, srv.status = PAYLOAD, "", 0, 200
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/files/model.pt"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def wfile(url: str, data: bytes = PAYLOAD, name: str = "model.pt", size: int | None = None) -> WeightsFile:
    return WeightsFile(name=name, url=url, sha256=sha(data), licence="MIT", size_bytes=size)


# ------------------------------------------------------------------ lookup and download


def test_default_cache_dir_is_user_cache():
    d = default_cache_dir()
    assert d.name == "weights" and d.parent.name.lower() == "eoembed"


def test_download_success_writes_verified_cache_file(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="eoembed.weights")
    wf = wfile(server.url, size=len(PAYLOAD))
    path = resolve("demo", wf, cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert path == (tmp_path / "demo" / "model.pt").absolute()
    assert sha(path.read_bytes()) == sha(PAYLOAD)
    assert files_under(tmp_path) == [path]  # no temp file left behind
    assert str(len(PAYLOAD)) in caplog.text  # progress/size logged
    # second call uses the cache, no new request
    assert resolve("demo", wf, cache_dir=tmp_path, allow_download=True) == path
    assert len(server.requests) == 1


def test_download_retries_503_then_succeeds(server, tmp_path):
    server.mode, server.fail_first = "503", 2
    path = resolve("demo", wfile(server.url), cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert len(server.requests) == 3
    assert path.read_bytes() == PAYLOAD


def test_download_retries_truncated_response(server, tmp_path):
    server.mode, server.fail_first = "truncate", 1
    path = resolve("demo", wfile(server.url), cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert len(server.requests) == 2
    assert path.read_bytes() == PAYLOAD


def test_download_retries_timeout(server, tmp_path):
    server.mode, server.fail_first = "slow", 1
    path = resolve("demo", wfile(server.url), cache_dir=tmp_path, allow_download=True,
                   backoff_s=0.01, timeout_s=0.1)
    assert len(server.requests) == 2
    assert path.read_bytes() == PAYLOAD


def test_download_gives_up_after_retries(server, tmp_path):
    server.mode, server.fail_first = "503", 100
    with pytest.raises(WeightsError, match="3 attempt"):
        resolve("demo", wfile(server.url), cache_dir=tmp_path, allow_download=True,
                retries=2, backoff_s=0.01)
    assert len(server.requests) == 3
    assert files_under(tmp_path) == []


def test_download_404_is_not_retried(server, tmp_path):
    server.status = 404
    with pytest.raises(WeightsError, match="404"):
        resolve("demo", wfile(server.url), cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert len(server.requests) == 1
    assert files_under(tmp_path) == []


def test_wrong_content_download_is_rejected_and_leaves_nothing(server, tmp_path):
    wf = wfile(server.url, data=b"the published weights")  # server sends PAYLOAD instead
    with pytest.raises(WeightsError) as err:
        resolve("demo", wf, cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert sha(b"the published weights") in str(err.value) and sha(PAYLOAD) in str(err.value)
    assert files_under(tmp_path) == []
    assert len(server.requests) == 1  # content errors are not retried


def test_missing_without_download_never_contacts_server(server, tmp_path):
    wf = wfile(server.url)
    with pytest.raises(WeightsError) as err:
        resolve("demo", wf, cache_dir=tmp_path / "cache", allow_download=False)
    msg = str(err.value)
    expected_path = str((tmp_path / "cache" / "demo" / "model.pt").absolute())
    assert "'demo'" in msg and server.url in msg and expected_path in msg
    assert sha(PAYLOAD) in msg and "models.demo.weights.model.pt" in msg
    assert "weights.allow_download: true" in msg
    assert server.requests == []


def test_url_query_and_credentials_not_logged(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="eoembed.weights")
    server.mode, server.fail_first = "503", 1
    url = server.url.replace("http://", "http://user:hunter2@") + "?token=SECRET123"
    resolve("demo", wfile(url), cache_dir=tmp_path, allow_download=True, backoff_s=0.01)
    assert server.requests[-1].endswith("?token=SECRET123")  # the token was used ...
    expected_auth = "Basic " + base64.b64encode(b"user:hunter2").decode()
    assert server.auth == [expected_auth, expected_auth]  # ... and the credentials
    assert "SECRET123" not in caplog.text and "hunter2" not in caplog.text  # ... never logged
    assert "/files/model.pt" in caplog.text


def test_explicit_path_wins_and_must_exist(server, tmp_path):
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(PAYLOAD)
    cached = tmp_path / "cache" / "demo" / "model.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    wf = wfile(server.url)
    assert resolve("demo", wf, explicit_path=explicit, cache_dir=tmp_path / "cache") == explicit
    assert resolve("demo", wf, cache_dir=tmp_path / "cache") == cached.absolute()
    with pytest.raises(WeightsError, match="nope.pt"):
        resolve("demo", wf, explicit_path=tmp_path / "nope.pt", cache_dir=tmp_path / "cache",
                allow_download=True)
    assert server.requests == []


def test_weights_name_cannot_escape_cache(tmp_path):
    wf = WeightsFile("../x.pt", "http://127.0.0.1:9/x.pt", sha(b"x"), "MIT")
    with pytest.raises(WeightsError, match="plain file name"):
        resolve("demo", wf, cache_dir=tmp_path)


# ------------------------------------------------------------------ verification and loading


def test_load_plain_state_dict_and_prefix(tmp_path):
    state = {"encoder.w": torch.arange(6.0).reshape(2, 3), "encoder.b": torch.ones(2),
             "head.w": torch.zeros(1)}
    path = tmp_path / "sd.pt"
    torch.save(state, path)
    digest = sha(path.read_bytes())
    loaded = load_state_dict(path, digest)
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
    enc = load_state_dict(path, digest.upper(), prefix="encoder.")
    assert set(enc) == {"w", "b"} and torch.equal(enc["w"], state["encoder.w"])
    with pytest.raises(WeightsError, match="prefix"):
        load_state_dict(path, digest, prefix="decoder.")


def test_code_executing_pickle_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "x": Evil(marker)}, path)
    # the fixture is live: an unsafe load does execute it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_state_dict(path, sha(b"something else"))
    assert not marker.exists()
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict(path, sha(path.read_bytes()))
    assert not marker.exists()


def test_sha_mismatch_names_file_expected_actual(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    wrong = sha(b"abd")
    with pytest.raises(WeightsError) as err:
        verify_sha256(path, wrong)
    assert str(path) in str(err.value) and wrong in str(err.value) and sha(b"abc") in str(err.value)
    assert verify_sha256(path, sha(b"abc")) == sha(b"abc")
    with pytest.raises(WeightsError, match="64 hex"):
        verify_sha256(path, "deadbeef")


def test_sha_cache_keyed_by_size_and_mtime(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"AAAA")
    assert verify_sha256(path, sha(b"AAAA"))
    st = path.stat()
    # same size and mtime: the cached digest is reused (the file is not hashed again)
    path.write_bytes(b"BBBB")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert verify_sha256(path, sha(b"AAAA")) == sha(b"AAAA")
    # a changed mtime invalidates the cache
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(WeightsError, match="mismatch"):
        verify_sha256(path, sha(b"AAAA"))
    assert verify_sha256(path, sha(b"BBBB"))


def test_truncated_file_fails_cleanly(tmp_path):
    full = tmp_path / "full.pt"
    torch.save({"w": torch.randn(64, 64)}, full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.pt"):
        load_state_dict(cut, sha(data[: len(data) // 2]))


@pytest.mark.parametrize("obj", [
    {"w": torch.ones(2), "note": "hello"},          # str value
    [torch.ones(2), torch.zeros(2)],                 # list
    {"state_dict": {"w": torch.ones(2)}, "epoch": 3},  # training checkpoint (nested)
    {},                                              # empty
    {1: torch.ones(1)},                              # non-str key
])
def test_non_state_dict_rejected(tmp_path, obj):
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    with pytest.raises(WeightsError, match="not a plain state dict"):
        load_state_dict(path, sha(path.read_bytes()))


def test_pickled_module_rejected(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(WeightsError, match="not a plain state dict"):
        load_state_dict(path, sha(path.read_bytes()))


def test_safetensors(tmp_path):
    path = tmp_path / "w.safetensors"
    try:
        from safetensors.torch import save_file
    except ImportError:
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        with pytest.raises(WeightsError, match="pip install safetensors"):
            load_state_dict(path, sha(path.read_bytes()))
        return
    save_file({"w": torch.ones(3)}, str(path))
    assert torch.equal(load_state_dict(path, sha(path.read_bytes()))["w"], torch.ones(3))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(WeightsError, match="w.safetensors"):
        load_state_dict(path, sha(path.read_bytes()))


# ------------------------------------------------------------------ status


def test_status_and_format(tmp_path):
    cache = tmp_path / "cache"
    good = cache / "a" / "a.pt"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"good")
    bad = tmp_path / "explicit.pt"
    bad.write_bytes(b"tampered")
    entries = [
        ("a", WeightsFile("a.pt", "https://example.org/a.pt?sig=XYZ", sha(b"good"), "MIT", 4), None),
        ("b", WeightsFile("b.pt", "https://example.org/b.pt", sha(b"orig"), "MIT"), bad),
        ("c", WeightsFile("c.pt", "https://example.org/c.pt", sha(b"c"), "MIT"), None),
    ]
    rows = status(entries, cache_dir=cache)
    assert [(r["model"], r["present"], r["sha_ok"]) for r in rows] == [
        ("a", True, True), ("b", True, False), ("c", False, None)]
    assert rows[0]["path"] == str(good.absolute()) and rows[0]["size"] == 4
    assert rows[1]["path"] == str(bad.absolute()) and rows[1]["size"] == len(b"tampered")
    assert rows[2]["path"] == str((cache / "c" / "c.pt").absolute()) and rows[2]["size"] is None
    assert rows[0]["url"] == "https://example.org/a.pt" and rows[2]["sha256"] == sha(b"c")
    text = format_status(rows)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "FILE", "STATE", "SIZE"]
    assert "ok" in lines[1] and "MISMATCH" in lines[2] and "missing" in lines[3]
    assert "1 ok, 1 missing, 1 bad" in text and "https://example.org/c.pt" in text
    assert "XYZ" not in text
