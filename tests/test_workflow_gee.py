"""The workflow with ``provider: gee`` through the Earth Engine stand-in: the full sensor
(frames, compositing) reaches Earth Engine, and the workflow equals the API bit for bit."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest

from eoembed.chunkio import read_chunk
from eoembed.specs import TemporalSpec
from standins import ee_standin  # noqa: F401
from workflow_helpers import snakemake, write_config

pytest.importorskip("ee")
pytestmark = pytest.mark.slow

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
ROIS = "roi_id\tlon\tlat\tbuffer_m\tyear\nnl_1\t5.62\t52.55\t60\t2023\nnl_2\t5.63\t52.56\t60\t2023\n"


@pytest.fixture
def gee_work(ee_standin, tmp_path, monkeypatch):
    """A work dir for the gee provider, authenticated through the stand-in (in jobs too)."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(ee_standin.credentials_file(tmp_path / "adc.json")))
    (tmp_path / "rois.tsv").write_text(ROIS)
    ee_standin.requests.clear()
    return tmp_path


def _provider(standin):
    return {"name": "gee", "url": standin.url, "project": "standin-project", "retries": 1, "backoff_s": 0.01}


def _frame_windows(expr: str) -> tuple[str, str]:
    dates = sorted(set(re.findall(r"20\d\d-\d\d-\d\d", expr)))
    return dates[0], dates[-1]


def test_twelve_frame_mosaic_reaches_earth_engine(ee_standin, gee_work):
    frames = 12
    ee_standin.values = [[[f"scene{f}"] for f in range(frames)] for _ in range(2)]
    write_config(gee_work, gee_work / "none.json", gee_work / "rois.tsv", models={"spectral": {"sensor": "s2"}},
                 chunk_size=2, benchmark=False, provider=_provider(ee_standin),
                 sensors={"s2": {"bands": list(S2_BANDS), "scale_m": 10, "frames": frames, "composite": "mosaic"}})
    snakemake(gee_work, "--until", "composite")
    bodies = ee_standin.pixel_requests()
    assert len(bodies) == 2 * frames  # one tile per frame and ROI
    exprs = [json.dumps(b["expression"]) for b in bodies]
    assert all("mosaic" in e and "median" not in e for e in exprs)
    expected = {(str(a), str(b)) for a, b in TemporalSpec.year(2023).frame_bounds(frames)}
    assert {_frame_windows(e) for e in exprs} == expected
    fetched = next((gee_work / "results/fetch").rglob("*.npz"))
    items, records, meta = read_chunk(fetched)
    assert meta["sensor"]["frames"] == frames and meta["sensor"]["composite"] == "mosaic"
    assert {r["status"] for r in records.values()} == {"ok"}
    assert all(a["data"].shape[:2] == (frames, len(S2_BANDS)) for a in items.values())
    comp_items, comp_records, _ = read_chunk(next((gee_work / "results/composite").rglob("*.npz")))
    assert all(len(r["valid_fraction"]) == frames for r in comp_records.values())
    for roi, arrays in comp_items.items():  # compositing a server-side frame stack is the identity
        np.testing.assert_array_equal(arrays["data"], items[roi]["data"])


def test_api_equals_workflow_for_gee(ee_standin, gee_work):
    import eoembed
    from eoembed import OutputSpec, SensorSpec
    from eoembed.table import load_table, to_requests

    ee_standin.values = [[["scene_a"]] for _ in range(4)]
    write_config(gee_work, gee_work / "none.json", gee_work / "rois.tsv", models={"spectral": {"sensor": "s2"}},
                 chunk_size=2, benchmark=False, provider=_provider(ee_standin), output={"grid": False},
                 sensors={"s2": {"bands": list(S2_BANDS), "scale_m": 10}})
    snakemake(gee_work, "results/export/spectral/embeddings.parquet")
    gdf = gpd.read_parquet(gee_work / "results/export/spectral/embeddings.parquet").set_index("roi_id")
    reqs = to_requests(load_table(gee_work / "rois.tsv"))
    sensor = SensorSpec(bands=S2_BANDS, scale_m=10)
    embs = eoembed.get_embeddings_batch("spectral", reqs, output=OutputSpec.pooled(), sensor=sensor,
                                        provider=_provider(ee_standin))
    for req, emb in zip(reqs, embs):
        assert emb.meta["status"] == "ok", emb.meta.get("error")
        np.testing.assert_array_equal(emb.data, np.asarray(gdf.loc[req.roi_id, "embedding"], dtype=np.float32))
