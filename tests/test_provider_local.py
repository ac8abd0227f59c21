"""Tests of the ``local`` provider (STAC catalogue + COG files, read with odc-stac)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from eoembed.errors import ConfigError, NoDataError, ProviderError, TransientProviderError
from eoembed.grid import GridSpec, grid_for
from eoembed.providers import get_provider
from eoembed.providers.local import LocalProvider, provider_error
from eoembed.providers.sample import generate
from eoembed.specs import BBox, PointBuffer, SensorSpec, TemporalSpec

# "edge" straddles the UTM 31/32 boundary at 6 deg E; its tile is in zone 31
SITES = [("nl", 5.62, 52.55), ("edge", 5.999, 52.55)]
YEAR = TemporalSpec.year(2023)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("cat"), SITES, 2023, dates_per_year=2, tile_px=96, seed=5)


def _features(index: Path, site: str) -> list[dict]:
    doc = json.loads(index.read_text())
    return [f for f in doc["features"] if f["properties"]["eoembed:site"] == site]


def _write(path: Path, features: list[dict], base: Path) -> Path:
    """A catalogue elsewhere, with absolute hrefs into the generated files."""
    features = copy.deepcopy(features)
    for f in features:
        for asset in f["assets"].values():
            if not Path(asset["href"]).is_absolute():
                asset["href"] = str(base / asset["href"])
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _src(index: Path, feature: dict, band: str) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(index.parent / feature["assets"][band]["href"]) as src:
        return src.read(1), src.transform, src.crs.to_string()


def _aligned_grid(index: Path) -> tuple[GridSpec, PointBuffer]:
    """A 30 x 40 px grid on the tile's own 10 m pixels, offset (10, 20) px from its corner."""
    feature = _features(index, "nl")[0]
    _, t, crs = _src(index, feature, "B02")
    grid = GridSpec(crs, (10.0, 0.0, t.c + 100, 0.0, -10.0, t.f - 200), 30, 40)
    return grid, PointBuffer(5.62, 52.55, 100)


def test_values_match_source_pixels_on_aligned_grid(index):
    grid, roi = _aligned_grid(index)
    sensor = SensorSpec(bands=("B02", "B05"), cloudy_pct=100)
    stack = LocalProvider(index).fetch(roi, YEAR, sensor, grid)
    nearest = LocalProvider(index, resampling="nearest").fetch(roi, YEAR, sensor, grid)
    feats = sorted(_features(index, "nl"), key=lambda f: f["properties"]["datetime"])
    assert stack.data.shape == (2, 2, 40, 30) and stack.data.dtype == np.float32
    assert stack.qa.shape == (2, 40, 30) and stack.qa.dtype == np.uint8
    assert stack.grid == grid and stack.bands == ("B02", "B05")
    assert stack.collection == "sentinel-2-l2a"
    assert stack.scenes == [[f["id"]] for f in feats]
    assert stack.times == [dt.datetime.fromisoformat(f["properties"]["datetime"]) for f in feats]
    assert all(t.tzinfo is not None for t in stack.times)
    for t, feature in enumerate(feats):
        b02, _, _ = _src(index, feature, "B02")
        np.testing.assert_array_equal(stack.data[t, 0], b02[20:60, 10:40].astype(np.float32))
        up = lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[20:60, 10:40]  # 20 m -> 10 m
        b05, _, _ = _src(index, feature, "B05")
        scl, _, _ = _src(index, feature, "SCL")
        np.testing.assert_array_equal(nearest.data[t, 1], up(b05).astype(np.float32))
        np.testing.assert_array_equal(stack.qa[t], up(scl))
        # the default upsamples 20 m bands bilinearly: compare with GDAL's own warp
        _, transform, crs = _src(index, feature, "B05")
        expected = np.zeros((grid.height, grid.width), np.float32)
        reproject(b05.astype(np.float32), expected, src_transform=transform, src_crs=crs,
                  dst_transform=grid.affine(), dst_crs=grid.crs, resampling=Resampling.bilinear)
        assert np.abs(stack.data[t, 1] - expected).max() <= 1.0  # uint16 rounding
        assert not np.array_equal(stack.data[t, 1], nearest.data[t, 1])


