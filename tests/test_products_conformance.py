"""Conformance: every published layout, read through eoembed, against an independent reading.

The files come from our own generators of the layouts TorchGeo's fixtures cover
(:mod:`products_layouts`); the expected values from rasterio / numpy / pyarrow + pyproj with
decoders written from each product's documentation (:mod:`products_oracle`).

* Pixel products, ROI no larger than a product pixel: pooled == the product pixel holding the
  ROI's centroid, exactly (random points, including ROIs that straddle pixel edges).
* Pixel products, larger ROI: each grid pixel == the product pixel holding its centre (exactly;
  where the centre lies within 0.15 px of a product pixel edge and the file is in another CRS,
  one of the pixels touching that edge), pooled == the mean over grid pixels inside the ROI.
* Patch products: the patches intersecting the ROI in the window, weighted by intersection area.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from eoembed.grid import GridSpec
from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.specs import BBox, PointBuffer, TemporalSpec

from products_layouts import PATCH_LAYOUTS, PIXEL_LAYOUTS
from products_oracle import RasterOracle, patch_expected


def read(layout, spatial, year=None, grid=True):
    emb = create(layout.model, dict(layout.options), source=str(layout.source))
    req = Request("r", spatial, TemporalSpec.year(year or layout.year))
    (arrays, rec), = emb.embed_requests([req], pooling="mean", grid=grid, cell_m=None).values()
    return arrays, rec


def _centre_lonlat(oracle: RasterOracle, dcol: float = 0.0, drow: float = 0.0):
    from rasterio.warp import transform

    h, w = oracle.shape
    x, y = oracle.transform @ (w / 2 + dcol, h / 2 + drow)
    lon, lat = transform(oracle.crs, "EPSG:4326", [x], [y])
    return float(lon[0]), float(lat[0])


def _pixel_m(layout) -> float:
    return 27830.0 if layout.model == "copernicus_embed" else (30.0 if layout.model == "esd" else 10.0)


@pytest.mark.parametrize("name", sorted(PIXEL_LAYOUTS))
def test_sub_pixel_rois_get_the_pixel_holding_their_centroid(tmp_path, name):
    layout = PIXEL_LAYOUTS[name](tmp_path)
    oracle = RasterOracle(layout)
    rng = np.random.default_rng(42)
    res = _pixel_m(layout)
    checked = 0
    for _ in range(12):
        lon, lat = _centre_lonlat(oracle, *rng.uniform(-0.45, 0.45, 2) * oracle.shape[0])
        expected, edge = oracle.at(lon, lat)
        if expected is None or edge < 0.02:  # a centroid on a pixel edge: either pixel is right by convention
            continue
        buffer_m = float(rng.uniform(0.05, 0.45)) * res  # straddles pixel edges often
        arrays, rec = read(layout, PointBuffer(lon, lat, buffer_m))
        if np.isnan(expected).all():
            assert rec["status"] == "failed" and "no valid" in rec["error"], rec
            continue
        assert rec["status"] == "ok" and rec["sampling"] == "centroid pixel", rec
        np.testing.assert_allclose(arrays["pooled"], expected.astype(np.float32), rtol=1e-6, atol=0)
        assert arrays["grid"].shape == (expected.size, 1, 1)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("name", sorted(PIXEL_LAYOUTS))
def test_larger_rois_read_each_grid_pixel_at_its_centre(tmp_path, name):
    from pyproj import Transformer

    layout = PIXEL_LAYOUTS[name](tmp_path)
    oracle = RasterOracle(layout)
    res = _pixel_m(layout)
    # off-centre by a fraction of a pixel: product pixels straddle the ROI edge
    lon, lat = _centre_lonlat(oracle, 0.37, -0.21)
    spatial = PointBuffer(lon, lat, 3.3 * res)
    arrays, rec = read(layout, spatial)
    assert rec["status"] in ("ok", "partial") and rec["sampling"] == "roi grid", rec
    grid = GridSpec.from_dict(rec["grid"])
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    fx, fy = oracle.to_file_crs(xx, yy, grid.crs)
    lons, lats = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xx.ravel(), yy.ravel())
    inside = shapely.contains_xy(spatial.geometry(), lons, lats).reshape(xx.shape)
    got = arrays["grid"]
    expected = np.full(got.shape, np.nan)
    same_crs = str(grid.crs) == str(oracle.crs.to_string())
    ambiguous = 0
    for k, (x, y) in enumerate(zip(fx, fy)):
        r, c = divmod(k, grid.width)
        exact, near = oracle.candidates(x, y)
        if exact is None:
            continue
        if same_crs or np.array_equal(got[:, r, c], exact.astype(np.float32), equal_nan=True):
            expected[:, r, c] = exact
        else:
            assert any(np.array_equal(got[:, r, c], v.astype(np.float32), equal_nan=True)
                       for v in near), (r, c)
            expected[:, r, c] = got[:, r, c]
            ambiguous += 1
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert ambiguous <= 2
    valid = inside & np.isfinite(expected).all(axis=0)
    np.testing.assert_allclose(arrays["pooled"], expected[:, valid].mean(axis=1), rtol=1e-5, atol=1e-6)
    assert rec["valid_fraction"][0] == pytest.approx(valid.sum() / inside.sum())


def _patch_rois(layout):
    from products_layouts import LAT0, LON0

    if layout.name == "earth_index":
        return [BBox(LON0 - 0.0005, LAT0 - 0.0005, LON0 + 0.0005, LAT0 + 0.0005),
                BBox(LON0 + 0.0005, LAT0 - 0.001, LON0 + 0.0035, LAT0 + 0.001)]
    if layout.name == "clay_v15_naip":
        return [BBox(LON0 - 0.0005, LAT0 - 0.0005, LON0 + 0.0015, LAT0 + 0.0005)]
    if layout.name == "earth_embeddings":
        return [BBox(LON0 + 0.005, LAT0 - 0.01, LON0 + 0.04, LAT0 + 0.01)]
    return [BBox(LON0 + 0.002, LAT0 - 0.004, LON0 + 0.016, LAT0 + 0.004),
            BBox(LON0 + 0.005, LAT0 + 0.005, LON0 + 0.025, LAT0 + 0.025)]


@pytest.mark.parametrize("name", sorted(PATCH_LAYOUTS))
def test_patch_layouts_pool_the_intersecting_patches_by_area(tmp_path, name):
    layout = PATCH_LAYOUTS[name](tmp_path)
    for roi in _patch_rois(layout):
        arrays, rec = read(layout, roi)
        idx, w, pooled, cover, emb = patch_expected(layout, roi.geometry(), "2024-01-01", "2025-01-01")
        assert len(idx) >= 1 and rec["status"] in ("ok", "partial"), rec
        order = np.argsort([int(i.rsplit(":", 1)[1]) for i in rec["patch_ids"]])
        np.testing.assert_array_equal(np.sort([int(i.rsplit(":", 1)[1]) for i in rec["patch_ids"]]), idx)
        np.testing.assert_allclose(np.asarray(rec["patch_weights"])[order], w, rtol=2e-3)
        np.testing.assert_allclose(arrays["patches"][order], emb[idx].astype(np.float32), rtol=1e-7)
        np.testing.assert_allclose(arrays["pooled"], pooled, rtol=2e-3, atol=1e-4)
        assert rec["valid_fraction"][0] == pytest.approx(cover, rel=5e-3)
    # outside the data's dates: dated products find no patch, static ones fail on their coverage
    _, rec = read(layout, _patch_rois(layout)[0], year=2023)
    assert rec["status"] == "failed" and ("no patch" in rec["error"] or "coverage" in rec["error"]), rec
