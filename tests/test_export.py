"""Tests of eoembed.export / eoembed.export_grid: GeoParquet and CF NetCDF exports of chunk files."""

from __future__ import annotations

import hashlib
import json

import geopandas as gpd
import netCDF4
import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr
from pyproj import CRS

from eoembed.chunkio import write_chunk
from eoembed.errors import ConfigError, SpecError
from eoembed.export import export_geoparquet, export_grid_netcdf, export_netcdf, export_pooled, open_grid
from eoembed.grid import grid_for
from eoembed.specs import BBox, PointBuffer, TemporalSpec

DIMS = 4
CELL_PX = 2
ERROR_TEXT = "NoDataError: no scenes <cloud> & 'haze' over ROI"


def make_items(model: str = "toy", seed: int = 0, prefix: str = "r", error: str = ERROR_TEXT):
    """Items/records/meta of a tiny embed-stage chunk: ok point buffer, partial bbox, failed point."""
    rng = np.random.default_rng(seed)
    specs = {f"{prefix}1": (PointBuffer(10.0, 45.0, 40.0), TemporalSpec.year(2021), "ok"),
             f"{prefix}2": (BBox(11.0, 46.0, 11.001, 46.0008), TemporalSpec.range("2022-03-01", "2022-06-01"),
                            "partial"),
             f"{prefix}3": (PointBuffer(-3.0, 40.0, 40.0), TemporalSpec.year(2021), "failed")}
    items, records = {}, {}
    for roi_id, (spatial, temporal, status) in specs.items():
        grid = grid_for(spatial, 10.0)
        rows, cols = -(-grid.height // CELL_PX), -(-grid.width // CELL_PX)
        arrays = {}
        if status != "failed":
            arrays = {"pooled": rng.normal(size=DIMS).astype(np.float32),
                      "grid": rng.normal(size=(DIMS, rows, cols)).astype(np.float32)}
            arrays["grid"][:, 0, 0] = np.nan  # a cell without valid pixels
            items[roi_id] = arrays
        geom = spatial.geometry()
        records[roi_id] = {
            "roi_id": roi_id, "model": model, "status": status,
            "stage": "fetch" if status == "failed" else "done",
            "error": error if status == "failed" else None,
            "request": {"roi_id": roi_id, "spatial": spatial.to_dict(),
                        "temporal": {"start": temporal.start.isoformat(), "end": temporal.end.isoformat()}},
            "request_key": f"key-{roi_id}", "geometry_wkt": geom.wkt,
            "centroid": list(spatial.centroid()),
            "valid_fraction": [] if status == "failed" else [0.5, 1.0],
            "timings": {"fetch_s": 1.5, "composite_s": None if status == "failed" else 0.25,
                        "embed_s": None if status == "failed" else 0.125},
            "scenes": [], "grid": grid.to_dict(), "cell_px": CELL_PX,
            "output_shape": {k: list(v.shape) for k, v in arrays.items()},
            "embedding_sha256": hashlib.sha256(arrays["pooled"].tobytes()).hexdigest() if arrays else None,
            "cached": status == "partial"}
    meta = {"stage": "embed", "model": model,
            "card": {"id": model, "dims": DIMS, "family": "toy", "bands": ["B04", "B08"]},
            "options": {"patch": 2}, "weights_sha256": {"w.pt": "ab" * 32}, "sensor": None,
            "versions": {"eoembed": "0.1.0", "python": "3.12", "torch": "2.x", "numpy": np.__version__},
            "chunk": "c0000"}
    return items, records, meta


def write_fixture_chunk(path, **kwargs):
    """Write a tiny embed chunk to ``path``; returns ``(items, records, meta)``."""
    items, records, meta = make_items(**kwargs)
    write_chunk(path, items, records, meta)
    return items, records, meta


@pytest.fixture()
def chunks(tmp_path):
    a = tmp_path / "a.npz"
    b = tmp_path / "b.npz"
    fa = write_fixture_chunk(a, prefix="a", seed=1)
    fb = write_fixture_chunk(b, prefix="b", seed=2)
    return [a, b], {**fa[0], **fb[0]}, {**fa[1], **fb[1]}


def test_geoparquet_roundtrip(tmp_path, chunks):
    paths, items, records = chunks
    out = tmp_path / "out" / "emb.parquet"
    assert export_geoparquet(paths, out) == 4
    gdf = gpd.read_parquet(out)
    assert gdf.crs == CRS("EPSG:4326")
    assert sorted(gdf.roi_id) == ["a1", "a2", "b1", "b2"]  # failed items dropped
    assert set(gdf.status) == {"ok", "partial"}
    for _, row in gdf.iterrows():
        np.testing.assert_array_equal(np.asarray(row.embedding, dtype=np.float32),
                                      items[row.roi_id]["pooled"])
        expected_geom = gpd.GeoSeries.from_wkt([records[row.roi_id]["geometry_wkt"]]).iloc[0]
        assert row.geometry.equals_exact(expected_geom, 1e-9)
        assert row.valid_fraction == pytest.approx(0.75)
        assert row.dims == DIMS
    a2 = gdf.set_index("roi_id").loc["a2"]
    assert str(a2.start)[:10] == "2022-03-01" and str(a2.end)[:10] == "2022-06-01"
    schema = pq.read_schema(out)
    assert str(schema.field("embedding").type) in ("list<element: float>", "list<item: float>")
    assert str(schema.field("start").type) == str(schema.field("end").type) == "date32[day]"
    prov = json.loads(schema.metadata[b"eoembed"])
    assert prov["card"]["dims"] == DIMS and prov["options"] == {"patch": 2}
    assert prov["weights_sha256"] == {"w.pt": "ab" * 32} and prov["versions"]["eoembed"] == "0.1.0"
    assert b"geo" in schema.metadata
    assert not list(out.parent.glob(".*tmp*"))  # no temporary files left behind


def test_geoparquet_without_exportable_items_keeps_schema(tmp_path):
    items, records, meta = make_items()
    write_chunk(tmp_path / "c.npz", {}, {"r3": records["r3"]}, meta)  # only the failed item
    out = tmp_path / "empty.parquet"
    assert export_geoparquet([tmp_path / "c.npz"], out) == 0
    gdf = gpd.read_parquet(out)
    assert len(gdf) == 0 and gdf.crs == CRS("EPSG:4326")
    schema = pq.read_schema(out)
    assert str(schema.field("embedding").type).startswith("list<")
    assert str(schema.field("dims").type) == "int32"


def test_geoparquet_rejects_mixed_models(tmp_path):
    write_fixture_chunk(tmp_path / "a.npz", model="m1")
    write_fixture_chunk(tmp_path / "b.npz", model="m2", prefix="s")
    with pytest.raises(ConfigError, match="m1"):
        export_geoparquet([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_netcdf_cf(tmp_path, chunks):
    paths, items, records = chunks
    out = tmp_path / "emb.nc"
    assert export_netcdf(paths, out) == 6
    with xr.open_dataset(out) as ds:
        assert ds.embedding.dims == ("roi", "dim") and ds.embedding.dtype == np.float32
        assert list(ds.roi.values) == ["a1", "a2", "a3", "b1", "b2", "b3"]
        np.testing.assert_array_equal(ds.embedding.sel(roi="b2").values, items["b2"]["pooled"])
        assert np.isnan(ds.embedding.sel(roi="a3").values).all()
        assert str(ds.status.sel(roi="a3").values) == "failed"
        assert float(ds.lon.sel(roi="a1")) == pytest.approx(10.0)
        assert float(ds.lat.sel(roi="a1")) == pytest.approx(45.0)
        assert str(ds.time_start.sel(roi="a2").values)[:10] == "2022-03-01"
        assert str(ds.time_end.sel(roi="a1").values)[:10] == "2022-01-01"
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert json.loads(ds.attrs["model_card"])["dims"] == DIMS
        assert json.loads(str(ds.request.sel(roi="a2").values))["temporal"]["start"] == "2022-03-01"
        assert "request" not in ds.attrs  # per ROI, a variable: no global attribute growing with the table
        assert ds.attrs["featureType"] == "point"
        assert set(ds.provenance_warning.values) == {""}  # both chunks agree
        assert json.loads(ds.attrs["weights_sha256"]) == {"w.pt": "ab" * 32}
        assert "export_netcdf" in ds.attrs["history"]
    with netCDF4.Dataset(out) as nc:  # raw CF attributes, as a CF reader sees them
        emb = nc["embedding"]
        assert emb.grid_mapping == "crs"
        assert {"lon", "lat"} <= set(emb.coordinates.split())
        assert nc["lon"].units == "degrees_east" and nc["lon"].standard_name == "longitude"
        assert nc["lat"].units == "degrees_north" and nc["lat"].standard_name == "latitude"
        assert nc["crs"].grid_mapping_name == "latitude_longitude"
        assert CRS.from_wkt(nc["crs"].crs_wkt) == CRS("EPSG:4326")
        assert "days since" in nc["time_start"].units


def test_grid_netcdf_groups_and_coords(tmp_path, chunks):
    paths, items, records = chunks
    out = tmp_path / "grid.nc"
    assert export_grid_netcdf(paths[0], out) == ["a1", "a2"]
    with netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.8"
        assert set(nc.groups) == {"a1", "a2"}
        assert nc.groups["a1"]["embedding"].grid_mapping == "crs"
        assert nc.groups["a1"]["x"].standard_name == "projection_x_coordinate"
        assert nc.groups["a1"]["y"].units == "m"
    for roi_id in ("a1", "a2"):
        ds = open_grid(out, roi_id)
        rec = records[roi_id]
        a, _, c, _, e, f = rec["grid"]["transform"]
        rows, cols = items[roi_id]["grid"].shape[1:]
        # cell centres computed independently: corner + (i + 1/2) * cell size
        cell = a * CELL_PX
        assert np.allclose(ds.x.values, [c + cell * (j + 0.5) for j in range(cols)])
        assert np.allclose(ds.y.values, [f + e * CELL_PX * (i + 0.5) for i in range(rows)])
        assert ds.y.values[0] > ds.y.values[-1]  # north-up
        np.testing.assert_array_equal(ds.embedding.values, items[roi_id]["grid"])
        assert ds.embedding.dims == ("dim", "y", "x")
        assert CRS.from_cf(ds.crs.attrs) == CRS(rec["grid"]["crs"])
        assert CRS.from_wkt(ds.crs.attrs["spatial_ref"]) == CRS(rec["grid"]["crs"])
        assert json.loads(ds.attrs["request"]) == rec["request"]
        assert ds.attrs["cell_size_m"] == pytest.approx(20.0)
    with pytest.raises(SpecError, match="a3"):
        open_grid(out, "a3")  # the failed item has no group


def test_provenance_is_merged_over_chunks_and_disagreement_flagged(tmp_path):
    """Three chunks; the last ran with other weights and another numpy: the export reports the
    majority, lists the disagreement and flags that chunk's items."""
    paths = []
    for k, prefix in enumerate("abc"):
        items, records, meta = make_items(prefix=prefix, seed=k)
        if prefix == "c":
            meta = {**meta, "weights_sha256": {"w.pt": "cd" * 32}, "versions": {**meta["versions"], "numpy": "0.0"}}
        write_chunk(tmp_path / f"{prefix}.npz", items, records, meta)
        paths.append(tmp_path / f"{prefix}.npz")
    export_pooled(paths, tmp_path / "e.parquet", tmp_path / "e.nc")
    prov = json.loads(pq.read_schema(tmp_path / "e.parquet").metadata[b"eoembed"])
    assert prov["weights_sha256"] == {"w.pt": "ab" * 32}
    assert set(prov["provenance_disagreements"]) == {"weights_sha256", "versions"}
    assert prov["provenance_disagreements"]["weights_sha256"][json.dumps({"w.pt": "cd" * 32})] == ["c"]
    gdf = gpd.read_parquet(tmp_path / "e.parquet").set_index("roi_id")
    warned = gdf["provenance_warning"].dropna()
    assert sorted(warned.index) == ["c1", "c2"]
    assert "weights_sha256" in warned.iloc[0] and "versions" in warned.iloc[0]
    with xr.open_dataset(tmp_path / "e.nc") as ds:
        assert json.loads(ds.attrs["weights_sha256"]) == {"w.pt": "ab" * 32}
        assert "weights_sha256" in json.loads(ds.attrs["provenance_disagreements"])
        flagged = {str(r) for r, w in zip(ds.roi.values, ds.provenance_warning.values) if w}
        assert flagged == {"c1", "c2", "c3"}  # the failed item c3 is in the NetCDF too
