"""End-to-end: the real Snakemake workflow on small generated imagery, outputs checked."""

import hashlib
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eoembed.chunkio import read_chunk
from eoembed.export import read_geoparquet_metadata
from eoembed.export_grid import open_grid
from eoembed.chunks import chunk_count, chunk_members
from workflow_helpers import job_counts, make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def imagery(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagery")
    index = make_imagery(root / "sample")
    rois = make_rois(index, root / "rois.tsv")
    return index, rois


@pytest.fixture(scope="module")
def demo_run(imagery, tmp_path_factory):
    index, rois = imagery
    work = tmp_path_factory.mktemp("run")
    write_config(work, index, rois, weights={"dir": str(work / "weights")})
    first = snakemake(work)
    return work, first


def chunk_of(work, roi_id):
    """The chunk holding ``roi_id`` in a finished run (from its frozen chunk count)."""
    n = json.loads((work / "results/chunks.json").read_text())["n_chunks"]
    return next(c for c, members in chunk_members([roi_id], n).items())


def test_outputs_are_complete_and_self_describing(demo_run, imagery):
    work, _ = demo_run
    rois = pd.read_csv(imagery[1], sep="\t")
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t")
    assert len(manifest) == 2 * len(rois)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "model", "status", "error"]]
    assert (manifest["status"] == "ok").mean() >= 0.5, manifest[["roi_id", "model", "status", "error"]]
    for model, dims in (("spectral", None), ("mosaiks", 32)):
        gdf = gpd.read_parquet(work / f"results/export/{model}/embeddings.parquet")
        assert gdf.crs.to_epsg() == 4326
        assert sorted(gdf["roi_id"]) == sorted(rois["roi_id"])
        emb = np.stack(gdf["embedding"].to_numpy())
        assert np.isfinite(emb).all()
        if dims:
            assert emb.shape[1] == dims
        assert len({e.tobytes() for e in emb}) == len(emb), "two ROIs embedded identically"
        # the ROI polygon contains its point
        row = rois.set_index("roi_id").loc[gdf["roi_id"].iloc[0]]
        assert gdf.geometry.iloc[0].contains(gpd.points_from_xy([row.lon], [row.lat])[0])

        ds = xr.open_dataset(work / f"results/export/{model}/embeddings.nc")
        assert ds.attrs["Conventions"].startswith("CF-1.8")
        assert ds["embedding"].dims == ("roi", "dim")
        assert "lon" in ds.coords and "lat" in ds.coords
        assert "grid_mapping" in ds["embedding"].attrs and ds[ds["embedding"].attrs["grid_mapping"]] is not None
        np.testing.assert_allclose(ds["lon"].sel(roi=row.name).item(), row.lon, atol=0.01)
        by_id = dict(zip(gdf["roi_id"], emb))
        np.testing.assert_array_equal(ds["embedding"].sel(roi=row.name).values, by_id[row.name])
        ds.close()

        first = rois["roi_id"].iloc[0]
        grid = open_grid(work / f"results/export/{model}/grid/{chunk_of(work, first)}.nc", first)
        assert grid["embedding"].dims[1:] == ("y", "x")
        assert grid["x"].attrs.get("units") in ("m", "metre", "meter")
        assert np.diff(grid["x"].values)[0] == pytest.approx(80.0)
        grid.close()

    # every mosaiks chunk (jobs running in parallel) used the one filter bank built in the cache
    (bank,) = (work / "weights" / "mosaiks").glob("filters-*.safetensors")
    bank_sha = hashlib.sha256(bank.read_bytes()).hexdigest()
    assert read_geoparquet_metadata(work / "results/export/mosaiks/embeddings.parquet")[
        "weights_sha256"] == {"filter_bank": bank_sha}
    chunks = sorted((work / "results/embed/mosaiks").glob("*.npz"))
    assert len(chunks) > 1 and {read_chunk(c)[2]["weights_sha256"]["filter_bank"] for c in chunks} == {bank_sha}

    summary = json.loads((work / "results/manifest/summary.json").read_text())
    assert summary["totals"]["all"] == 2 * len(rois) and summary["totals"]["failed"] == 0
    for model in ("spectral", "mosaiks"):
        assert sum(summary["counts"][model].values()) == len(rois)
        assert summary["counts"][model]["ok"] == int(((manifest.model == model) & (manifest.status == "ok")).sum())
    metrics = pd.read_csv(work / "results/benchmark/metrics.tsv", sep="\t")
    assert set(metrics["model"]) == {"spectral", "mosaiks", "baseline"}
    assert metrics.groupby("model")["n_items"].max().nunique() == 1  # every model on the same items
    assert {"r2", "rmse"} <= set(metrics["metric"])
    for fig in ("metrics.png", "pred_vs_true.png", "pca_rgb.png"):
        assert (work / "results/figures" / fig).stat().st_size > 5000
    html = (work / "results/report.html").read_text()
    assert "spectral" in html and "mosaiks" in html


