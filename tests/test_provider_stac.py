"""The ``stac`` provider against a real STAC API (rustac serve) and a Range-capable COG server."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from eoembed.collections import SENTINEL2_L2A
from eoembed.composite import make_composite
from eoembed.errors import ConfigError, NoDataError, ProviderError, TransientProviderError
from eoembed.grid import grid_for
from eoembed.providers import get_provider
from eoembed.providers.presets import PRESETS, landsat_qa_to_classes, s2_dn_offset
from eoembed.providers.stac import StacProvider, strip_query
from eoembed.retry import call_with_retries
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import TEST_SAS_TOKEN, cog_server, rewrite_hrefs, s2_imagery, stac_api  # noqa: F401

ROI = PointBuffer(5.62, 52.55, 120)  # inside the 480 m generated tile
YEAR = TemporalSpec.year(2023)


def _cog(index, item: dict, band: str) -> str:
    rel = item["assets"][band]["href"].split("/", 3)[3]  # drop http://host:port/
    return str(index.parent / rel)


def _read_on_grid(path: str, grid, resampling=Resampling.nearest) -> np.ndarray:
    """Independent reference: the COG reprojected onto the ROI grid with rasterio."""
    out = np.zeros((grid.height, grid.width), np.float32)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=grid.affine(), dst_crs=grid.crs,
                  resampling=resampling, dst_nodata=0)
    return out


def _window(path: str, grid) -> np.ndarray:
    """The COG's pixels under the grid (same CRS, aligned 10 m pixels): a plain window read."""
    with rasterio.open(path) as src:
        col = round((grid.transform[2] - src.transform.c) / src.transform.a)
        row = round((grid.transform[5] - src.transform.f) / src.transform.e)
        return src.read(1, window=Window(col, row, grid.width, grid.height)).astype(np.float32)


def _items(index, cog, edit=None) -> list[dict]:
    return rewrite_hrefs(index, cog.url, edit)


def _by_date(items):
    return {it["properties"]["datetime"][:10]: it for it in items}


def test_scenes_chosen_for_window_and_cloud_limit(s2_imagery, cog_server, stac_api):
    clouds = {"2023-03-02": 5.0, "2023-07-02": 60.0, "2023-11-01": 20.0}

    def edit(item):
        day = item["properties"]["datetime"][:10]
        item["properties"]["eo:cloud_cover"] = clouds[day]
        if day == "2023-11-01":  # exactly on the exclusive end of the window below
            item["properties"]["datetime"] = "2023-11-01T00:00:00Z"
        return item

    items = _items(s2_imagery, cog_server, edit)
    ids = {d: it["id"] for d, it in _by_date(items).items()}
    api = stac_api(items)
    provider = StacProvider(url=api.url)
    assert not provider.client.conforms_to("QUERY")  # so the cloud limit is applied client-side

    def chosen(temporal, pct):
        return [it.id for it in provider.search(ROI, temporal, SensorSpec(bands=("B02",), cloudy_pct=pct))]

    assert chosen(YEAR, 100) == [ids["2023-03-02"], ids["2023-07-02"], ids["2023-11-01"]]
    assert chosen(YEAR, 30) == [ids["2023-03-02"], ids["2023-11-01"]]
    window = TemporalSpec.range("2023-01-01", "2023-11-01")
    assert chosen(window, 100) == [ids["2023-03-02"], ids["2023-07-02"]]
    assert chosen(window, 10) == [ids["2023-03-02"]]
    with pytest.raises(NoDataError, match="eo:cloud_cover <= 1"):
        provider.fetch(ROI, window, SensorSpec(bands=("B02",), cloudy_pct=1), grid_for(ROI, 10))