def test_half_open_window_and_same_day_mosaic(index, tmp_path):
    feats = _features(index, "nl")
    moved = copy.deepcopy(feats[1])
    moved["properties"]["datetime"] = "2023-10-01T00:00:00Z"
    twin = copy.deepcopy(feats[0])
    twin["id"] = feats[0]["id"] + "_twin"
    twin["properties"]["datetime"] = (dt.datetime.fromisoformat(feats[0]["properties"]["datetime"])
                                      + dt.timedelta(minutes=1)).isoformat()
    provider = LocalProvider(_write(tmp_path / "c.json", [feats[0], moved, twin], index.parent))
    grid, roi = _aligned_grid(index)
    sensor = SensorSpec(bands=("B04",))
    before_end = provider.fetch(roi, TemporalSpec.range("2023-01-01", "2023-10-01"), sensor, grid)
    assert before_end.scenes == [sorted([feats[0]["id"], twin["id"]])]  # one solar day
    assert len(before_end.times) == 1 and before_end.data.shape[0] == 1
    at_start = provider.fetch(roi, TemporalSpec.range("2023-10-01", "2023-10-02"), sensor, grid)
    assert at_start.scenes == [[moved["id"]]]


def test_cloud_cover_filter(index):
    feats = _features(index, "nl")
    covers = sorted((f["properties"]["eo:cloud_cover"], f["id"]) for f in feats)
    assert covers[0][0] < covers[1][0]
    grid, roi = _aligned_grid(index)
    limit = (covers[0][0] + covers[1][0]) / 2
    stack = LocalProvider(index).fetch(roi, YEAR, SensorSpec(bands=("B04",), cloudy_pct=limit), grid)
    assert stack.scenes == [[covers[0][1]]]
    with pytest.raises(NoDataError, match="eo:cloud_cover <= "):
        LocalProvider(index).fetch(roi, YEAR, SensorSpec(bands=("B04",), cloudy_pct=covers[0][0] / 2),
                                   grid)


def test_no_data_outside_tiles_or_window(index):
    roi = PointBuffer(0.5, 0.5, 200)
    with pytest.raises(NoDataError) as err:
        LocalProvider(index).fetch(roi, YEAR, SensorSpec(bands=("B04",)), grid_for(roi, 10))
    assert "0.49" in str(err.value) and "2023-01-01" in str(err.value) and "100.0" in str(err.value)
    grid, roi = _aligned_grid(index)
    with pytest.raises(NoDataError):
        LocalProvider(index).fetch(roi, TemporalSpec.year(2022), SensorSpec(bands=("B04",)), grid)


def test_missing_or_unreadable_files_are_permanent_errors(index, tmp_path):
    grid, roi = _aligned_grid(index)
    sensor = SensorSpec(bands=("B04",))
    feats = copy.deepcopy(_features(index, "nl"))
    gone = str(tmp_path / "nowhere" / "B04.tif")
    feats[0]["assets"]["B04"]["href"] = gone
    with pytest.raises(ProviderError, match="nowhere/B04.tif") as err:
        LocalProvider(_write(tmp_path / "a.json", feats, index.parent)).fetch(roi, YEAR, sensor, grid)
    assert not isinstance(err.value, (TransientProviderError, NoDataError))

    broken = tmp_path / "broken.tif"
    broken.write_text("not a GeoTIFF")
    feats[0]["assets"]["B04"]["href"] = str(broken)
    with pytest.raises(ProviderError, match="broken.tif") as err:
        LocalProvider(_write(tmp_path / "b.json", feats, index.parent)).fetch(roi, YEAR, sensor, grid)
    assert not isinstance(err.value, TransientProviderError)

    del feats[0]["assets"]["SCL"]
    with pytest.raises(ProviderError, match="no asset 'SCL'"):
        LocalProvider(_write(tmp_path / "c.json", feats, index.parent)).fetch(roi, YEAR, sensor, grid)
    with pytest.raises(ProviderError, match="not found"):
        LocalProvider(tmp_path / "missing.json").fetch(roi, YEAR, sensor, grid)


