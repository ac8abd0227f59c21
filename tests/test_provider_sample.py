"""Tests of the GENERATED demo imagery (eoembed.providers.sample)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy.stats import spearmanr

from eoembed.errors import ConfigError
from eoembed.providers.sample import demo_labels, demo_rois, demo_sites, generate

S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
       "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20}
# (name, lon, lat): Netherlands = UTM 31N (EPSG:32631); Kenya south of the equator = 37S (32737)
SITES = [("nl", 5.62, 52.55), ("ke", 36.02, -0.35)]
EPSG = {"nl": "EPSG:32631", "ke": "EPSG:32737"}
TILE = 144


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("demo"), SITES, 2023, dates_per_year=4, tile_px=TILE,
                    seed=7)


def _items(index: Path) -> list[dict]:
    return json.loads(index.read_text())["features"]


def _read(index: Path, item: dict, band: str) -> np.ndarray:
    with rasterio.open(index.parent / item["assets"][band]["href"]) as src:
        return src.read(1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_is_deterministic_and_rerun_is_cheap(demo, tmp_path):
    again = generate(tmp_path / "b", SITES, 2023, dates_per_year=4, tile_px=TILE, seed=7)
    first, second = _files(demo.parent), _files(again.parent)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
    mtimes = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*.tif")}
    generate(tmp_path / "b", SITES, 2023, dates_per_year=4, tile_px=TILE, seed=7)
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*.tif")} == mtimes
    other = generate(tmp_path / "c", SITES, 2023, dates_per_year=4, tile_px=TILE, seed=8)
    a = _read(demo, _items(demo)[0], "B08")
    b = _read(other, _items(other)[0], "B08")
    assert not np.array_equal(a, b)


def test_cogs_are_valid_with_native_resolution_and_crs(demo):
    for item in _items(demo):
        site = item["properties"]["eoembed:site"]
        bounds = set()
        for band, res in RES.items():
            with rasterio.open(demo.parent / item["assets"][band]["href"]) as src:
                assert src.crs.to_string() == EPSG[site]
                assert src.res == (res, res)
                assert src.width == TILE * 10 // res
                assert src.profile.get("tiled") and src.block_shapes[0] == (128, 128)
                assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
                assert src.compression.name.lower() == "deflate"
                assert src.nodata == 0
                assert src.dtypes[0] == ("uint8" if band == "SCL" else "uint16")
                if src.width > 128:
                    assert src.overviews(1) == [2]
                bounds.add(tuple(round(v, 6) for v in src.bounds))
                # the STAC asset's projection fields describe the file
                assert tuple(item["assets"][band]["proj:shape"]) == (src.height, src.width)
                assert tuple(item["assets"][band]["proj:transform"]) == tuple(src.transform)[:6]
        assert len(bounds) == 1  # every band covers the same tile


def test_index_lists_items_with_stac_properties(demo):
    items = _items(demo)
    assert len(items) == len(SITES) * 4
    assert len({i["id"] for i in items}) == len(items)
    for site, lon, _ in SITES:
        mine = [i for i in items if i["properties"]["eoembed:site"] == site]
        times = sorted(dt.datetime.fromisoformat(i["properties"]["datetime"]) for i in mine)
        assert len(times) == 4 and all(t.year == 2023 for t in times)
        assert min(b - a for a, b in zip(times, times[1:])) > dt.timedelta(days=80)
        # about 10:30 local solar time
        solar_hours = [(t.hour + t.minute / 60 + lon / 15) % 24 for t in times]
        assert all(abs(h - 10.5) < 0.1 for h in solar_hours)
    for item in items:
        props = item["properties"]
        assert props["eoembed:generated"] is True
        assert props["proj:code"] == EPSG[props["eoembed:site"]]
        assert 0 <= props["eo:cloud_cover"] <= 100
        assert item["collection"] == "sentinel-2-l2a"
        assert set(item["assets"]) == set(S2) | {"SCL"}
        for asset in item["assets"].values():
            assert not Path(asset["href"]).is_absolute()
            assert (demo.parent / asset["href"]).is_file()
            assert asset["raster:bands"][0]["nodata"] == 0
        lons = [c[0] for c in item["geometry"]["coordinates"][0]]
        assert min(lons) == pytest.approx(item["bbox"][0]) and max(lons) == pytest.approx(item["bbox"][2])


def test_cloud_cover_matches_scl_and_bright_pixels_are_flagged(demo):
    covers = {}
    for item in _items(demo):
        scl = _read(demo, item, "SCL")
        blue = _read(demo, item, "B02").astype(float)
        pct = 100 * np.isin(scl, (8, 9, 10)).mean()
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(pct, abs=1e-3)
        # clear land/water surfaces are far darker than 0.25 in blue: bright pixels are clouds
        bright = blue.reshape(TILE // 2, 2, TILE // 2, 2).max(axis=(1, 3)) > 2500
        assert np.isin(scl[bright], (3, 8, 9, 10)).all()
        assert set(np.unique(scl)) <= {3, 4, 5, 6, 8, 9, 10}
        covers.setdefault(item["properties"]["eoembed:site"], []).append(pct)
    for site, values in covers.items():
        assert max(values) > 40, site  # every site has a cloudy date ...
        assert min(values) < max(values) / 2  # ... and clearer ones


def test_spectra_and_phenology_are_plausible(demo):
    items = _items(demo)
    ndvi_by_site: dict[str, list[float]] = {}
    for item in items:
        scl = _read(demo, item, "SCL")
        b = {k: _read(demo, item, k).astype(float) for k in ("B04", "B08", "B11", "B12", "B8A")}
        red = b["B04"].reshape(TILE // 2, 2, TILE // 2, 2).mean(axis=(1, 3))
        nir = b["B08"].reshape(TILE // 2, 2, TILE // 2, 2).mean(axis=(1, 3))
        if (scl == 6).sum() > 20:  # water: dark in NIR and SWIR
            assert np.median(nir[scl == 6]) < 600 and np.median(b["B11"][scl == 6]) < 300
        if (scl == 4).sum() > 20:  # vegetation: NIR plateau far above red, red-edge rise
            assert np.median(nir[scl == 4] / red[scl == 4]) > 3
            assert np.median(b["B8A"][scl == 4]) > np.median(red[scl == 4]) * 3
        clear = np.isin(scl, (4, 5))
        ndvi = (nir - red) / (nir + red)
        site = item["properties"]["eoembed:site"]
        ndvi_by_site.setdefault(site, []).append(float(np.median(ndvi[clear])))
    # dates: mid-Feb, mid-May, mid-Aug, mid-Nov; boreal summer greener than February,
    # the Kenyan (austral, short-rains) season peaks around February
    nl, ke = ndvi_by_site["nl"], ndvi_by_site["ke"]
    assert nl[2] > nl[0] + 0.05
    assert ke[0] > ke[2] + 0.05


def test_demo_rois_inside_tiles_without_overlap(demo):
    from shapely.geometry import shape

    from eoembed.specs import PointBuffer

    rois = demo_rois(4, 100, 2023, SITES, TILE, seed=7)
    assert list(rois.columns[:5]) == ["roi_id", "lon", "lat", "buffer_m", "year"]
    assert len(rois) == 8 and rois.roi_id.is_unique and (rois.year == 2023).all()
    footprints = {i["properties"]["eoembed:site"]: shape(i["geometry"]) for i in _items(demo)}
    for site in footprints:
        squares = [PointBuffer(r.lon, r.lat, r.buffer_m).geometry()
                   for r in rois[rois.site == site].itertuples()]
        assert all(footprints[site].contains(s) for s in squares)
        assert all(not a.intersects(b) for i, a in enumerate(squares) for b in squares[i + 1:])
    defaults = demo_rois()
    assert len(defaults) == 8 * len(demo_sites())
    for site in defaults.site.unique():
        squares = [PointBuffer(r.lon, r.lat, r.buffer_m).geometry()
                   for r in defaults[defaults.site == site].itertuples()]
        assert all(not a.intersects(b) for i, a in enumerate(squares) for b in squares[i + 1:])
    assert len({s[0] for s in demo_sites()}) >= 6
    assert any(lat < 0 for _, _, lat in demo_sites())


def test_labels_are_learnable_from_imagery(tmp_path):
    from eoembed.grid import grid_for
    from eoembed.providers.local import LocalProvider
    from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

    sites = [("nl", 5.62, 52.55), ("ke", 36.02, -0.35), ("us", -93.62, 42.03)]
    index = generate(tmp_path, sites, 2023, dates_per_year=6, tile_px=192, seed=3)
    rois = demo_rois(9, 150, 2023, sites, 192, seed=3)
    labels = demo_labels(index, rois)
    assert list(labels.roi_id) == list(rois.roi_id)
    assert (labels.yield_t_ha >= 0).all() and labels.yield_t_ha.std() > 0.5
    assert set(labels.landcover) <= {"water", "forest", "cropland", "urban", "bare"}
    assert labels.landcover.nunique() >= 2
    provider, sensor = LocalProvider(index), SensorSpec(bands=("B04", "B08"))
    amplitude = []
    for roi in rois.itertuples():
        spatial = PointBuffer(roi.lon, roi.lat, roi.buffer_m)
        stack = provider.fetch(spatial, TemporalSpec.year(2023), sensor, grid_for(spatial, 10))
        red, nir = stack.data[:, 0], stack.data[:, 1]
        ndvi = np.where(np.isin(stack.qa, (4, 5, 6)), (nir - red) / (nir + red), np.nan)
        per_date = [np.nanmean(d) for d in ndvi if np.isfinite(d).any()]
        amplitude.append(max(per_date) - min(per_date))  # crops green up and brown down
    rho = spearmanr(labels.yield_t_ha, amplitude).statistic
    assert rho > 0.5
    # labels come with the ROI table; outside every tile is an error
    with pytest.raises(ConfigError, match="roi 'far'"):
        demo_labels(index.parent, [{"roi_id": "far", "lon": 0.0, "lat": 0.0, "buffer_m": 100}])


@pytest.mark.parametrize("kwargs, field", [({"tile_px": 100}, "tile_px"),
                                           ({"dates_per_year": 0}, "dates_per_year"),
                                           ({"sites": [("bad name", 0.0, 0.0)]}, "site name"),
                                           ({"sites": []}, "sites")])
def test_invalid_arguments_are_named(tmp_path, kwargs, field):
    args = {"sites": SITES, "tile_px": TILE, **kwargs}
    with pytest.raises(ConfigError, match=field):
        generate(tmp_path, **args)