def test_arrays_match_cogs_and_baseline_offset(s2_imagery, cog_server, stac_api):
    def edit(item):  # the July scene: PB 05.09, no raster:bands offset -> DN carries +1000
        if item["properties"]["datetime"].startswith("2023-07"):
            item["properties"]["s2:processing_baseline"] = "05.09"
            for asset in item["assets"].values():
                for rb in asset.get("raster:bands", []):
                    rb.pop("offset", None)
        return item

    items = _items(s2_imagery, cog_server, edit)
    provider = StacProvider(url=stac_api(items).url)
    grid = grid_for(ROI, 10)
    stack = provider.fetch(ROI, YEAR, SensorSpec(bands=("B02", "B08", "B11")), grid)
    assert stack.data.shape == (3, 3, grid.height, grid.width) and stack.qa.shape == (3, grid.height, grid.width)
    assert [s[0] for s in stack.scenes] == [it["id"] for it in items]
    for t, item in enumerate(items):
        shift = -1000.0 if item["properties"].get("s2:processing_baseline") else 0.0
        for b, band in enumerate(("B02", "B08")):
            ref = _window(_cog(s2_imagery, item, band), grid)
            ref[ref == 0] = np.nan
            np.testing.assert_array_equal(stack.data[t, b], ref + shift)
        ref = _read_on_grid(_cog(s2_imagery, item, "B11"), grid, Resampling.bilinear)
        inner = (slice(2, -2), slice(2, -2))
        np.testing.assert_allclose(stack.data[t, 2][inner], ref[inner] + shift, rtol=0, atol=1.0)
        np.testing.assert_array_equal(stack.qa[t], _read_on_grid(_cog(s2_imagery, item, "SCL"), grid))
    prov = provider.last_provenance
    assert prov["items"] == [it["id"] for it in items]
    assert prov["assets"][items[0]["id"]]["B02"] == items[0]["assets"]["B02"]["href"]
    assert provider.stats()["items_read"] == 3 and provider.stats()["searches"] == 1


def test_masked_pixels_excluded_from_median(s2_imagery, cog_server, stac_api):
    items = _items(s2_imagery, cog_server)
    provider = StacProvider(url=stac_api(items).url)
    grid = grid_for(ROI, 10)
    sensor = SensorSpec(bands=("B04",), composite="median")
    stack = provider.fetch(ROI, YEAR, sensor, grid)
    comp = make_composite(stack, sensor, YEAR, grid.inside_mask(ROI.geometry()))
    values = np.stack([_window(_cog(s2_imagery, it, "B04"), grid) for it in items])
    scl = np.stack([_read_on_grid(_cog(s2_imagery, it, "SCL"), grid) for it in items])
    bad = np.isin(scl, [0, 1, 3, 8, 9, 10]) | (values == 0)  # ESA invalid SCL classes, no data
    assert bad.any() and not bad.all(axis=0).all()  # the fixture has clouds to mask
    masked = np.where(bad, np.nan, values)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(masked, axis=0)
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(comp.data[0, 0][ok], expected[ok], rtol=0, atol=1e-3)
    assert np.array_equal(comp.valid[0], ok)
    # the unmasked median differs where clouds were dropped
    assert not np.allclose(np.median(values, axis=0)[ok], expected[ok])


def test_earth_search_asset_names(s2_imagery, cog_server, stac_api):
    mapping = PRESETS["earth_search"].collections["sentinel-2-l2a"]

    def rename(item):
        item["assets"] = {mapping.asset(k) if k != "SCL" else "scl": v for k, v in item["assets"].items()}
        return item

    plain = _items(s2_imagery, cog_server)
    renamed = _items(s2_imagery, cog_server, rename)
    assert "blue" in renamed[0]["assets"] and "B02" not in renamed[0]["assets"]
    sensor = SensorSpec(bands=("B02", "B8A"))
    grid = grid_for(ROI, 10)
    a = StacProvider(url=stac_api(plain).url).fetch(ROI, YEAR, sensor, grid)
    b = get_provider("stac", preset="earth_search", url=stac_api(renamed).url).fetch(ROI, YEAR, sensor, grid)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.qa, b.qa)
    with pytest.raises(ProviderError, match="no asset"):
        StacProvider(url=stac_api(renamed).url).fetch(ROI, YEAR, sensor, grid)


