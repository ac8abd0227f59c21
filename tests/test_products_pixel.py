"""Pixel-typed products read from tiny files in their real layouts: values checked exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eoembed.grid import GridSpec, to_crs
from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.products.base import request_year
from eoembed.specs import BBox, PointBuffer, TemporalSpec

from products_fixtures import (UTM31, X0, Y0, aef_codes, utm_to_lonlat, write_aef_tile, write_copernicus,
                               write_esd_tile, write_geotiff, write_tessera_npy, write_tessera_tiff)


def lookup(grid: GridSpec, logical: np.ndarray, x0: float, y0: float, res: float, crs: str = UTM31):
    """Values of a north-up ``logical`` tile at each grid pixel centre (nearest = containing pixel)."""
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    if grid.crs != crs:
        xx, yy = (np.asarray(v) for v in to_crs(xx.ravel(), yy.ravel(), grid.crs, crs))
        xx, yy = xx.reshape(grid.height, grid.width), yy.reshape(grid.height, grid.width)
    cols = np.floor((xx - x0) / res).astype(int)
    rows = np.floor((y0 - yy) / res).astype(int)
    return logical[:, rows, cols]


def roi_at(x: float, y: float, buffer_m: float, crs: str = UTM31) -> PointBuffer:
    lon, lat = utm_to_lonlat(x, y, crs)
    return PointBuffer(float(lon), float(lat), buffer_m)


def run(model, source, spatial, year=2023, grid=True, **kw):
    emb = create(model, kw.pop("options", None), source=str(source))
    req = Request("r", spatial, TemporalSpec.year(year))
    (arrays, rec), = emb.embed_requests([req], pooling="mean", grid=grid, cell_m=None).values()
    return arrays, rec


# ------------------------------------------------------------------ GSE / AlphaEarth


def test_gse_bottom_up_int8_tile_dequantized_north_up_with_nodata(tmp_path):
    codes = aef_codes(64, 64)
    codes[:, 0, :] = 127          # northernmost row: +(127/127.5)^2
    codes[:, -1, :] = -64         # southernmost row: -(64/127.5)^2
    codes[:, 30:32, 30:34] = -128  # nodata block inside the ROI
    write_aef_tile(tmp_path, 2023, codes, bottom_up=True)
    spatial = roi_at(X0 + 320, Y0 - 320, 300)
    arrays, rec = run("gse", tmp_path, spatial)
    assert rec["status"] == "partial" and rec["product_year"] == 2023
    g = arrays["grid"]
    grid = GridSpec.from_dict(rec["grid"])
    raw = lookup(grid, codes, X0, Y0, 10.0)
    v = raw.astype(np.float64)
    expected = np.where(raw == -128, np.nan, np.sign(v) * (np.abs(v) / 127.5) ** 2)
    np.testing.assert_allclose(g, expected, rtol=1e-6, equal_nan=True)
    # known codes, computed by hand
    assert np.isclose((127 / 127.5) ** 2, 0.992172241, atol=1e-9)
    top = lookup(grid, codes, X0, Y0, 10.0)[0]
    # orientation: the grid's first row is the northernmost tile row present in the window
    first_row_tile = int(np.floor((Y0 - grid.y_coords()[0]) / 10.0))
    assert first_row_tile >= 0 and np.array_equal(top[0], codes[0, first_row_tile, lookup_cols(grid)])
    inside = grid.inside_mask(spatial.geometry())
    ok = inside & np.isfinite(expected).all(axis=0)
    np.testing.assert_allclose(arrays["pooled"], expected[:, ok].mean(axis=1), rtol=1e-5)
    assert rec["valid_fraction"][0] == pytest.approx(ok.sum() / inside.sum())
    assert rec["grid"]["transform"][4] < 0 and rec["cell_px"] == 1


def lookup_cols(grid: GridSpec) -> np.ndarray:
    return np.floor((grid.x_coords() - X0) / 10.0).astype(int)


def test_gse_top_down_and_bottom_up_files_give_identical_embeddings(tmp_path):
    codes = aef_codes(48, 48, seed=3)
    write_aef_tile(tmp_path / "bu", 2022, codes, bottom_up=True)
    write_aef_tile(tmp_path / "td", 2022, codes, bottom_up=False)
    spatial = roi_at(X0 + 200, Y0 - 250, 150)
    a1, r1 = run("gse", tmp_path / "bu", spatial, year=2022)
    a2, r2 = run("gse", tmp_path / "td", spatial, year=2022)
    assert r1["status"] == r2["status"] == "ok"
    np.testing.assert_array_equal(a1["grid"], a2["grid"])
    assert r1["embedding_sha256"] == r2["embedding_sha256"]


def test_gse_outside_coverage_and_missing_year_fail_cleanly(tmp_path):
    write_aef_tile(tmp_path, 2023, aef_codes(32, 32))
    emb = create("gse", source=str(tmp_path))
    reqs = [Request("far", PointBuffer(20.0, 10.0, 100), TemporalSpec.year(2023)),
            Request("year", roi_at(X0 + 100, Y0 - 100, 50), TemporalSpec.year(2021)),
            Request("old", roi_at(X0 + 100, Y0 - 100, 50), TemporalSpec.year(2015)),
            Request("ok", roi_at(X0 + 100, Y0 - 100, 50), TemporalSpec.year(2023))]
    out = emb.embed_requests(reqs, pooling="mean", grid=False, cell_m=None)
    assert [out[k][1]["status"] for k in ("far", "year", "old", "ok")] == ["failed"] * 3 + ["ok"]
    assert out["far"][1]["stage"] == "read" and "NoDataError" in out["far"][1]["error"]
    assert "2015" in out["old"][1]["error"] and "2017..2025" in out["old"][1]["error"]
    assert out["ok"][0]["pooled"].shape == (64,) and "grid" not in out["ok"][0]


def test_gse_partially_covered_roi_is_partial_and_native_grid_option(tmp_path):
    write_aef_tile(tmp_path, 2023, aef_codes(32, 32))
    spatial = roi_at(X0 + 320, Y0 - 160, 150)  # straddles the tile's east edge
    arrays, rec = run("gse", tmp_path, spatial)
    assert rec["status"] == "partial" and 0.3 < rec["valid_fraction"][0] < 0.7
    arrays, rec = run("gse", tmp_path, spatial, options={"native_grid": True})
    grid = GridSpec.from_dict(rec["grid"])
    assert grid.crs == UTM31 and (grid.transform[2] - X0) % 10 == 0 and (Y0 - grid.transform[5]) % 10 == 0


def test_missing_source_fails_every_item_not_the_process(tmp_path):
    emb = create("gse", source=str(tmp_path / "nope"))
    with pytest.raises(Exception, match="does not exist"):
        emb.load()
    # a product is its own kind (issue 9 item 6): not an Embedder, nothing to run on composites
    from eoembed.models.base import Embedder

    assert not isinstance(emb, Embedder) and not hasattr(emb, "embed_batch")
    assert emb.card.kind == "precomputed" and emb.card.years == (2017, 2025)


def test_request_year_takes_the_year_with_most_days():
    assert request_year(dt.date(2022, 1, 1), dt.date(2023, 1, 1)) == 2022
    assert request_year(dt.date(2022, 10, 1), dt.date(2023, 6, 1)) == 2023
    assert request_year(dt.date(2022, 7, 2), dt.date(2023, 7, 2)) == 2022  # tie (183/182 days)


# ------------------------------------------------------------------ Tessera


def test_tessera_npy_dequantized_with_scales_and_zero_scale_is_nodata(tmp_path):
    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, (40, 40, 128)).astype(np.int8)
    scales = rng.uniform(0.01, 0.05, (40, 40)).astype(np.float32)
    scales[10, 10:14] = 0.0
    write_tessera_npy(tmp_path, 3.05, 52.35, 2024, q, scales, X0, Y0)
    spatial = roi_at(X0 + 200, Y0 - 200, 150)
    arrays, rec = run("tessera", tmp_path, spatial, year=2024)
    grid = GridSpec.from_dict(rec["grid"])
    logical = np.moveaxis(q.astype(np.float64) * scales[..., None], -1, 0)
    logical[:, scales == 0] = np.nan
    expected = lookup(grid, logical, X0, Y0, 10.0)
    np.testing.assert_allclose(arrays["grid"], expected, rtol=1e-6, equal_nan=True)
    assert rec["status"] == "partial" and rec["product_files"][0].endswith("grid_3.05_52.35.npy")


def test_tessera_geotiff_export_and_per_band_scales(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(128, 30, 30)).astype(np.float32)
    write_tessera_tiff(tmp_path / "tif", 3.05, 52.35, 2023, data, X0, Y0)
    q = rng.integers(-127, 128, (30, 30, 128)).astype(np.int8)
    s3 = rng.uniform(0.01, 0.02, (30, 30, 128)).astype(np.float32)
    write_tessera_npy(tmp_path / "npy", 3.05, 52.35, 2023, q, s3, X0, Y0, subdir=False)
    spatial = roi_at(X0 + 150, Y0 - 150, 100)
    a1, r1 = run("tessera", tmp_path / "tif", spatial)
    grid = GridSpec.from_dict(r1["grid"])
    np.testing.assert_array_equal(a1["grid"], lookup(grid, data, X0, Y0, 10.0))
    a2, r2 = run("tessera", tmp_path / "npy", spatial)
    expected = lookup(grid, np.moveaxis(q.astype(np.float32) * s3, -1, 0), X0, Y0, 10.0)
    np.testing.assert_allclose(a2["grid"], expected, rtol=1e-6)
    assert r1["status"] == r2["status"] == "ok"


# ------------------------------------------------------------------ ESD


def fsq_decode_by_hand(code: int) -> list[float]:
    """Independent FSQ decode: mixed radix, first level least significant, (d - L//2) / (L//2)."""
    out = []
    for level in (8, 8, 8, 5, 5, 5):
        d = code % level
        code //= level
        out.append((d - level // 2) / (level // 2))
    return out


def test_esd_codes_decoded_after_nearest_neighbour(tmp_path):
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 64000, (12, 20, 20)).astype(np.uint16)
    codes[:, 5, 5] = 65535
    write_esd_tile(tmp_path, 2020, codes)
    spatial = roi_at(X0 + 300, Y0 - 300, 200)
    arrays, rec = run("esd", tmp_path, spatial, year=2020)
    grid = GridSpec.from_dict(rec["grid"])
    assert grid.res == 30.0 and arrays["grid"].shape[0] == 72
    picked = lookup(grid, codes, X0, Y0, 30.0)
    expected = np.full((72,) + picked.shape[1:], np.nan)
    for r in range(picked.shape[1]):
        for c in range(picked.shape[2]):
            for b in range(12):
                if picked[b, r, c] != 65535:
                    expected[b * 6:(b + 1) * 6, r, c] = fsq_decode_by_hand(int(picked[b, r, c]))
    np.testing.assert_allclose(arrays["grid"], expected, equal_nan=True)
    assert fsq_decode_by_hand(0) == [-1, -1, -1, -1, -1, -1]
    assert fsq_decode_by_hand(63999) == [0.75, 0.75, 0.75, 1, 1, 1]
    # every decoded value is a codebook level: codes were never interpolated
    vals = arrays["grid"][np.isfinite(arrays["grid"])]
    assert set(np.unique(vals)) <= {-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0}


# ------------------------------------------------------------------ Copernicus-Embed


def test_copernicus_embed_ocean_zero_is_nodata_and_year_2021_only(tmp_path):
    data = np.arange(768 * 4 * 4, dtype=np.float32).reshape(768, 4, 4) + 1
    data[:, 0, 0] = 0.0  # ocean pixel (north-west corner)
    path = write_copernicus(tmp_path / "copernicus_embed.tif", data, 4.0, 52.0)
    inside = BBox(4.30, 51.30, 4.45, 51.45)  # in pixel (row 2, col 1)
    arrays, rec = run("copernicus_embed", path, inside, year=2021)
    assert rec["status"] == "ok"
    np.testing.assert_array_equal(arrays["pooled"], data[:, 2, 1])
    ocean = BBox(4.05, 51.80, 4.15, 51.90)  # in pixel (0, 0): ocean
    _, rec = run("copernicus_embed", path, ocean, year=2021, grid=False)
    assert rec["status"] == "failed" and "no valid" in rec["error"]
    _, rec = run("copernicus_embed", path, inside, year=2022, grid=False)
    assert rec["status"] == "failed" and "2021..2021" in rec["error"]


# ------------------------------------------------------------------ Presto Togo


def test_presto_togo_uint16_with_scale_offset_tags(tmp_path):
    raw = np.random.default_rng(5).integers(1, 65535, (128, 16, 16)).astype(np.uint16)
    x0, y0, crs = 700_000.0, 1_000_000.0, "EPSG:32631"  # Togo is in UTM 31N
    path = write_geotiff(tmp_path / "togo.tif", raw, crs, (10.0, 0.0, x0, 0.0, -10.0, y0), nodata=0,
                         scales=[1 / 65535 * 2] * 128, offsets=[-1.0] * 128)
    spatial = roi_at(x0 + 80, y0 - 80, 50, crs)
    arrays, rec = run("presto_togo", path, spatial, year=2019)  # coverage [2019-03-01, 2020-03-01)
    grid = GridSpec.from_dict(rec["grid"])
    expected = lookup(grid, raw.astype(np.float64) * (2 / 65535) - 1.0, x0, y0, 10.0, crs)
    np.testing.assert_allclose(arrays["grid"], expected, rtol=1e-5, atol=1e-6)
    assert rec["value_mapping"] == "geotiff scale/offset tags" and rec["status"] == "ok"
