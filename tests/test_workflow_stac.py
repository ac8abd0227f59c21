"""The demo workflow, unchanged, with ``provider: stac`` pointed at the local stand-ins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from standins import CogServer, RustacServer, rewrite_hrefs, rustac_executable
from workflow_helpers import make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow


def test_demo_workflow_runs_with_stac_provider(tmp_path):
    if rustac_executable() is None:
        pytest.skip("rustac CLI not installed")
    index = make_imagery(tmp_path / "sample", tile_px=48)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, tile_px=48)
    work = tmp_path / "run"
    work.mkdir()
    with CogServer(index.parent) as cog, RustacServer(rewrite_hrefs(index, cog.url), tmp_path / "api") as api:
        write_config(work, index, rois, models=("spectral",), benchmark=False,
                     provider={"name": "stac", "url": api.url, "retries": 1, "backoff_s": 0.01})
        snakemake(work)
        reads = [h for h in cog.hits if h.path.endswith(".tif")]
    table = pd.read_csv(rois, sep="\t")
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t")
    assert sorted(manifest["roi_id"]) == sorted(table["roi_id"])
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    assert reads and any(h.range for h in reads)  # COGs were read over HTTP with Range requests
    emb = pd.read_parquet(work / "results/export/spectral/embeddings.parquet")
    vectors = np.stack(emb["embedding"].to_numpy())
    assert np.isfinite(vectors).all() and len({v.tobytes() for v in vectors}) == len(vectors)
    fetch_logs = json.dumps(sorted(str(p) for p in work.rglob("*fetch*")))
    assert "fetch" in fetch_logs