def test_catalogue_items_are_built_only_when_a_search_returns_them(index, tmp_path):
    """Reading the catalogue builds no pystac Item; a search builds the items it returns, the
    same ones (ids, absolute hrefs) read_catalog builds. A malformed item elsewhere in the file
    breaks nothing until a search returns it, then its own error names it; an unreadable
    file or geometry is refused when the catalogue is read."""
    from eoembed.providers.index import CatalogIndex, read_catalog

    grid, roi = _aligned_grid(index)
    sensor = SensorSpec(bands=("B04",))
    nl, edge = copy.deepcopy(_features(index, "nl")), copy.deepcopy(_features(index, "edge"))
    cat = _write(tmp_path / "lazy.json", nl + edge, index.parent)
    doc = json.loads(cat.read_text())
    doc["features"][len(nl)]["assets"] = "not a dict of assets"
    cat.write_text(json.dumps(doc))
    provider = LocalProvider(cat)
    idx = provider.index
    assert len(idx) == len(nl) + len(edge) and idx._items == [None] * len(idx)
    found = provider.search(roi, YEAR, sensor)
    assert found and len(found) < len(nl) + len(edge)
    built = [i for i, it in enumerate(idx._items) if it is not None]
    assert [idx._items[i].id for i in built] == [it.id for it in found]  # nothing else built
    good = {it.id: it for it in read_catalog(_write(tmp_path / "nl.json", nl, index.parent))}
    plain = {f["id"]: pystac.Item.from_dict(f) for f in json.loads(cat.read_text())["features"][:len(nl)]}
    for it in found:  # everything as pystac's own from_dict gives it (hrefs here already absolute)
        assert it.to_dict() == good[it.id].to_dict() == plain[it.id].to_dict()
        assert it.geometry == next(f["geometry"] for f in nl if f["id"] == it.id)
    lazy, whole = provider.fetch(roi, YEAR, sensor, grid), LocalProvider(index).fetch(roi, YEAR, sensor, grid)
    assert lazy.scenes == whole.scenes
    np.testing.assert_array_equal(lazy.data, whole.data)

    with pytest.raises(ProviderError, match=f"item {edge[0]['id']!r} of catalog .* not a readable STAC Item"):
        provider.search(PointBuffer(5.999, 52.55, 100), YEAR, sensor)
    with pytest.raises(ProviderError, match="not a readable STAC ItemCollection"):
        read_catalog(cat)  # everything at once: the bad item is found at once
    bad_geometry = copy.deepcopy(nl)
    bad_geometry[1]["geometry"] = {"type": "Polygon", "coordinates": "oops"}
    with pytest.raises(ProviderError, match="lazy2.json.*not a readable"):
        LocalProvider(_write(tmp_path / "lazy2.json", bad_geometry, index.parent)).index
    (tmp_path / "lazy3.json").write_text('{"features": 3}')
    with pytest.raises(ProviderError, match="not a readable STAC ItemCollection"):
        LocalProvider(tmp_path / "lazy3.json").index
    assert isinstance(idx, CatalogIndex)


def test_transient_errors_are_recognised():
    assert isinstance(provider_error("HTTP response code: 503"), TransientProviderError)
    assert isinstance(provider_error("CURL error: Operation timed out after 30000 ms"),
                      TransientProviderError)
    permanent = provider_error("'/data/x/B04.tif' not recognized as a supported file format")
    assert type(permanent) is ProviderError
    assert type(provider_error("HTTP response code: 404")) is ProviderError


def test_roi_in_another_utm_zone_is_reprojected(index):
    feature = _features(index, "edge")[0]
    roi = PointBuffer(6.0015, 52.55, 60)  # UTM 32 while the tile is in UTM 31
    grid = grid_for(roi, 10)
    assert grid.crs == "EPSG:32632"
    stack = LocalProvider(index).fetch(roi, TemporalSpec.range(feature["properties"]["datetime"][:10],
                                                               "2023-12-31"),
                                       SensorSpec(bands=("B08",)), grid)
    got = stack.data[0, 0]
    assert np.isfinite(got).all() and stack.qa[0].min() > 0
    src, transform, crs = _src(index, feature, "B08")
    expected = np.zeros((grid.height, grid.width), np.float32)
    reproject(src.astype(np.float32), expected, src_transform=transform, src_crs=crs,
              dst_transform=grid.affine(), dst_crs=grid.crs, resampling=Resampling.bilinear)
    assert np.abs(got - expected).mean() < 0.02 * expected.mean()


