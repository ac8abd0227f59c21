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


@pytest.mark.parametrize("mode", [True, "inline"])
@pytest.mark.parametrize("model", ["spectral", "mosaiks"])
def test_overlap_gives_the_same_embeddings(index, model, mode):
    """Stage after stage (overlap=False) = blocks fetched by a background thread (True) = blocks
    fetched in the calling thread (what "auto" picks for a CPU model with one I/O worker)."""
    workers = 3 if mode is True else 1
    kw = dict(provider={"name": "local", "catalog": str(index), "io_workers": workers},
              batch_size=3, output=OutputSpec.pooled(), retries=0)
    if model == "mosaiks":
        kw["options"] = {"filters": "gaussian", "num_filters": 32}
    reqs = _requests()
    a = get_embeddings_batch(model, reqs, overlap=False, **kw)
    b = get_embeddings_batch(model, reqs, overlap=True if mode is True else "auto", progress=False, **kw)
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


def test_auto_overlap_uses_a_thread_only_where_cores_are_free(index):
    """Known before any batch: a thread for remote reads, spare cores and GPUs; else measured."""
    torch = pytest.importorskip("torch")
    from eoembed.models.registry import create
    from eoembed.overlap import background_helps, usable_cores
    from eoembed.providers.local import LocalProvider

    local = LocalProvider(index)
    model = create("spectral")
    cores = usable_cores()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert background_helps(model, local) is None  # every core may be busy: measure a batch
        assert background_helps(model, local, workers=4) is True  # several readers (remote COGs)
        model.device = "cuda"
        assert background_helps(model, local) is True  # the forward pass leaves the CPU free
        model.device = "cpu"
        if cores > 1:
            torch.set_num_threads(cores - 1)
            assert background_helps(model, local) is True  # a core left for the fetch
    finally:
        torch.set_num_threads(before)


def test_saturation_rule():
    from eoembed.overlap import saturates

    assert saturates(1.97, 1.0, 2) and saturates(0.95, 1.0, 1)  # galileo_nano on 2 cores; 1 core busy
    assert not saturates(1.46, 1.0, 2) and not saturates(1.0, 1.0, 2)  # MOSAIKS, spectral on 2 cores
    assert not saturates(0.0, 0.0, 2)


class _Recording:
    """A local provider that records the thread of every fetch."""

    def __new__(cls, index):
        from eoembed.providers.local import LocalProvider

        class Provider(LocalProvider):
            threads: list = []

            def fetch(self, *a, **k):
                import threading

                self.threads.append(threading.current_thread().name)
                return super().fetch(*a, **k)

        return Provider(index)


def _model(kind: str):
    """spectral with a forward pass that sleeps (no CPU) or spins (one core) for 50 ms."""
    import time

    from eoembed.models.spectral import SpectralEmbedder

    class Model(SpectralEmbedder):
        def forward(self, batch):
            t0 = time.perf_counter()
            if kind == "sleep":
                time.sleep(0.05)
            else:
                while time.perf_counter() - t0 < 0.05:
                    sum(range(200))
            return super().forward(batch)

    return Model()


@pytest.mark.parametrize("kind", ["sleep", "spin-on-one-core"])
def test_measured_overlap_moves_the_fetch_to_a_thread_only_when_cores_were_idle(index, kind, caplog):
    """overlap="auto" on local files: the first block is fetched in the calling thread; after the
    first batch the rest moves to the "eoembed-fetch" thread if the forward pass left cores idle
    (a sleeping model) and stays in the calling thread if it kept every core busy (a spinning
    model with this process pinned to one core). Same embeddings as stage after stage."""
    import logging
    import os

    pytest.importorskip("torch")
    year = TemporalSpec.year(2023)
    reqs = [Request(f"m{i}", PointBuffer(lon + 0.0003 * (i // 2), lat, 100), year)
            for i, (_, lon, lat) in enumerate(SITES * 20)]  # 40 ROIs: 3 blocks of 16
    provider = _Recording(index)
    kw = dict(batch_size=3, output=OutputSpec.pooled(), retries=0)
    want = get_embeddings_batch("spectral", reqs, provider={"name": "local", "catalog": str(index)},
                                overlap=False, **kw)
    import torch

    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        if kind != "sleep":
            os.sched_setaffinity(0, {min(affinity)})
        torch.set_num_threads(len(os.sched_getaffinity(0)))  # no spare core known beforehand
        with caplog.at_level(logging.INFO, logger="eoembed.overlap"):
            got = get_embeddings_batch(_model(kind), reqs, provider=provider, overlap="auto", progress=False, **kw)
    finally:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)
    for x, y in zip(want, got):
        np.testing.assert_array_equal(x.data, y.data)
    first_block = 16  # max(batch_size, 4 x 4 I/O workers)
    assert set(provider.threads[:first_block]) == {"MainThread"}
    rest = set(provider.threads[first_block:])
    assert rest == ({"eoembed-fetch"} if kind == "sleep" else {"MainThread"}), provider.threads
    assert ("fetching in a background thread" if kind == "sleep" else "fetching between batches") in caplog.text


def test_overlap_value_is_checked(index):
    from eoembed.errors import ConfigError

    with pytest.raises(ConfigError, match="overlap='yes' is invalid: allowed True, False or 'auto'"):
        get_embeddings_batch("spectral", _requests()[:1], overlap="yes",
                             provider={"name": "local", "catalog": str(index)})
