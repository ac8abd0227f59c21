"""Local stand-ins for remote imagery services, as importable helpers and pytest fixtures.

* :class:`~standins.cog_server.CogServer`: Range-capable HTTP file server (+ Planetary
  Computer SAS token endpoint, + proxy-style requests for Blob-Storage-looking hrefs).
* :class:`~standins.stac_api.RustacServer`: a real STAC API (``rustac serve``) over items.
* :func:`~standins.landsat.write_landsat`: Landsat-C2-L2-like scenes (uint16 SR COGs +
  ``QA_PIXEL`` bit flags at chosen pixels) around a ROI grid, with an ``index.json``.
* :class:`~standins.earthengine.EarthEngineStandin`: the Earth Engine REST endpoints the
  ``earthengine-api`` client calls, answering ``computePixels`` with NPY arrays.

Every server binds 127.0.0.1 on an ephemeral port and is stopped by its fixture.
Use in a test module with ``from standins import cog_server, s2_imagery, stac_api  # noqa: F401``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from standins.cog_server import TEST_SAS_TOKEN, CogServer, Hit
from standins.landsat import LandsatScene, write_landsat
from standins.stac_api import RustacServer, rewrite_hrefs, rustac_executable

__all__ = ["CogServer", "Hit", "LandsatScene", "RustacServer", "TEST_SAS_TOKEN", "cog_server", "ee_standin",
           "rewrite_hrefs", "rustac_executable", "s2_imagery", "stac_api", "write_landsat"]

#: one generated site (UTM 31N), 48 x 48 10 m pixels, 3 dates in 2023
SITE = ("nl_a", 5.62, 52.55)


@pytest.fixture(scope="module")
def s2_imagery(tmp_path_factory) -> Path:
    """``index.json`` of GENERATED Sentinel-2-like COGs (bands + SCL), relative hrefs."""
    from eoembed.providers.sample import generate

    return generate(tmp_path_factory.mktemp("s2cogs"), [SITE], year=2023, dates_per_year=3,
                    tile_px=48)


@pytest.fixture(scope="module")
def cog_server(s2_imagery):
    """A :class:`CogServer` serving the folder of :func:`s2_imagery`."""
    server = CogServer(s2_imagery.parent)
    yield server
    server.stop()


@pytest.fixture
def stac_api(tmp_path):
    """Factory: ``stac_api(items) -> RustacServer``; every server started is stopped after."""
    if rustac_executable() is None:
        pytest.skip("rustac CLI not installed (pip install rustac)")
    started: list[RustacServer] = []

    def start(items) -> RustacServer:
        server = RustacServer(items, tmp_path / f"stac{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def ee_standin():
    """An :class:`EarthEngineStandin` (needs the earthengine-api package for its documents)."""
    pytest.importorskip("ee")
    from standins.earthengine import EarthEngineStandin

    server = EarthEngineStandin()
    yield server
    server.stop()