@pytest.mark.parametrize("sign", [True, False])
def test_signing_invoked_only_when_on(sign, s2_imagery, cog_server, stac_api, monkeypatch):
    import planetary_computer
    from planetary_computer import sas, settings

    def to_blob(item):  # hrefs that look like Azure Blob Storage, fetched through our server as proxy
        for asset in item["assets"].values():
            path = asset["href"].split("/", 3)[3]
            asset["href"] = f"http://standinacct.blob.core.windows.net/container/{path}"
        return item

    monkeypatch.setenv("PC_SDK_SAS_URL", cog_server.sas_url)  # documented settings override
    monkeypatch.setenv("GDAL_HTTP_PROXY", f"127.0.0.1:{cog_server.port}")
    settings.Settings.get.cache_clear()
    sas.TOKEN_CACHE.clear()
    items = _items(s2_imagery, cog_server, to_blob)
    provider = get_provider("stac", url=stac_api(items).url, sign=sign)
    cog_server.clear()
    try:
        stack = provider.fetch(ROI, YEAR, SensorSpec(bands=("B02",)), grid_for(ROI, 10))
    finally:
        settings.Settings.get.cache_clear()
        sas.TOKEN_CACHE.clear()
    hits = cog_server.hits
    tokens = [h for h in hits if h.path.startswith("/sas/v1/token/")]
    reads = [h for h in hits if h.path.endswith(".tif")]
    assert reads and all("blob.core.windows.net" in h.host for h in reads)
    if sign:
        assert [h.path for h in tokens] == ["/sas/v1/token/standinacct/container"]
        assert all("sig=STANDINSECRETSIG" in h.query for h in reads)
        assert provider.stats()["signed_items"] == 3
    else:
        assert not tokens and all(h.query == "" for h in reads)
    text = json.dumps([provider.describe(), provider.last_provenance, stack.to_arrays()[1]])
    assert "STANDINSECRETSIG" not in text and TEST_SAS_TOKEN not in text
    assert planetary_computer.sign_inplace  # the real package did the signing


def test_transient_and_permanent_failures(s2_imagery, cog_server, stac_api):
    items = _items(s2_imagery, cog_server)
    provider = StacProvider(url=stac_api(items).url, gdal_retries=0)
    sensor, grid = SensorSpec(bands=("B03",)), grid_for(ROI, 10)
    cog_server.fail_next(503)
    with pytest.raises(TransientProviderError, match="503"):
        provider.fetch(ROI, YEAR, sensor, grid)
    cog_server.fail_next(429)  # the pipeline's retry/backoff turns a 429 into a success
    stack, attempts = call_with_retries(lambda: provider.fetch(ROI, YEAR, sensor, grid),
                                        retries=2, backoff_s=0.01)
    assert attempts == 2 and np.isfinite(stack.data).any()
    dead = StacProvider(url="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(TransientProviderError, match="127.0.0.1:9"):
        dead.search(ROI, YEAR, SensorSpec(bands=("B03",)))
    broken = copy.deepcopy(items)
    for it in broken:
        it["assets"]["B03"]["href"] = it["assets"]["B03"]["href"].replace(".tif", "_missing.tif")
    with pytest.raises(ProviderError) as info:
        StacProvider(url=stac_api(broken).url).fetch(ROI, YEAR, SensorSpec(bands=("B03",)), grid_for(ROI, 10))
    assert not isinstance(info.value, TransientProviderError)


def test_config_validation_and_describe():
    with pytest.raises(ConfigError, match="planetary_computer"):
        StacProvider(preset="nope")
    with pytest.raises(ConfigError, match="preset= .* or url="):
        StacProvider()
    with pytest.raises(ConfigError, match="collection='x'"):
        PRESETS["earth_search"].collection("x")
    pc = get_provider("stac", preset="planetary_computer")
    assert pc.describe() == {"provider": "stac", "preset": "planetary_computer", "sign": True,
                             "url": "https://planetarycomputer.microsoft.com/api/stac/v1"}
    assert get_provider("stac", preset="earth_search").sign is False
    assert strip_query("https://a.b/c.tif?sig=1&se=2#f") == "https://a.b/c.tif"


def test_s2_dn_offset_rules():
    import datetime as dt

    before = dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc)
    after = dt.datetime(2022, 6, 1, tzinfo=dt.timezone.utc)
    assert s2_dn_offset({}, {}, before) == 0 and s2_dn_offset({}, {}, after) == -1000
    assert s2_dn_offset({"s2:processing_baseline": "03.01"}, {}, after) == 0
    assert s2_dn_offset({"s2:processing_baseline": "04.00"}, {}, before) == -1000
    es = {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}  # Earth Search states it
    assert s2_dn_offset({"s2:processing_baseline": "03.01"}, es, before) == pytest.approx(-1000)
    assert SENTINEL2_L2A.nodata == 0


def test_landsat_qa_pixel_classes():
    fill, dilated, cirrus, cloud, shadow, snow, clear, water = (1 << i for i in range(8))
    qa = np.array([fill, cloud | dilated, dilated, cirrus | clear, shadow, snow, clear, water | clear, 0],
                  np.uint16)
    assert landsat_qa_to_classes(qa).tolist() == [0, 8, 8, 10, 3, 11, 4, 6, 7]
    # 21824 = clear land, 22280 = high-confidence cloud (typical USGS QA_PIXEL values)
    assert landsat_qa_to_classes(np.array([21824, 22280])).tolist() == [4, 8]


