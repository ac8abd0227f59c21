"""fetch_items with a thread pool gives what one-at-a-time gives; progress lines count items."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from eoembed.errors import ConfigError
from eoembed.items import Request
from eoembed.pipeline import fetch_items, io_workers
from eoembed.progress import Progress
from eoembed.providers.local import LocalProvider
from eoembed.providers.sample import generate
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import cog_server, s2_imagery, stac_api  # noqa: F401

SITES = [("nl", 5.62, 52.55), ("fr", 2.35, 48.85)]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("cat"), SITES, 2023, dates_per_year=2, tile_px=96, seed=11)


def _requests() -> list[Request]:
    year = TemporalSpec.year(2023)
    reqs = [Request(f"r{i}", PointBuffer(lon + 0.001 * i, lat, 120), year)
            for i, (_, lon, lat) in enumerate(SITES * 4)]
    return reqs + [Request("nowhere", PointBuffer(-60.0, -10.0, 120), year)]  # no scene: fails


def test_thread_pool_gives_the_same_stacks_in_request_order(index, caplog):
    sensor = SensorSpec(bands=("B02", "B8A"), cloudy_pct=100)
    reqs = _requests()
    one = fetch_items(reqs, sensor, LocalProvider(index), workers=1, retries=0)
    progress = Progress("fetch test", len(reqs), every_s=0.0, bar=False)
    with caplog.at_level(logging.INFO, logger="eoembed.progress"):
        many = fetch_items(reqs, sensor, LocalProvider(index), workers=4, retries=0, progress=progress)
    assert list(many) == [r.roi_id for r in reqs]
    assert [many[r][1]["status"] for r in many] == [one[r][1]["status"] for r in one]
    assert many["nowhere"][1]["status"] == "failed" and many["r0"][1]["status"] == "ok"
    for roi_id, (arrays, rec) in one.items():
        assert sorted(arrays) == sorted(many[roi_id][0])
        for name, arr in arrays.items():
            np.testing.assert_array_equal(arr, many[roi_id][0][name])
        assert rec.get("meta") == many[roi_id][1].get("meta")
    assert progress.done == len(reqs) and progress.failed == 1
    last = [r.getMessage() for r in caplog.records if r.name == "eoembed.progress"][-1]
    assert last.startswith(f"fetch test: {len(reqs)}/{len(reqs)} items (1 failed), ")
    assert "items/s, ETA 0s" in last


def test_io_workers_setting():
    provider = LocalProvider("unused.json")
    assert io_workers(provider) == 1 and io_workers(provider, 2) == 2
    with pytest.raises(ConfigError, match=r"provider.io_workers=0 is invalid: allowed an integer >= 1"):
        io_workers(provider, 0)


def test_progress_eta_from_rate():
    now = [0.0]
    p = Progress("embed m", 10, every_s=100.0, bar=False, clock=lambda: now[0])
    now[0] = 2.0
    p.update(4, failed=1)
    assert p.line() == "embed m: 4/10 items (1 failed), 2.0 items/s, ETA 3s"


def test_stac_threads_open_each_file_once_and_overlap_requests(s2_imagery, stac_api):
    """io_workers > 1 against a remote store: a ROI's files are first opened together (requests
    overlap), and threads wanting the same files wait for that open instead of repeating its
    header requests; the stacks are those of one thread."""
    from eoembed.providers.stac import StacProvider, _clear_gdal_http_cache
    from standins import CogServer, rewrite_hrefs

    year = TemporalSpec.year(2023)
    reqs = [Request(f"r{i}", PointBuffer(5.62 + 0.0003 * i, 52.55, 60), year) for i in range(6)]
    sensor = SensorSpec(bands=("B02", "B08", "B11"))
    with CogServer(s2_imagery.parent, latency_s=0.02) as cog:
        url = stac_api(rewrite_hrefs(s2_imagery, cog.url)).url
        runs = {}
        for workers in (1, 4):
            _clear_gdal_http_cache()
            cog.clear()
            runs[workers] = (fetch_items(reqs, sensor, StacProvider(url=url), workers=workers, retries=0),
                             len(cog.hits), cog.max_in_flight)
    (one, hits_one, flight_one), (many, hits_many, flight_many) = runs[1], runs[4]
    assert all(rec["status"] == "ok" for _, rec in one.values())
    assert flight_one == 1 and flight_many >= 2
    assert hits_many == hits_one  # no header request sent twice
    for roi_id, (arrays, _) in one.items():
        for name, arr in arrays.items():
            np.testing.assert_array_equal(arr, many[roi_id][0][name])
