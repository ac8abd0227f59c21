"""The demo workflow, unchanged, with ``provider: stac`` pointed at the local stand-ins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eoembed.chunkio import read_chunk
from standins import CogServer, RustacServer, rewrite_hrefs, rustac_executable
from workflow_helpers import make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


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
        # the API through the same STAC API gives the workflow's vectors bit for bit
        import eoembed
        from eoembed.table import load_table, to_requests

        reqs = to_requests(load_table(rois))
        embs = eoembed.get_embeddings_batch("spectral", reqs, output=eoembed.OutputSpec.pooled(),
                                            sensor=eoembed.SensorSpec(bands=S2_BANDS, scale_m=10, cloudy_pct=100),
                                            provider={"name": "stac", "url": api.url})
    table = pd.read_csv(rois, sep="\t")
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t")
    assert sorted(manifest["roi_id"]) == sorted(table["roi_id"])
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    assert reads and any(h.range for h in reads)  # COGs were read over HTTP with Range requests
    emb = pd.read_parquet(work / "results/export/spectral/embeddings.parquet")
    vectors = np.stack(emb["embedding"].to_numpy())
    assert np.isfinite(vectors).all() and len({v.tobytes() for v in vectors}) == len(vectors)
    by_id = dict(zip(emb["roi_id"], vectors))
    for req, e in zip(reqs, embs):
        assert e.meta["status"] in ("ok", "partial"), e.meta.get("error")
        np.testing.assert_array_equal(e.data, by_id[req.roi_id].astype(np.float32))
    # the fetch chunks say they came from the STAC API, with the items read over HTTP
    fetched = sorted((work / "results/fetch").rglob("*.npz"))
    assert fetched
    for path in fetched:
        _, records, meta = read_chunk(path)
        assert meta["provider"]["provider"] == "stac" and meta["provider"]["url"] == api.url.rstrip("/")
        assert all(r["status"] == "ok" for r in records.values())
