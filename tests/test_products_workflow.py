"""Every product runs in the real Snakemake workflow from local fixture files, with no fetch/composite."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from eoembed.products.tessera import cell_centres
from eoembed.specs import PointBuffer
from products_fixtures import (X0, Y0, aef_codes, utm_to_lonlat, write_aef_tile, write_clay_v0,
                               write_copernicus, write_earth_index, write_esd_tile, write_geotiff,
                               write_major_tom, write_tessera_npy)
from workflow_helpers import job_counts, snakemake, write_config

pytestmark = pytest.mark.slow

YEAR = 2023
DIMS = {"gse": 64, "tessera": 128, "esd": 72, "clay": 768, "copernicus_embed": 768, "earth_index": 384,
        "major_tom": 2048, "presto_togo": 128}
PIXEL = ("gse", "tessera", "esd", "copernicus_embed", "presto_togo")


def build_products(root, rois):
    """Fixture files of every product covering the ROIs in ``rois`` ((lon, lat, buffer) list)."""
    rng = np.random.default_rng(0)
    write_aef_tile(root / "gse", YEAR, aef_codes(64, 64))
    q = rng.integers(-127, 128, (64, 64, 128)).astype(np.int8)
    s = np.full((64, 64), 0.01, np.float32)
    cells = {c for lon, lat, b in rois for c in cell_centres(PointBuffer(lon, lat, b).geometry().bounds)}
    for lon, lat in cells:
        write_tessera_npy(root / "tessera", lon, lat, YEAR, q, s, X0, Y0)
    write_esd_tile(root / "esd", YEAR, rng.integers(0, 64000, (12, 24, 24)))
    cop = rng.normal(size=(768, 8, 8)).astype(np.float32)
    write_copernicus(root / "copernicus" / "embed.tif", cop, 2.0, 53.0)
    write_geotiff(root / "togo" / "togo.tif", rng.integers(1, 1000, (128, 64, 64)).astype(np.uint16), "EPSG:32631",
                  (10.0, 0.0, X0, 0.0, -10.0, Y0), nodata=0)
    lons = [r[0] for r in rois]
    lats = [r[1] for r in rois]
    from shapely.geometry import box

    chips = [box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01) for lon, lat in zip(lons, lats)]
    write_clay_v0(root / "clay" / "v0.gpq", chips, rng.normal(size=(len(chips), 768)), [f"{YEAR}-06-01"] * len(chips))
    write_major_tom(root / "major_tom" / "part_00001.parquet", lons, lats, rng.normal(size=(len(lons), 2048)),
                    [f"{YEAR}-06-01"] * len(lons))
    write_earth_index(root / "earth_index" / "ei.parquet", lons, lats, rng.normal(size=(len(lons), 384)))
    return {"gse": root / "gse", "tessera": root / "tessera", "esd": root / "esd",
            "copernicus_embed": root / "copernicus", "presto_togo": root / "togo", "clay": root / "clay",
            "major_tom": root / "major_tom", "earth_index": root / "earth_index"}


def test_products_run_in_the_workflow_without_fetch_or_composite(tmp_path):
    inside = [utm_to_lonlat(X0 + 200, Y0 - 200), utm_to_lonlat(X0 + 420, Y0 - 380)]
    rois = [(float(lon), float(lat), 100.0) for lon, lat in inside]
    sources = build_products(tmp_path / "products", rois)
    table = pd.DataFrame({"roi_id": ["in_a", "in_b", "outside"], "lon": [r[0] for r in rois] + [20.0],
                          "lat": [r[1] for r in rois] + [10.0], "buffer_m": [100.0] * 3, "year": [YEAR] * 3})
    table.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    models = {m: {"source": str(p)} for m, p in sources.items()}
    models["copernicus_embed"]["options"] = {"year": 2021}  # the product exists for 2021 only
    for static in ("presto_togo", "earth_index"):  # static layers of other dates: mapped explicitly
        models[static]["options"] = {"outside_coverage": "nearest"}
    work = tmp_path / "run"
    work.mkdir()
    write_config(work, tmp_path / "no_catalog.json", tmp_path / "rois.tsv", models=models, chunk_size=2,
                 benchmark=False, output={"grid": True, "grid_cell_m": None})

    dry = snakemake(work, "-n")
    counts = job_counts(dry.stdout)
    assert counts.get("embed") == len(models) * 2
    assert not any(rule.startswith(("fetch", "composite", "sample")) for rule in counts), counts

    snakemake(work)
    items = pd.read_csv(work / "results/manifest/items.tsv", sep="\t")
    for model, dims in DIMS.items():
        got = items[items["model"] == model].set_index("roi_id")
        assert got.loc["outside", "status"] == "failed", model
        assert set(got.loc[["in_a", "in_b"], "status"]) <= {"ok", "partial"}, (model, got)
        gdf = gpd.read_parquet(work / f"results/export/{model}/embeddings.parquet")
        assert sorted(gdf["roi_id"]) == ["in_a", "in_b"]
        assert all(len(v) == dims for v in gdf["embedding"]), model
        grid_files = list((work / f"results/export/{model}/grid").glob("*.nc"))
        assert bool(grid_files) == (model in PIXEL), model
    summary = json.loads((work / "results/manifest/summary.json").read_text())
    assert summary
