"""Patch-typed products (Clay v0/v1.5, Major TOM, Earth Index): selection, time filter, area weights."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import box

from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.specs import BBox, TemporalSpec

from products_fixtures import write_clay_v0, write_clay_v15, write_earth_index, write_major_tom

GEOD = Geod(ellps="WGS84")


def area(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def run(model, source, spatial, temporal, options=None):
    emb = create(model, options, source=str(source))
    (arrays, rec), = emb.embed_requests([Request("r", spatial, temporal)], pooling="mean", grid=True,
                                       cell_m=None).values()
    return arrays, rec


# two side-by-side chips of 0.01 deg, a third far away
CHIPS = [box(5.00, 52.00, 5.01, 52.01), box(5.01, 52.00, 5.02, 52.01), box(6.0, 53.0, 6.01, 53.01)]
ROI = BBox(5.005, 52.002, 5.013, 52.008)  # 0.005 deg in chip 0, 0.003 deg in chip 1


def expected_weights(roi_geom, chips):
    """Area weights from geodesic areas (independent of the UTM projection the code uses)."""
    a = np.array([area(roi_geom.intersection(c)) for c in chips])
    return a / a.sum()


def test_clay_v0_gpq_selects_intersecting_chips_with_area_weights(tmp_path):
    emb = np.random.default_rng(0).normal(size=(3, 768)).astype(np.float32)
    write_clay_v0(tmp_path / "clay_v0.gpq", CHIPS, emb, ["2022-05-01", "2022-06-01", "2022-05-01"])
    arrays, rec = run("clay", tmp_path, ROI, TemporalSpec.year(2022))
    w = expected_weights(ROI.geometry(), CHIPS[:2])
    np.testing.assert_allclose(rec["patch_weights"], w, rtol=1e-3)
    np.testing.assert_allclose(arrays["pooled"], w @ emb[:2], rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(arrays["patches"], emb[:2])
    assert rec["status"] == "ok" and rec["valid_fraction"][0] == pytest.approx(1.0)
    assert len(rec["patch_wkt"]) == 2 and rec["grid"] is None


def test_clay_v15_parquet_time_filter_and_partial_coverage(tmp_path):
    emb = np.random.default_rng(1).normal(size=(3, 1024)).astype(np.float32)
    write_clay_v15(tmp_path / "clay_v15.parquet", CHIPS, emb,
                   ["2023-03-01T10:00:00Z", "2024-03-01T10:00:00Z", "2023-03-01T10:00:00Z"])
    arrays, rec = run("clay", tmp_path, ROI, TemporalSpec.year(2023))  # chip 1 is from 2024
    np.testing.assert_allclose(arrays["pooled"], emb[0], rtol=1e-6)
    covered = area(ROI.geometry().intersection(CHIPS[0])) / area(ROI.geometry())
    assert rec["status"] == "partial" and rec["valid_fraction"][0] == pytest.approx(covered, rel=1e-3)
    _, rec = run("clay", tmp_path, ROI, TemporalSpec.year(2021))
    assert rec["status"] == "failed" and "no patch" in rec["error"]
    assert create("clay", source=str(tmp_path)).describe()["dims"] == 768  # card default before load


def test_major_tom_centres_as_squares_and_geometry_variant(tmp_path):
    emb = np.random.default_rng(2).normal(size=(2, 2048)).astype(np.float32)
    lons, lats = [5.0, 5.05], [52.0, 52.0]
    write_major_tom(tmp_path / "plain" / "part_00001.parquet", lons, lats, emb,
                    ["2021-07-01", "2021-08-01"])
    roi = BBox(4.98, 51.985, 5.02, 52.015)  # ~2.7 x 3.3 km around the first centre only
    arrays, rec = run("major_tom", tmp_path / "plain", roi, TemporalSpec.year(2021))
    np.testing.assert_allclose(arrays["pooled"], emb[0], rtol=1e-6)
    assert rec["status"] == "partial"
    assert rec["valid_fraction"][0] == pytest.approx(2240.0 ** 2 / area(roi.geometry()), rel=5e-3)
    _, rec = run("major_tom", tmp_path / "plain", roi, TemporalSpec.year(2022))
    assert rec["status"] == "failed"
    geoms = [box(4.99, 51.99, 5.01, 52.01), box(5.04, 51.99, 5.06, 52.01)]
    write_major_tom(tmp_path / "geom" / "part_00001.parquet", lons, lats, emb, ["2021-07-01", "2021-08-01"],
                    geoms=geoms)
    arrays, rec = run("major_tom", tmp_path / "geom", roi, TemporalSpec.year(2021))
    assert rec["patch_wkt"] == [geoms[0].wkt]
    assert rec["valid_fraction"][0] == pytest.approx(area(geoms[0]) / area(roi.geometry()), rel=5e-3)

def test_earth_index_points_are_patch_squares_without_time(tmp_path):
    emb = np.random.default_rng(3).normal(size=(2, 384)).astype(np.float32)
    write_earth_index(tmp_path / "ei.parquet", [5.0, 5.1], [52.0, 52.0], emb)
    # a ROI around the first point, smaller than a 320 m patch: one patch, full coverage
    roi = BBox(4.9995, 51.9995, 5.0005, 52.0005)
    arrays, rec = run("earth_index", tmp_path, roi, TemporalSpec.year(2024))  # coverage: 2024
    np.testing.assert_allclose(arrays["pooled"], emb[0], rtol=1e-6)
    assert rec["status"] == "ok"
    _, rec = run("earth_index", tmp_path, BBox(10.0, 40.0, 10.1, 40.1), TemporalSpec.year(2024))
    assert rec["status"] == "failed"
