"""Regressions of issue 15: each test failed on the code before the fix (c0f0fc3) and passes now.

They use only the public API (registry ``create``, ``embed_requests``, ``get_embeddings_batch``)
and our own layout generators, so they run unchanged against the old code; what the old code did
is written in each docstring.
"""

from __future__ import annotations

import numpy as np
import pytest

from eoembed.grid import GridSpec
from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.specs import BBox, OutputSpec, PointBuffer, TemporalSpec

from products_layouts import (LAT0, LON0, clay_v15_naip, copernicus_embed, earth_index, esd, gse_major_tom,
                              presto_togo, tessera_npy, tessera_tiff)
from products_oracle import RasterOracle


def read(model, source, spatial, year, options=None, grid=True):
    emb = create(model, options, source=str(source))
    (arrays, rec), = emb.embed_requests([Request("r", spatial, TemporalSpec.year(year))], pooling="mean",
                                       grid=grid, cell_m=None).values()
    return arrays, rec


def centre(oracle, dcol=0.0, drow=0.0):
    from rasterio.warp import transform

    h, w = oracle.shape
    x, y = oracle.transform @ (w / 2 + dcol, h / 2 + drow)
    lon, lat = transform(oracle.crs, "EPSG:4326", [x], [y])
    return float(lon[0]), float(lat[0])


def test_bug1_float_gse_tile_is_read_as_stored_not_zeroed(tmp_path):
    """Old: every GeoTIFF was forced to int8 with nodata -128, so the float64 Major-TOM AlphaEarth
    tile (values in [-1, 1]) came back as all zeros, status ok."""
    layout = gse_major_tom(tmp_path)
    oracle = RasterOracle(layout)
    spatial = PointBuffer(*centre(oracle), 60.0)  # UTM 19N: the file's own CRS
    arrays, rec = read("gse", tmp_path, spatial, 2024)
    assert rec["status"] == "ok"
    grid = GridSpec.from_dict(rec["grid"])
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    cols, rows = (np.floor(v).astype(int) for v in oracle.position(xx, yy))
    expected = oracle.data[:, rows, cols].astype(np.float32)
    np.testing.assert_array_equal(arrays["grid"], expected)
    assert np.abs(arrays["pooled"]).max() > 0.1


def test_bug2_esd_quality_band_is_not_a_code_and_all_zero_codes_are_no_data(tmp_path):
    """Old: the 13th (quality) band was decoded as a 13th code (78 dims) and pixels whose 12 codes
    are all 0 counted as valid vectors of -1 (valid fraction 1.0)."""
    layout = esd(tmp_path)
    oracle = RasterOracle(layout)
    spatial = PointBuffer(*centre(oracle, -4.5, -4.5), 75.0)  # over the all-zero block (rows/cols 6-8)
    arrays, rec = read("esd", tmp_path, spatial, 2024)
    assert arrays["pooled"].shape == (72,) and arrays["grid"].shape[0] == 72
    assert rec["status"] == "partial" and rec["valid_fraction"][0] < 1.0
    grid = GridSpec.from_dict(rec["grid"])
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    cols, rows = (np.floor(v).astype(int) for v in oracle.position(xx, yy))
    expected = oracle.data[:, rows, cols]
    assert np.isnan(expected).all(axis=0).any()  # the ROI does cover no-data pixels
    np.testing.assert_array_equal(arrays["grid"], expected.astype(np.float32))


@pytest.mark.parametrize("layout_fn,year,buffer_m", [(copernicus_embed, 2021, 5.0), (tessera_npy, 2024, 4.0),
                                                      (presto_togo, 2019, 4.0)])
def test_bug3_sub_pixel_rois_get_the_pixel_holding_their_centroid(tmp_path, layout_fn, year, buffer_m):
    """Old: the ROI's UTM grid at the product resolution sampled the product at its own pixel
    centres, so a ROI smaller than a product pixel often got a neighbouring pixel (a 0.25 deg cell
    away for Copernicus-Embed; one 10 m pixel for rasters not aligned with the UTM grid)."""
    layout = layout_fn(tmp_path)
    oracle = RasterOracle(layout)
    rng = np.random.default_rng(7)
    n = 0
    for _ in range(15):
        lon, lat = centre(oracle, *rng.uniform(-0.4, 0.4, 2) * oracle.shape[0])
        expected, edge = oracle.at(lon, lat)
        if expected is None or edge < 0.05 or np.isnan(expected).any():
            continue
        arrays, rec = read(layout.model, layout.source, PointBuffer(lon, lat, buffer_m), year, grid=False)
        assert rec["status"] == "ok", rec
        np.testing.assert_array_equal(arrays["pooled"], expected.astype(np.float32), err_msg=f"{lon}, {lat}")
        n += 1
    assert n >= 10


