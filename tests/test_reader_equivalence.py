"""The direct scene reader gives the pixels odc-stac gave (the reader it replaced)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eoembed.collections import get_collection
from eoembed.grid import GridSpec, grid_for
from eoembed.providers.local import LocalProvider
from eoembed.providers.sample import generate
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

SITES = [("nl", 5.62, 52.55), ("edge", 5.999, 52.55)]
YEAR = TemporalSpec.year(2023)
BANDS = ("B02", "B05", "B11")


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("cat"), SITES, 2023, dates_per_year=3, tile_px=96, seed=7)


def _odc(provider: LocalProvider, items, bands, grid, lon):
    """The pre-reader path: one odc.stac.load per ROI (kept here as the oracle)."""
    import odc.stac
    from odc.geo.geobox import GeoBox

    collection = get_collection("sentinel-2-l2a")
    qa = collection.qa_band
    resampling = provider._resampling(tuple(b for b in bands if b != qa), qa, collection, grid.res)
    return odc.stac.load(items, bands=bands, geobox=GeoBox((grid.height, grid.width), grid.affine(), grid.crs),
                         resampling=resampling, groupby=lambda it, p, i: provider._solar_day(it, lon),
                         chunks=None, fail_on_error=True)


def _tile_origin(index: Path) -> tuple[float, float, str]:
    provider = LocalProvider(index)
    item = next(it for it in provider.items if it.properties["eoembed:site"] == "nl")
    with rasterio.open(item.assets["B02"].href) as src:
        return src.transform.c, src.transform.f, src.crs.to_string()


def _grids(index: Path):
    x0, y0, crs = _tile_origin(index)
    yield "aligned", GridSpec(crs, (10.0, 0.0, x0 + 100, 0.0, -10.0, y0 - 200), 30, 40), "auto"
    yield "subpixel", GridSpec(crs, (10.0, 0.0, x0 + 103.7, 0.0, -10.0, y0 - 201.2), 30, 40), "auto"
    yield "subpixel-nearest", GridSpec(crs, (10.0, 0.0, x0 + 103.7, 0.0, -10.0, y0 - 201.2), 30, 40), "nearest"
    yield "coarser", GridSpec(crs, (30.0, 0.0, x0 + 60, 0.0, -30.0, y0 - 90), 20, 20), "auto"
    yield "partly-outside", GridSpec(crs, (10.0, 0.0, x0 - 150, 0.0, -10.0, y0 + 120), 40, 40), "auto"
    yield "other-zone", grid_for(PointBuffer(5.999, 52.55, 200), 10.0), "auto"


@pytest.mark.parametrize("case", range(6))
def test_reader_matches_odc_stac(index, case):
    name, grid, resampling = list(_grids(index))[case]
    provider = LocalProvider(index, resampling=resampling)
    roi = PointBuffer(5.62, 52.55, 100) if name != "other-zone" else PointBuffer(5.999, 52.55, 200)
    sensor = SensorSpec(bands=BANDS, cloudy_pct=100)
    items = provider.search(roi, YEAR, sensor)
    assert len(items) >= 3
    bands = list(BANDS) + ["SCL"]
    lon = 5.62
    new = provider._load(items, bands, grid, get_collection("sentinel-2-l2a"), lon)
    old = _odc(provider, items, bands, grid, lon)
    assert new.sizes["time"] == old.sizes["time"]
    np.testing.assert_array_equal(new["time"].values, old["time"].values)
    worst = 0.0
    for band in bands:
        a, b = new[band].values, old[band].values
        assert a.dtype == b.dtype and a.shape == b.shape, band
        assert new[band].attrs.get("nodata") == old[band].attrs.get("nodata"), band
        np.testing.assert_array_equal(a, b, err_msg=f"{name} {band}")
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    print(f"{name}: max abs DN difference reader vs odc-stac = {worst}")


def test_datasets_are_opened_once_per_job(index, monkeypatch):
    """Two ROIs on the same scenes: every file is opened once by the provider's reader."""
    opened = []
    real = rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    provider = LocalProvider(index)
    sensor = SensorSpec(bands=BANDS, cloudy_pct=100)
    for lon in (5.62, 5.621):
        roi = PointBuffer(lon, 52.55, 100)
        provider.fetch(roi, YEAR, sensor, grid_for(roi, 10.0))
    assert opened and len(opened) == len(set(opened))


def test_index_search_equals_a_linear_scan(index):
    """STRtree search = every item tested in turn (collection, window, cloud, footprint)."""
    import datetime as dt

    from eoembed.providers.local import _footprint, _item_time

    provider = LocalProvider(index)
    rng = np.random.default_rng(0)
    found_any = 0
    for lon, lat, pct, month in zip(rng.choice([5.62, 5.999], 30) + rng.uniform(-0.012, 0.012, 30),
                                    52.55 + rng.uniform(-0.008, 0.008, 30),
                                    rng.choice([10, 50, 100], 30), rng.integers(1, 12, 30)):
        roi = PointBuffer(float(lon), float(lat), 300)
        window = TemporalSpec(dt.date(2023, int(month), 1), dt.date(2024, 1, 1))
        sensor = SensorSpec(bands=BANDS, cloudy_pct=float(pct))
        start = dt.datetime(2023, int(month), 1, tzinfo=dt.timezone.utc)
        end = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        scan = [it for it in provider.items
                if start <= _item_time(it) < end and float(it.properties["eo:cloud_cover"]) <= pct
                and _footprint(it).intersects(roi.geometry())]
        got = provider.search(roi, window, sensor)
        assert [it.id for it in got] == [it.id for it in scan]
        found_any += bool(got)
    assert 5 < found_any < 30  # some ROIs find scenes, some do not


def test_paste_plan_is_odcs_plan_for_whole_pixel_offsets(index):
    """The reader's shortcut for same-CRS, same-pixel-size sources with a whole-pixel offset
    gives the windows odc's compute_reproject_roi gives (inside, overlapping an edge, outside);
    a sub-pixel offset, another pixel size or another CRS is left to odc."""
    from eoembed.providers.reader import SceneReader
    from eoembed.providers.readplan import GridPlan as _GridPlan

    x0, y0, crs = _tile_origin(index)
    item = next(it for it in LocalProvider(index).items if it.properties["eoembed:site"] == "nl")
    src = SceneReader()._open(item.assets["B02"].href)
    checked = 0
    for dx, dy in [(0, 0), (100, -200), (-150, 120), (900, 0), (-5000, 0), (30, 10)]:
        grid = GridSpec(crs, (10.0, 0.0, x0 + dx, 0.0, -10.0, y0 + dy), 30, 40)
        plan = _GridPlan(grid)
        fast = plan._paste(src)
        assert fast is not None
        for ttol in (0.05, 0.9):
            assert fast == plan._odc(src, ttol), (dx, dy, ttol)
            checked += 1
    assert checked == 12
    for transform, grid_crs in [((10.0, 0.0, x0 + 103.7, 0.0, -10.0, y0), crs),
                                ((20.0, 0.0, x0, 0.0, -20.0, y0), crs),
                                ((10.0, 0.0, x0, 0.0, -10.0, y0), "EPSG:32632")]:
        assert _GridPlan(GridSpec(grid_crs, transform, 30, 40))._paste(src) is None