# ---------------------------------------------------------------- Landsat C2 L2

LS_ROI = PointBuffer(5.62, 52.55, 300)
LS_GRID = grid_for(LS_ROI, 30)  # 20 x 20 pixels of 30 m
LS_BANDS = {"SR_B2": "blue", "SR_B4": "red", "SR_B5": "nir08"}  # eoembed name -> PC/ES asset key
# QA_PIXEL values from the USGS bit layout: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
# 4 shadow, 5 snow, 6 clear, 7 water; 8-15 confidence pairs. Expected SCL-like code per kind.
CLOUD, DILATED = (1 << 3) | (1 << 1) | (3 << 8), (1 << 1) | (1 << 8)
CIRRUS, SHADOW = (1 << 2) | (1 << 6) | (3 << 14), (1 << 4) | (3 << 10)
SNOW, WATER = (1 << 5) | (3 << 12), (1 << 6) | (1 << 7)
LS_SCENES = [  # (id, when, platform, cloud cover, {pixel: QA_PIXEL}, fill pixels)
    ("LC08_TEST_20230410", "2023-04-10T10:30:00", "landsat-8", 20.0,
     {(2, 3): CLOUD, (2, 4): CLOUD, (3, 3): DILATED, (10, 10): SHADOW, (5, 15): CIRRUS,
      (12, 1): WATER, (15, 7): SNOW}, {(0, 0), (0, 1), (19, 19)}),
    ("LE07_TEST_20230505", "2023-05-05T10:30:00", "landsat-7", 5.0, {}, set()),  # not OLI
    ("LC09_TEST_20230613", "2023-06-13T10:30:00", "landsat-9", 5.0, {(10, 10): CLOUD}, {(7, 7)}),
    ("LC08_TEST_20230801", "2023-08-01T10:30:00", "landsat-8", 90.0, {}, set()),  # too cloudy
]
EXPECTED_CODE = {CLOUD: 8, DILATED: 8, CIRRUS: 10, SHADOW: 3, SNOW: 11, WATER: 6}
LS_TAKEN = [0, 2]  # scenes a 50 % cloud limit keeps among landsat-8/9


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    """(index.json path, CogServer) of the Landsat-like scenes above."""
    import datetime as dt

    from standins import CogServer, LandsatScene, write_landsat

    scenes = [LandsatScene(i, dt.datetime.fromisoformat(w).replace(tzinfo=dt.timezone.utc), p, c, q, f,
                           seed=n) for n, (i, w, p, c, q, f) in enumerate(LS_SCENES)]
    index = write_landsat(tmp_path_factory.mktemp("landsat"), LS_GRID, scenes)
    server = CogServer(index.parent)
    yield index, server
    server.stop()


def _ls_expected_codes(n: int) -> np.ndarray:
    _, _, _, _, qa, fill = LS_SCENES[n]
    codes = np.full((LS_GRID.height, LS_GRID.width), 4, np.uint8)  # clear land elsewhere
    for pixel, value in qa.items():
        codes[pixel] = EXPECTED_CODE[value]
    for pixel in fill:
        codes[pixel] = 0
    return codes


def _ls_expected_values(index, n: int, asset: str) -> np.ndarray:
    """The written DN under the grid, as reflectance x 10000 by the documented rule."""
    dn = _window(str(index.parent / LS_SCENES[n][0] / f"{asset}.tif"), LS_GRID).astype(np.float64)
    out = (dn * 0.0000275 - 0.2) * 10000
    out[dn == 0] = np.nan
    return out


