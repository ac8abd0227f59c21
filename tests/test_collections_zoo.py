"""Collections the model zoo needs: Sentinel-2 L1C, Sentinel-1 GRD/RTC, HLS v2.0.

Through the ``local`` provider on tiny GeoTIFFs written here (via ``build_catalog``), the
``stac`` provider against the STAC stand-in (``rustac serve`` + a COG server) and the ``gee``
provider against the Earth Engine stand-in. GENERATED test data only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoembed.catalog import build_catalog
from eoembed.collections import db_to_linear, get_collection, linear_to_db
from eoembed.composite import make_composite, quality_mask
from eoembed.errors import ConfigError, ProviderError, SpecError
from eoembed.grid import GridSpec, grid_for
from eoembed.providers import get_provider
from eoembed.providers.local import LocalProvider
from eoembed.providers.presets import PRESETS, hls_fmask_to_classes
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import CogServer, ee_standin, stac_api  # noqa: F401

CRS = "EPSG:32631"
X0, Y1 = 640_000.0, 5_825_000.0
WINDOW = TemporalSpec.range("2023-06-01", "2023-07-01")


def _tif(path: Path, data: np.ndarray, res: float, nodata) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=CRS, nodata=nodata,
                       transform=Affine(res, 0, X0, 0, -res, Y1)) as dst:
        dst.write(data)
    return path


def _grid(res: float, n: int, offset_px: int = 2) -> GridSpec:
    """A grid aligned with the files, ``offset_px`` pixels in from their corner."""
    return GridSpec(CRS, (res, 0.0, X0 + offset_px * res, 0.0, -res, Y1 - offset_px * res), n, n)


def _roi(grid: GridSpec) -> PointBuffer:
    from pyproj import Transformer

    minx, miny, maxx, maxy = grid.bounds
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform((minx + maxx) / 2,
                                                                                (miny + maxy) / 2)
    return PointBuffer(lon, lat, (maxx - minx) / 2)


# ---------------------------------------------------------------- declarations


def test_collection_facts_and_presets():
    l1c, hls = get_collection("sentinel-2-l1c"), get_collection("hls")
    assert len(l1c.bands) == 13 and l1c.bands[10] == "B10" and l1c.native_gsd_m["B10"] == 60
    assert l1c.qa_band is None and l1c.scale == 1e-4
    for cid in ("sentinel-1-grd", "sentinel-1-rtc"):
        s1 = get_collection(cid)
        assert s1.bands == ("VV", "VH") and s1.is_sar and not s1.has_cloud_cover and s1.qa_band is None
    assert hls.bands == ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
    assert set(hls.native_gsd_m.values()) == {30} and hls.qa_band == "Fmask"
    pc, es = PRESETS["planetary_computer"], PRESETS["earth_search"]
    hp = pc.collection("hls")
    assert hp.remote_ids() == ["hls2-l30", "hls2-s30"]
    assert [hp.asset(b, "hls2-l30") for b in hls.bands] == ["B02", "B03", "B04", "B05", "B06", "B07"]
    assert [hp.asset(b, "hls2-s30") for b in hls.bands] == ["B02", "B03", "B04", "B8A", "B11", "B12"]
    assert pc.collection("sentinel-1-rtc").remote_id == "sentinel-1-rtc"
    assert pc.collection("sentinel-1-rtc").asset("VH") == "vh"
    assert es.collection("sentinel-2-l1c").asset("B10") == "cirrus"
    with pytest.raises(ConfigError, match="sentinel-1-grd"):  # PC's GRD is not map-projected backscatter
        pc.collection("sentinel-1-grd")
    # a cloud limit on scenes without cloud cover would silently drop every scene
    with pytest.raises(SpecError, match=r"cloudy_pct=20.*sentinel-1-grd"):
        SensorSpec(collection="sentinel-1-grd", bands=("VV",), cloudy_pct=20)


def test_sar_unit_conversions():
    np.testing.assert_allclose(db_to_linear(np.array([-10.0, 0.0, 3.0103])), [0.1, 1.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(linear_to_db(np.array([0.01, 1.0])), [-20.0, 0.0], atol=1e-5)
    s1 = get_collection("sentinel-1-grd")
    np.testing.assert_allclose(s1.to_stack_units(np.array([-20.0]), units="dB"), [0.01], rtol=1e-5)
    np.testing.assert_array_equal(s1.to_stack_units(np.array([0.25])), [0.25])  # source_units linear
    assert np.isnan(s1.to_stack_units(np.array([np.nan]), units="dB")).all()
    with pytest.raises(ProviderError, match="'amplitude'"):
        s1.to_stack_units(np.array([1.0]), units="amplitude")


def test_hls_fmask_bits_to_classes():
    cirrus, cloud, adjacent, shadow, snow, water = (1 << i for i in range(6))
    aerosol_high = 3 << 6
    fmask = np.array([0, aerosol_high, cloud, adjacent, cirrus, shadow, snow, water, water | cloud,
                      shadow | snow, 255], np.uint8)
    # clear, clear (aerosol does not invalidate), cloud, adjacent -> cloud, cirrus, shadow, snow,
    # water, cloud wins over water, shadow wins over snow, fill
    assert hls_fmask_to_classes(fmask).tolist() == [4, 4, 8, 8, 10, 3, 11, 6, 8, 3, 0]


# ---------------------------------------------------------------- local provider


def test_sentinel1_db_and_linear_files_read_as_the_same_linear_power(tmp_path):
    rng = np.random.default_rng(0)
    linear = rng.uniform(0.001, 0.5, (2, 12, 12)).astype(np.float32)
    linear[:, 0, 0] = -32768  # no data in both bands
    db = np.where(linear == -32768, np.float32(-32768), 10 * np.log10(np.abs(linear))).astype(np.float32)
    cats = {}
    for name, data, units in (("lin", linear, None), ("db", db, "dB")):
        src = _tif(tmp_path / f"{name}.tif", data, 10.0, -32768)
        cats[name] = build_catalog([src], tmp_path / name / "catalog.json", bands=["VV", "VH"],
                                   datetime="2023-06-15", collection="sentinel-1-grd", units=units)
    (item,) = json.loads(cats["db"].read_text())["features"]
    assert item["assets"]["VV"]["raster:bands"][0]["unit"] == "dB" and "SCL" not in item["assets"]
    grid = _grid(10.0, 10, offset_px=0)
    sensor = SensorSpec(collection="sentinel-1-grd", bands=("VV", "VH"), scale_m=10)
    stacks = {n: LocalProvider(c).fetch(_roi(grid), WINDOW, sensor, grid) for n, c in cats.items()}
    expected = np.where(linear[:, :10, :10] == -32768, np.nan, linear[:, :10, :10])
    for name, stack in stacks.items():
        assert stack.qa is None
        np.testing.assert_allclose(stack.data[0], expected, rtol=2e-5, equal_nan=True, err_msg=name)
    comp = make_composite(stacks["db"], sensor, WINDOW, np.ones((10, 10), bool))
    assert not comp.valid[0, 0, 0] and comp.valid[0].sum() == 99  # no cloud mask: only no data drops
    with pytest.raises(ConfigError, match="units='dB' is invalid for collection 'sentinel-2-l2a'"):
        build_catalog([tmp_path / "lin.tif"], tmp_path / "x.json", bands=["B02", "B03"],
                      datetime="2023-06-15", qa_value=4, units="dB")


def test_sentinel2_l1c_thirteen_bands_without_quality_band(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(1000, 9000, (13, 16, 16)).astype(np.uint16)
    bands = list(get_collection("sentinel-2-l1c").bands)
    with pytest.raises(ConfigError, match="qa_value=4 is invalid"):  # L1C has no quality band
        build_catalog([_tif(tmp_path / "l1c.tif", data, 10.0, 0)], tmp_path / "c.json", bands=bands,
                      datetime="2023-06-15", collection="sentinel-2-l1c", qa_value=4)
    cat = build_catalog([tmp_path / "l1c.tif"], tmp_path / "cat" / "catalog.json", bands=bands,
                        datetime="2023-06-15", collection="sentinel-2-l1c")
    grid = _grid(10.0, 8)
    sensor = SensorSpec(collection="sentinel-2-l1c", bands=("B10", "B02", "B12"))
    stack = LocalProvider(cat).fetch(_roi(grid), WINDOW, sensor, grid)
    assert stack.qa is None and stack.data.shape == (1, 3, 8, 8)
    for i, band in enumerate(sensor.bands):
        np.testing.assert_array_equal(stack.data[0, i], data[bands.index(band), 2:10, 2:10])
    assert quality_mask(stack, "sentinel-2-l1c").all()


def test_hls_constant_fmask_from_build_catalog(tmp_path):
    data = np.random.default_rng(2).integers(100, 5000, (6, 12, 12)).astype(np.int16)
    data[:, :2, :2] = -9999
    hls = get_collection("hls")
    cat = build_catalog([_tif(tmp_path / "hls.tif", data, 30.0, -9999)], tmp_path / "c" / "catalog.json",
                        bands=list(hls.bands), datetime="2023-06-15", collection="hls", qa_value=4)
    with rasterio.open(tmp_path / "c" / "hls" / "Fmask.tif") as fm:
        raw = fm.read(1)
        expected_raw = np.zeros((12, 12), np.uint8)  # clear = no bit set
        expected_raw[:2, :2] = 255  # fill where the image has no data
        assert fm.nodata == 255
        np.testing.assert_array_equal(raw, expected_raw)
    grid = _grid(30.0, 6, offset_px=0)
    stack = LocalProvider(cat).fetch(_roi(grid), WINDOW, SensorSpec(collection="hls", bands=hls.bands,
                                                                     scale_m=30), grid)
    expected_qa = np.full((6, 6), 4, np.uint8)
    expected_qa[:2, :2] = 0
    np.testing.assert_array_equal(stack.qa[0], expected_qa)
    np.testing.assert_array_equal(stack.data[0, 3, 2:, 2:], data[3, 2:6, 2:6])


def test_landsat_constant_qa_pixel_decodes_to_the_requested_class(tmp_path):
    """A bit-flag quality band gets the flags of the class, not the class number (4 = cirrus bit)."""
    data = np.random.default_rng(3).integers(8000, 20000, (7, 8, 8)).astype(np.uint16)
    bands = list(get_collection("landsat-c2-l2").bands)
    cat = build_catalog([_tif(tmp_path / "ls.tif", data, 30.0, 0)], tmp_path / "c" / "catalog.json",
                        bands=bands, datetime="2023-06-15", collection="landsat-c2-l2", qa_value=4)
    grid = _grid(30.0, 4)
    sensor = SensorSpec(collection="landsat-c2-l2", bands=("SR_B4",), scale_m=30)
    stack = LocalProvider(cat).fetch(_roi(grid), WINDOW, sensor, grid)
    assert (stack.qa == 4).all() and quality_mask(stack, "landsat-c2-l2").all()


# ---------------------------------------------------------------- STAC stand-in: HLS L30 + S30

HLS_ROI = PointBuffer(5.62, 52.55, 300)
HLS_GRID = grid_for(HLS_ROI, 30)  # 20 x 20 pixels
L30_ASSETS = ("B02", "B03", "B04", "B05", "B06", "B07")
S30_ASSETS = ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")  # B05-B07: red edge
CLOUD, SHADOW = 1 << 1, 1 << 3


def _write_hls(out: Path, item_id: str, collection: str, when: str, assets, fmask: dict) -> dict:
    margin, res = 3, 30.0
    x0, y1 = HLS_GRID.transform[2] - margin * res, HLS_GRID.transform[5] + margin * res
    n = HLS_GRID.width + 2 * margin
    entries = {}
    for k, key in enumerate((*assets, "Fmask")):
        if key == "Fmask":
            arr, nodata, dtype = np.zeros((n, n), np.uint8), 255, "uint8"
            for (r, c), bits in fmask.items():
                arr[r + margin, c + margin] = bits
        else:  # distinct value per asset: 100 x asset index + row
            arr = (100 * (k + 1) + np.arange(n)[:, None] + 0 * np.arange(n)[None]).astype(np.int16)
            nodata, dtype = -9999, "int16"
        path = out / item_id / f"{key}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", driver="COG", width=n, height=n, count=1, dtype=dtype, crs=HLS_GRID.crs,
                           nodata=nodata, transform=Affine(res, 0, x0, 0, -res, y1)) as dst:
            dst.write(arr, 1)
        entries[key] = {"href": f"{item_id}/{key}.tif", "type": "image/tiff; application=geotiff",
                        "proj:shape": [n, n], "proj:transform": [res, 0.0, x0, 0.0, -res, y1],
                        "raster:bands": [{"nodata": nodata, "data_type": dtype}]}
    from pyproj import Transformer

    tr = Transformer.from_crs(HLS_GRID.crs, "EPSG:4326", always_xy=True)
    xs, ys = [x0, x0 + n * res, x0 + n * res, x0, x0], [y1, y1, y1 - n * res, y1 - n * res, y1]
    lon, lat = tr.transform(xs, ys)
    return {"type": "Feature", "stac_version": "1.1.0", "id": item_id, "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "geometry": {"type": "Polygon", "coordinates": [[[a, b] for a, b in zip(lon, lat)]]},
            "bbox": [min(lon), min(lat), max(lon), max(lat)],
            "properties": {"datetime": when, "eo:cloud_cover": 10.0, "proj:code": HLS_GRID.crs},
            "assets": entries, "links": []}


def test_hls_l30_and_s30_through_stac_preset(tmp_path, stac_api):
    items = [_write_hls(tmp_path, "HLS.L30.T31UFU.2023161", "hls2-l30", "2023-06-10T10:40:00Z", L30_ASSETS,
                        {(2, 3): CLOUD, (4, 4): SHADOW}),
             _write_hls(tmp_path, "HLS.S30.T31UFU.2023163", "hls2-s30", "2023-06-12T10:40:00Z", S30_ASSETS,
                        {(2, 3): 1 << 5})]  # water: valid
    server = CogServer(tmp_path)
    try:
        for it in items:
            for a in it["assets"].values():
                a["href"] = f"{server.url}/{a['href']}"
        provider = get_provider("stac", preset="planetary_computer", url=stac_api(items).url, sign=False)
        hls = get_collection("hls")
        sensor = SensorSpec(collection="hls", bands=hls.bands, scale_m=30)
        stack = provider.fetch(HLS_ROI, WINDOW, sensor, HLS_GRID)
    finally:
        server.stop()
    assert stack.scenes == [["HLS.L30.T31UFU.2023161"], ["HLS.S30.T31UFU.2023163"]]
    rows = np.arange(3, 3 + HLS_GRID.height)[:, None] + np.zeros(HLS_GRID.width)[None]
    picked = (("B02", "B03", "B04", "B05", "B06", "B07"), ("B02", "B03", "B04", "B8A", "B11", "B12"))
    for t, assets in enumerate((L30_ASSETS, S30_ASSETS)):
        for b, key in enumerate(picked[t]):  # NIR_NARROW is B05 in L30 but B8A (not red-edge B05) in S30
            np.testing.assert_array_equal(stack.data[t, b], 100 * (assets.index(key) + 1) + rows)
    assert stack.qa[0, 2, 3] == 8 and stack.qa[0, 4, 4] == 3 and stack.qa[1, 2, 3] == 6
    assert (stack.qa[0] == 4).sum() == HLS_GRID.width * HLS_GRID.height - 2
    comp = make_composite(stack, sensor, WINDOW, np.ones((HLS_GRID.height, HLS_GRID.width), bool))
    assert comp.valid[0].all()  # every pixel has a valid observation on one of the dates
    s30_nir = 100 * (S30_ASSETS.index("B8A") + 1) + rows
    assert comp.data[0, 3, 2, 3] == s30_nir[2, 3]  # cloudy in L30: only the S30 value counts


# ---------------------------------------------------------------- Earth Engine stand-in


def test_gee_sentinel1_in_db_becomes_linear_and_l1c_request(ee_standin, monkeypatch):
    import google.oauth2.credentials

    import standins.earthengine as ees
    from eoembed.providers.gee import GeeProvider

    monkeypatch.setattr(ees, "pixel_value", lambda b, x, y: np.full(np.shape(x), -10.0 * (b + 1), np.float32))
    provider = GeeProvider(project="standin-project", url=ee_standin.url, backoff_s=0.01,
                           credentials=google.oauth2.credentials.Credentials(token="t"))
    roi = PointBuffer(5.62, 52.55, 50)
    grid = grid_for(roi, 10)
    ee_standin.requests.clear()
    ee_standin.values = [[["S1A_IW_GRDH_1SDV_20230610"]]]
    stack = provider.fetch(roi, WINDOW, SensorSpec(collection="sentinel-1-grd", bands=("VV", "VH")), grid)
    np.testing.assert_allclose(stack.data[0, 0], 0.1, rtol=1e-6)  # -10 dB
    np.testing.assert_allclose(stack.data[0, 1], 0.01, rtol=1e-6)  # -20 dB
    expr = json.dumps(ee_standin.pixel_requests()[-1]["expression"])
    assert "COPERNICUS/S1_GRD" in expr and "transmitterReceiverPolarisation" in expr
    assert "CLOUDY_PIXEL_PERCENTAGE" not in expr and "SCL" not in expr
    ee_standin.values = [[["20230610T104021_T31UFU"]]]
    provider.fetch(roi, WINDOW, SensorSpec(collection="sentinel-2-l1c", bands=("B10", "B8A"), cloudy_pct=30),
                   grid)
    expr = json.dumps(ee_standin.pixel_requests()[-1]["expression"])
    assert "COPERNICUS/S2_HARMONIZED" in expr and '"B10"' in expr and "CLOUDY_PIXEL_PERCENTAGE" in expr
    assert "SCL" not in expr and "S2_SR" not in expr
