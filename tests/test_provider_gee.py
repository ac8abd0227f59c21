"""The ``gee`` provider: the real earthengine-api client against a local REST stand-in."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from eoembed.chunkio import write_chunk
from eoembed.errors import ConfigError, NoDataError, TransientProviderError
from eoembed.grid import grid_for
from eoembed.providers import get_provider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import ee_standin  # noqa: F401

pytest.importorskip("ee")
from eoembed.providers.gee import GeeProvider, tiles  # noqa: E402
from standins.earthengine import pixel_value  # noqa: E402

TOKEN = "ya29.STANDIN-SECRET-oauth-token"
ROI = PointBuffer(5.62, 52.55, 120)  # 24 x 24 px at 10 m
SENSOR = SensorSpec(bands=("B02", "B04", "B8A"), cloudy_pct=35, frames=2)
WINDOW = TemporalSpec.year(2023)


def _provider(standin, **kw) -> GeeProvider:
    import google.oauth2.credentials

    creds = google.oauth2.credentials.Credentials(token=TOKEN)
    return GeeProvider(project="standin-project", url=standin.url, credentials=creds,
                       backoff_s=0.01, **kw)


def _expected(grid, nbands: int) -> np.ndarray:
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    return np.stack([pixel_value(i, xx, yy) for i in range(nbands)])


def test_request_names_collection_dates_cloud_bands_and_grid(ee_standin):
    ee_standin.requests.clear()
    ee_standin.values = [[["20230302T104021_T31UFU", "20230310T104021_T31UFU"], ["20230915T104021_T31UFU"]]]
    provider = _provider(ee_standin, tile_px=16)
    grid = grid_for(ROI, 10)
    stack = provider.fetch(ROI, WINDOW, SENSOR, grid)
    assert stack.data.shape == (2, 3, grid.height, grid.width) == (2, 3, 24, 24)
    np.testing.assert_array_equal(stack.data[0], _expected(grid, 3))  # 4 tiles stitched on pixel edges
    np.testing.assert_array_equal(stack.data[1], _expected(grid, 3))
    assert (stack.qa == 4).all() and stack.scenes[1] == ["20230915T104021_T31UFU"]
    bodies = ee_standin.pixel_requests()
    assert len(bodies) == 2 * len(tiles(24, 24, 16)) == 8
    corners = set()
    for body in bodies:
        g = body["grid"]
        assert g["crsCode"] == grid.crs == "EPSG:32631"
        assert body["bandIds"] == ["B02", "B04", "B8A"] and body["fileFormat"] == "NPY"
        a = g["affineTransform"]
        assert (a["scaleX"], a["scaleY"], a["shearX"], a["shearY"]) == (10, -10, 0, 0)
        col = (a["translateX"] - grid.transform[2]) / 10
        row = (a["translateY"] - grid.transform[5]) / -10
        corners.add((row, col, g["dimensions"]["height"], g["dimensions"]["width"]))
        expr = json.dumps(body["expression"])
        for needed in ("COPERNICUS/S2_SR_HARMONIZED", "CLOUDY_PIXEL_PERCENTAGE", "SCL", '"B2"', '"B4"', '"B8A"'):
            assert needed in expr, needed
        assert "35" in expr
    assert corners == {(0, 0, 16, 16), (0, 16, 16, 8), (16, 0, 8, 16), (16, 16, 8, 8)}
    exprs = sorted(json.dumps(b["expression"]) for b in bodies)
    assert any("2023-01-01" in e and "2023-07-02" in e for e in exprs)  # frame 1 of 2
    assert any("2023-07-02" in e and "2024-01-01" in e for e in exprs)  # frame 2 of 2
    auth = {r["authorization"] for r in ee_standin.requests if r["method"] == "POST"}
    assert auth == {f"Bearer {TOKEN}"}
    assert provider.stats()["tiles"] == 8 and provider.stats()["requests"] == 9
    assert provider.stats()["bytes"] == 2 * 3 * 24 * 24 * 4


def test_429_then_200_ends_ok_after_retry(ee_standin):
    ee_standin.values = [[["a"]]]
    ee_standin.fail_next(429)
    provider = _provider(ee_standin)
    sensor = SensorSpec(bands=("B03",))
    stack = provider.fetch(ROI, WINDOW, sensor, grid_for(ROI, 10))
    np.testing.assert_array_equal(stack.data[0], _expected(grid_for(ROI, 10), 1))
    assert provider.stats()["retries"] == 1 and provider.stats()["requests"] == 3
    ee_standin.values = [[["a"]]]
    ee_standin.fail_next(503, 503, 503)
    with pytest.raises(TransientProviderError, match="computePixels"):
        _provider(ee_standin, retries=2).fetch(ROI, WINDOW, sensor, grid_for(ROI, 10))


def test_no_credentials_in_outputs_or_logs(ee_standin, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    ee_standin.values = [[["a", "b"]], [[]]]
    ee_standin.fail_next(429)
    provider = _provider(ee_standin, mask="cloud_score_plus")
    stack = provider.fetch(ROI, WINDOW, SensorSpec(bands=("B02",)), grid_for(ROI, 10))
    assert "GOOGLE/CLOUD_SCORE_PLUS" in json.dumps(ee_standin.pixel_requests()[-1]["expression"])
    arrays, meta = stack.to_arrays()
    write_chunk(tmp_path / "chunk.npz", {"r1": arrays}, {"r1": {"status": "ok", "meta": meta}},
                {"provider": provider.describe(), "stats": provider.stats()})
    (tmp_path / "describe.json").write_text(json.dumps(provider.describe()))
    with pytest.raises(NoDataError):
        provider.fetch(ROI, WINDOW, SensorSpec(bands=("B02",)), grid_for(ROI, 10))
    texts = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert texts and all(TOKEN.encode() not in t for t in texts)
    assert TOKEN not in caplog.text and "retry" in caplog.text


def test_config_errors():
    with pytest.raises(ConfigError, match="mask='x'"):
        GeeProvider(project="p", mask="x")
    with pytest.raises(ConfigError, match="tile_px=8"):
        GeeProvider(project="p", tile_px=8)
    desc = get_provider("gee", project="p", service_account_key="/secret/key.json").describe()
    assert desc["auth"] == "service_account_key" and "key.json" not in json.dumps(desc)
    with pytest.raises(ConfigError, match="credentials could not be loaded"):
        GeeProvider(project="p", service_account_key="/nonexistent/key.json").initialise()


def test_input_cache_key_holds_frames_and_compositing_for_gee_only(tmp_path):
    """Earth Engine composites server side: its cached stacks depend on frames and compositing."""
    from eoembed.items import Request
    from eoembed.pipeline import fetch_cache_path
    from eoembed.providers.local import LocalProvider

    req = Request("r1", ROI, WINDOW)
    median1 = SensorSpec(bands=("B02",), frames=1)
    mosaic12 = SensorSpec(bands=("B02",), frames=12, composite="mosaic")
    gee = GeeProvider(project="p", credentials=object())
    assert fetch_cache_path(tmp_path, req, median1, gee) != fetch_cache_path(tmp_path, req, mosaic12, gee)
    local = LocalProvider(tmp_path / "index.json")
    assert fetch_cache_path(tmp_path, req, median1, local) == fetch_cache_path(tmp_path, req, mosaic12, local)


def test_rois_are_fetched_concurrently_within_max_concurrency(ee_standin):
    """Small ROIs (one request each) are fetched ``max_concurrency`` at a time by default
    (``io_workers``), never more requests in flight than that; one at a time with io_workers 1.
    Same pixels either way."""
    from eoembed.items import Request
    from eoembed.pipeline import fetch_items

    sensor = SensorSpec(bands=("B02", "B04", "B8A"), cloudy_pct=35, frames=1)
    reqs = [Request(f"r{i}", PointBuffer(5.62 + 0.01 * i, 52.55, 60), WINDOW) for i in range(8)]
    runs = {}
    ee_standin.latency_s = 0.05  # every answer takes 50 ms: requests in flight overlap if sent together
    try:
        for workers in (1, None):  # None: the provider's default
            ee_standin.values = [[["20230302T104021_T31UFU"]]] * len(reqs)
            ee_standin.max_in_flight = 0
            provider = _provider(ee_standin, max_concurrency=3)
            runs[workers] = (fetch_items(reqs, sensor, provider, retries=0, workers=workers),
                             ee_standin.max_in_flight)
    finally:
        ee_standin.latency_s = 0.0
    assert runs[1][1] == 1 and runs[None][1] == 3
    for req in reqs:
        (one, rec1), (many, rec3) = runs[1][0][req.roi_id], runs[None][0][req.roi_id]
        assert rec1["status"] == rec3["status"] == "ok"
        np.testing.assert_array_equal(one["data"], many["data"])
        np.testing.assert_array_equal(one["data"][0], _expected(grid_for(req.spatial, 10), 3))
