"""The API's overlapped run (fetch/composite ahead of the model) gives the stage-by-stage answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eoembed.api import get_embeddings_batch
from eoembed.items import Request
from eoembed.providers.sample import generate
from eoembed.specs import OutputSpec, PointBuffer, SensorSpec, TemporalSpec

SITES = [("nl", 5.62, 52.55), ("fr", 2.35, 48.85)]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("cat"), SITES, 2023, dates_per_year=3, tile_px=168, seed=2)


def _requests() -> list[Request]:
    year = TemporalSpec.year(2023)
    reqs = [Request(f"r{i}", PointBuffer(lon + 0.0004 * i, lat, 100), year)
            for i, (_, lon, lat) in enumerate(SITES * 5)]
    reqs.insert(4, Request("nowhere", PointBuffer(-60.0, -10.0, 150), year))  # fails at fetch
    return reqs


@pytest.mark.parametrize("model", ["spectral", "mosaiks"])
def test_overlap_gives_the_same_embeddings(index, model):
    kw = dict(provider={"name": "local", "catalog": str(index), "io_workers": 3},
              batch_size=3, output=OutputSpec.pooled(), retries=0)
    if model == "mosaiks":
        kw["options"] = {"filters": "gaussian", "num_filters": 32}
    reqs = _requests()
    a = get_embeddings_batch(model, reqs, overlap=False, **kw)
    b = get_embeddings_batch(model, reqs, overlap=True, progress=False, **kw)
    assert [e.meta["roi_id"] for e in b] == [r.roi_id for r in reqs]
    assert [e.meta["status"] for e in a] == [e.meta["status"] for e in b]
    assert b[4].meta["status"] == "failed" and b[4].meta["stage"] == "fetch"
    assert sum(e.meta["status"] == "ok" for e in b) == len(reqs) - 1
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.data, y.data)
        assert x.meta.get("embedding_sha256") == y.meta.get("embedding_sha256")


def test_overlap_model_load_failure_fails_every_item_at_embed(index, tmp_path):
    sensor = SensorSpec(bands=("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
                        scale_m=10, cloudy_pct=100, frames=12)
    embs = get_embeddings_batch("presto", _requests()[:3], sensor=sensor, retries=0,
                                provider={"name": "local", "catalog": str(index)},
                                weights_dir=str(tmp_path / "empty"), allow_download=False, progress=False)
    assert [e.meta["stage"] for e in embs] == ["embed"] * 3
    assert all(e.meta["status"] == "failed" and "place the file at" in e.meta["error"] for e in embs)