def test_bug4_clay_naip_date_from_file_name_and_one_bad_file_does_not_stop_the_folder(tmp_path):
    """Old: NAIP parquet files (no time column) were refused, and one refused file made the whole
    folder fail to load (every item failed)."""
    import pandas as pd

    layout = clay_v15_naip(tmp_path)
    pd.DataFrame({"no_embedding": [1, 2]}).to_parquet(layout.source / "broken.parquet")
    roi = BBox(LON0 - 0.0005, LAT0 - 0.0005, LON0 + 0.0005, LAT0 + 0.0005)  # inside chip 0 only
    emb = create("clay", source=str(layout.source))
    out = emb.embed_requests([Request("in", roi, TemporalSpec.year(2024)),
                              Request("before", roi, TemporalSpec.year(2023))], pooling="mean")
    import pyarrow.parquet as pq

    first = np.asarray(pq.read_table(layout.files[0]).column("embeddings").to_pylist()[0], np.float32)
    assert out["in"][1]["status"] == "ok" and out["in"][1]["patch_times"] == ["2024-11-05T00:00:00"]
    np.testing.assert_array_equal(out["in"][0]["pooled"], first)
    assert out["before"][1]["status"] == "failed"  # the file-name date filters by time too
    skipped = emb.describe()["skipped_files"]
    assert [s[0] for s in skipped] == [str(layout.source / "broken.parquet")] and "embedding" in skipped[0][1]


def test_grid_output_of_a_patch_product_is_refused_clearly(tmp_path):
    """Old: ``OutputSpec.grid()`` on a patch product returned an empty array with status ok."""
    from eoembed.api import get_embeddings_batch
    from eoembed.errors import ConfigError

    layout = clay_v15_naip(tmp_path)
    roi = BBox(LON0 - 0.0005, LAT0 - 0.0005, LON0 + 0.0005, LAT0 + 0.0005)
    with pytest.raises(ConfigError, match="grid.*clay.*pooled"):
        get_embeddings_batch("clay", [("r", roi, TemporalSpec.year(2024))], output=OutputSpec.grid(),
                             source=str(layout.source))


def test_static_products_answer_only_inside_their_dates_unless_mapped_explicitly(tmp_path):
    """Old: presto_togo answered a 2024 request with its 2019-2020 data and earth_index a 2018
    request with its 2024 data, silently (and option outside_coverage did not exist)."""
    togo = presto_togo(tmp_path / "togo")
    spatial = PointBuffer(*centre(RasterOracle(togo)), 40.0)
    _, rec = read("presto_togo", togo.source, spatial, 2024)
    assert rec["status"] == "failed" and "[2019-03-01, 2020-03-01)" in rec["error"]
    _, rec = read("presto_togo", togo.source, spatial, 2019)
    assert rec["status"] == "ok" and "temporal_mapping" not in rec
    arrays, rec = read("presto_togo", togo.source, spatial, 2024, options={"outside_coverage": "nearest"})
    assert rec["status"] == "ok" and "2019-03-01" in rec["temporal_mapping"]
    assert rec["product_coverage"] == ["2019-03-01", "2020-03-01"]
    ei = earth_index(tmp_path / "ei")
    roi = BBox(LON0 - 0.0005, LAT0 - 0.0005, LON0 + 0.0005, LAT0 + 0.0005)
    _, rec = read("earth_index", ei.source, roi, 2018)
    assert rec["status"] == "failed" and "2024-01-01" in rec["error"]
    _, rec = read("earth_index", ei.source, roi, 2024)
    assert rec["status"] == "ok"


def test_tessera_tile_found_by_its_raster_not_its_cell_name(tmp_path):
    """Old: tiles were looked up by the 0.1 deg cells the ROI touches, so the TorchGeo-layout tile
    ``grid_0.05_51.35`` whose raster lies west of its cell (lon < 0) was never found."""
    layout = tessera_tiff(tmp_path)
    oracle = RasterOracle(layout)
    lon, lat = centre(oracle, 0.5, 0.5)
    assert lon < 0.0  # the ROI is outside the tile's named cell [0.0, 0.1)
    arrays, rec = read("tessera", tmp_path, PointBuffer(lon, lat, 3.0), 2024, grid=False)
    assert rec["status"] == "ok", rec
    np.testing.assert_array_equal(arrays["pooled"], oracle.at(lon, lat)[0].astype(np.float32))


def test_annual_products_map_years_outside_coverage_only_when_asked(tmp_path):
    """Old: option outside_coverage did not exist (a year outside coverage could only fail)."""
    from eoembed.errors import ConfigError

    layout = esd(tmp_path)  # coverage 2000-2024, files for 2024
    spatial = PointBuffer(*centre(RasterOracle(layout), 4.5, 4.5), 75.0)
    _, rec = read("esd", tmp_path, spatial, 2026)
    assert rec["status"] == "failed" and "2000..2024" in rec["error"] and "outside_coverage" in rec["error"]
    arrays, rec = read("esd", tmp_path, spatial, 2026, options={"outside_coverage": "nearest"})
    assert rec["status"] == "ok" and rec["product_year"] == 2024
    assert "year 2026" in rec["temporal_mapping"] and "year 2024 was used" in rec["temporal_mapping"]
    same, _ = read("esd", tmp_path, spatial, 2024)
    np.testing.assert_array_equal(arrays["grid"], same["grid"])
    with pytest.raises(ConfigError, match="outside_coverage='always'.*nearest"):
        create("esd", {"outside_coverage": "always"}, source=str(tmp_path))