def test_landsat_stack_qa_codes_and_reflectance(landsat, stac_api):
    from eoembed.composite import quality_mask

    index, server = landsat
    items = rewrite_hrefs(index, server.url)
    provider = get_provider("stac", preset="planetary_computer", url=stac_api(items).url, sign=False)
    sensor = SensorSpec(collection="landsat-c2-l2", bands=tuple(LS_BANDS), scale_m=30, cloudy_pct=50)
    stack = provider.fetch(LS_ROI, YEAR, sensor, LS_GRID)
    assert stack.scenes == [[LS_SCENES[n][0]] for n in LS_TAKEN]
    assert stack.qa.dtype == np.uint8 and stack.data.shape == (2, 3, 20, 20)
    expected_invalid = []
    for t, n in enumerate(LS_TAKEN):
        codes = _ls_expected_codes(n)
        np.testing.assert_array_equal(stack.qa[t], codes)
        expected_invalid.append(np.isin(codes, [0, 3, 8, 10]))  # fill, shadow, cloud, cirrus
        for b, asset in enumerate(LS_BANDS.values()):
            np.testing.assert_allclose(stack.data[t, b], _ls_expected_values(index, n, asset),
                                       rtol=0, atol=1e-2, equal_nan=True)
    invalid = np.stack(expected_invalid)
    assert invalid.sum() == 10 and invalid[:, 10, 10].all()  # 7 + 3 marked invalid pixels
    np.testing.assert_array_equal(quality_mask(stack, "landsat-c2-l2"), ~invalid)
    comp = make_composite(stack, sensor, YEAR, LS_GRID.inside_mask(LS_ROI.geometry()))
    np.testing.assert_array_equal(comp.valid[0], ~invalid.all(axis=0))
    snow = _ls_expected_values(index, 0, "red")[15, 7], _ls_expected_values(index, 2, "red")[15, 7]
    assert comp.data[0, 1, 15, 7] == pytest.approx(np.mean(snow), abs=1e-2)  # snow stays valid
    assert comp.data[0, 1, 2, 3] == pytest.approx(_ls_expected_values(index, 2, "red")[2, 3], abs=1e-2)


def test_landsat_local_provider_matches_stac(landsat, stac_api, tmp_path):
    """The ``local`` provider reads the same scenes (assets named like eoembed's bands)."""
    from eoembed.providers.local import LocalProvider

    index, server = landsat
    doc = json.loads(index.read_text())
    names = {asset: band for band, asset in LS_BANDS.items()} | {"qa_pixel": "QA_PIXEL"}
    doc["features"] = [f for f in doc["features"] if f["properties"]["platform"] != "landsat-7"]
    for f in doc["features"]:
        f["assets"] = {names[k]: {**v, "href": str(index.parent / v["href"])}
                       for k, v in f["assets"].items() if k in names}
    (tmp_path / "local.json").write_text(json.dumps(doc))
    sensor = SensorSpec(collection="landsat-c2-l2", bands=tuple(LS_BANDS), scale_m=30, cloudy_pct=50)
    local = LocalProvider(tmp_path / "local.json").fetch(LS_ROI, YEAR, sensor, LS_GRID)
    remote = get_provider("stac", preset="earth_search", url=stac_api(rewrite_hrefs(index, server.url)).url)
    stac = remote.fetch(LS_ROI, YEAR, sensor, LS_GRID)
    assert local.scenes == stac.scenes == [[LS_SCENES[n][0]] for n in LS_TAKEN]
    np.testing.assert_array_equal(local.qa, stac.qa)
    np.testing.assert_array_equal(local.data, stac.data)
    np.testing.assert_allclose(local.data[1, 0], _ls_expected_values(index, 2, "blue"), atol=1e-2)


def test_landsat_sensor_spec_and_presets():
    from eoembed.collections import LANDSAT_C2_L2, get_collection
    from eoembed.errors import SpecError

    spec = SensorSpec(collection="landsat-c2-l2", bands=("SR_B4", "SR_B5"), scale_m=30)
    assert spec.bands == ("SR_B4", "SR_B5")
    with pytest.raises(SpecError) as info:
        SensorSpec(collection="landsat-c2-l2", bands=("B02", "SR_B4"))
    message = str(info.value)
    assert "B02" in message and all(f"SR_B{i}" in message for i in range(1, 8))
    assert LANDSAT_C2_L2.qa_band == "QA_PIXEL" and set(LANDSAT_C2_L2.native_gsd_m.values()) == {30}
    # every preset describes a collection the way eoembed.collections reads it
    for preset in PRESETS.values():
        for cid, cp in preset.collections.items():
            coll = get_collection(cid)
            assert cp.qa_kind == coll.qa_kind and (cp.scale, cp.offset) == (coll.scale, coll.offset)
            assert len({cp.asset(b) for b in coll.bands}) == len(coll.bands)
    assert [PRESETS["planetary_computer"].collections["landsat-c2-l2"].asset(b) for b in LS_BANDS] == \
        list(LS_BANDS.values())
