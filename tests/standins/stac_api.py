"""A real STAC API on loopback: ``rustac serve`` (memory backend) over items the test wrote.

Also: :func:`rewrite_hrefs` turns a local ItemCollection (relative asset hrefs, as written
by :func:`eoembed.providers.sample.generate`) into one whose assets point at a COG server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["RustacServer", "rewrite_hrefs", "rustac_executable"]


def rustac_executable() -> str | None:
    """The ``rustac`` CLI of this Python environment (pip package ``rustac``), or ``None``."""
    return shutil.which("rustac", path=str(Path(sys.executable).parent)) or shutil.which("rustac")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rewrite_hrefs(index: str | os.PathLike, base_url: str,
                  edit: Callable[[dict], dict | None] | None = None) -> list[dict]:
    """Items of a local ItemCollection with asset hrefs made absolute under ``base_url``.

    Args:
        index: ItemCollection JSON whose asset hrefs are relative to its folder.
        base_url: URL that serves that folder (e.g. ``CogServer.url``).
        edit: Optional per-item hook; returns the (possibly changed) item or ``None`` to drop it.
    """
    doc = json.loads(Path(index).read_text())
    out = []
    for feature in doc["features"]:
        for asset in feature["assets"].values():
            asset["href"] = f"{base_url.rstrip('/')}/{asset['href'].lstrip('./')}"
        if edit is not None:
            feature = edit(feature)
        if feature is not None:
            out.append(feature)
    return out


class RustacServer:
    """``rustac serve`` on ``127.0.0.1:<free port>`` over ``items``; stopped by :meth:`stop`.

    Args:
        items: STAC item dicts (their collections are created by the server).
        workdir: Folder for the ItemCollection file handed to the server.
        timeout_s: How long to wait for the server to answer before giving up.
    """

    def __init__(self, items: Iterable[dict], workdir: str | os.PathLike, timeout_s: float = 20.0) -> None:
        exe = rustac_executable()
        if exe is None:
            raise RuntimeError("the rustac CLI is not installed (pip install rustac)")
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / "stac_items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": list(items)}))
        self.log_path = work / "rustac.log"
        for attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            with open(self.log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [exe, "serve", "--create-collections", "--addr", f"127.0.0.1:{self.port}", str(path)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._wait(timeout_s):
                return
            self.stop()
        raise RuntimeError(f"rustac serve did not start: {self.log_path.read_text()[-2000:]}")

    def _wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def __enter__(self) -> "RustacServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