def test_bbox_roi_and_parquet_catalogue(index, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from shapely.geometry import shape

    feats = _features(index, "nl")
    rows = []
    for f in feats:  # the stac-geoparquet layout: WKB geometry, bbox struct, top-level properties
        props = dict(f["properties"])
        props["datetime"] = dt.datetime.fromisoformat(props["datetime"])
        assets = {k: {**a, "href": str(index.parent / a["href"])} for k, a in f["assets"].items()}
        rows.append({"type": "Feature", "stac_version": "1.1.0", "id": f["id"],
                     "geometry": shapely.to_wkb(shape(f["geometry"])),
                     "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), f["bbox"])),
                     "collection": f["collection"], "assets": assets, **props})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "items.parquet")
    grid, _ = _aligned_grid(index)
    box = BBox(5.61, 52.54, 5.63, 52.56)
    sensor = SensorSpec(bands=("B03",))
    from_json = LocalProvider(index).fetch(box, YEAR, sensor, grid)
    from_parquet = get_provider("local", catalog=str(tmp_path / "items.parquet")).fetch(
        box, YEAR, sensor, grid)
    assert from_parquet.scenes == from_json.scenes
    np.testing.assert_array_equal(from_parquet.data, from_json.data)


def test_parquet_catalogue_is_indexed_from_its_columns(index, tmp_path):
    """A stac-geoparquet catalogue is indexed from whole columns (WKB geometry, else the bbox
    struct; datetime, naive = UTC, else start_datetime; cloud cover; collection) and a row
    becomes an Item only when a search returns it: the same index columns and Items as the
    row-by-row conversion of every row (read_catalog), and the same search results."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from shapely.geometry import shape

    from eoembed.providers.catalog_parquet import ParquetEntries, features_of
    from eoembed.providers.index import CatalogIndex, read_catalog

    feats = _features(index, "nl") + _features(index, "edge")
    rows = []
    for k, f in enumerate(feats):
        props = dict(f["properties"])
        when = dt.datetime.fromisoformat(props.pop("datetime").replace("Z", "+00:00"))
        assets = {b: {**a, "href": str(index.parent / a["href"])} for b, a in f["assets"].items()}
        rows.append({"type": "Feature", "stac_version": "1.1.0", "id": f["id"],
                     "geometry": None if k == 1 else shapely.to_wkb(shape(f["geometry"])),
                     "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), f["bbox"])),
                     "collection": f["collection"], "assets": assets, **props,
                     "datetime": None if k == 2 else when.replace(tzinfo=None) if k == 3 else when,
                     "start_datetime": when if k == 2 else None, "end_datetime": when if k == 2 else None})
    path = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)

    provider = LocalProvider(path)
    lazy = provider.index
    assert lazy._items == [None] * len(feats)
    eager = CatalogIndex(features_of(pq.read_table(path)), path.parent)  # the row-by-row columns
    assert lazy.ids == eager.ids and lazy.clouds == eager.clouds and lazy.collections == eager.collections
    assert lazy.times == eager.times and None not in lazy.times
    assert all(a.equals(b) for a, b in zip(lazy.footprints, eager.footprints))
    assert lazy.footprints[1].equals(shapely.box(*feats[1]["bbox"]))  # no geometry: its bbox
    assert lazy.times[3].tzinfo is not None  # a naive datetime is UTC

    grid, roi = _aligned_grid(index)
    sensor = SensorSpec(bands=("B04",))
    found = provider.search(roi, YEAR, sensor)
    assert [it.id for it in found] == [it.id for it in LocalProvider(index).search(roi, YEAR, sensor)]
    assert sum(it is not None for it in lazy._items) == len(found)
    every = {it.id: it for it in read_catalog(path)}
    for it in found:
        assert it.to_dict() == every[it.id].to_dict()
    assert len(ParquetEntries(path)) == len(feats)


def test_registry(index):
    provider = get_provider("local", catalog=str(index))
    assert isinstance(provider, LocalProvider)
    assert provider.describe() == {"provider": "local", "catalog": str(index)}
    with pytest.raises(ConfigError, match="'local'"):
        get_provider("nope")
    with pytest.raises(ConfigError, match="resampling"):
        get_provider("local", catalog=str(index), resampling="magic")