def test_second_run_does_no_work(demo_run):
    work, _ = demo_run
    again = snakemake(work, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_dry_run_three_models_sharing_a_sensor_fetch_once_per_chunk(imagery, tmp_path):
    """spectral + mosaiks on a median sensor, presto on a 12-frame (monthly) sensor with the same bands:
    one download per chunk, two composites per chunk, three embeds per chunk."""
    index, rois = imagery
    bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    write_config(tmp_path, index, rois, chunk_size=3,
                 sensors={"s2": {"bands": bands, "scale_m": 10},
                          "s2_frames": {"bands": bands, "scale_m": 10, "frames": 12}},
                 models={"spectral": {"sensor": "s2"}, "mosaiks": {"sensor": "s2"},
                         "presto": {"sensor": "s2_frames"}})
    dry = snakemake(tmp_path, "-n")
    counts = job_counts(dry.stdout)
    n_chunks = len(chunk_members(pd.read_csv(rois, sep="\t")["roi_id"].tolist(), chunk_count(3, 9)))
    assert n_chunks >= 2
    assert counts["fetch"] == n_chunks
    assert counts["composite"] == 2 * n_chunks
    assert counts["embed"] == 3 * n_chunks


def test_bad_table_fails_before_any_job(imagery, tmp_path):
    index, _ = imagery
    bad = tmp_path / "bad.tsv"
    bad.write_text("roi_id\tlon\tlat\tbuffer_m\tyear\nok\t5.62\t52.55\t100\t2023\na/b\t5\t52\t100\t2023\n"
                   "ok\t500\t52\t100\t2023\nrev\t5\t52\t-1\t2023\n")
    write_config(tmp_path, index, bad)
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    err = proc.stderr
    for fragment in ("row 2", "'a/b'", "row 3", "duplicate id 'ok'", "lon", "row 4", "buffer_m"):
        assert fragment in err, f"{fragment!r} missing from:\n{err[-3000:]}"
    assert not (tmp_path / "results").exists()


def test_api_gives_the_same_embeddings_as_the_workflow(demo_run, imagery):
    """get_embeddings_batch runs the same stage functions: identical vectors, bit for bit."""
    import eoembed
    from eoembed import OutputSpec, SensorSpec
    from eoembed.table import load_table, to_requests

    work, _ = demo_run
    index, rois = imagery
    # one whole chunk, in its order: the workflow embedded exactly this batch (float results of a
    # batched model may differ in the last bits with another batch composition)
    table = load_table(rois)
    members = max(chunk_members(table["roi_id"].tolist(),
                                json.loads((work / "results/chunks.json").read_text())["n_chunks"]).values(), key=len)
    reqs = to_requests(table, [table["roi_id"].tolist().index(r) for r in members])
    assert len(reqs) >= 2
    sensor = SensorSpec(bands=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
                        scale_m=10, cloudy_pct=100)
    for model, options in (("spectral", None), ("mosaiks", {"num_filters": 16})):
        embs = eoembed.get_embeddings_batch(model, reqs, output=OutputSpec.pooled(), sensor=sensor,
                                            options=options, provider={"name": "local", "catalog": str(index)})
        gdf = gpd.read_parquet(work / f"results/export/{model}/embeddings.parquet").set_index("roi_id")
        for req, emb in zip(reqs, embs):
            assert emb.meta["status"] in ("ok", "partial")
            assert emb.meta["request"]["roi_id"] == req.roi_id and emb.meta["model"] == model
            np.testing.assert_array_equal(emb.data, np.asarray(gdf.loc[req.roi_id, "embedding"], dtype=np.float32))
