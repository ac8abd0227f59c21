"""CPU streams (several batches at once, one torch thread each) give the one-batch-at-a-time answers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_precision import SHARED, WEIGHT_FILES, _setup

from eoembed.api import get_embeddings_batch
from eoembed.errors import ConfigError
from eoembed.models.registry import create
from eoembed.specs import OutputSpec
from eoembed.streams import MAX_STREAMS, cpu_streams

torch = pytest.importorskip("torch")


def _watched(embedder):
    """Record the thread and torch's thread count of every forward pass."""
    seen: list[tuple[str, int]] = []
    inner = embedder.forward

    def forward(batch):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return inner(batch)

    embedder.forward = forward
    return seen


@pytest.mark.parametrize("model", ["galileo_nano", "presto"])
def test_streams_give_bitwise_equal_embeddings(tmp_path, model):
    """Real weights, real S2 patches: 2 streams = 1 stream, pooled and grid, vectors and metadata."""
    reqs, kw = _setup(tmp_path, n=6, model=model)
    embedder = create(model, weights_paths=kw.pop("weights_paths"))
    seen = _watched(embedder)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for output in (OutputSpec.pooled(), OutputSpec.grid()):
            seen.clear()
            one = get_embeddings_batch(embedder, reqs, batch_size=2, streams=1, output=output, **kw)
            assert {name for name, _ in seen} == {"MainThread"} and {n for _, n in seen} == {2}
            seen.clear()
            two = get_embeddings_batch(embedder, reqs, batch_size=2, streams=2, output=output, **kw)
            on_streams = [n for name, n in seen if name.startswith("eoembed-stream")]
            assert len({name for name, _ in seen if name.startswith("eoembed-stream")}) == 2, seen
            assert len(on_streams) >= len(seen) - 1  # a lone last batch may run in the calling thread
            assert set(on_streams) == {1}  # torch's 2 threads shared out, one per stream
            assert torch.get_num_threads() == 2  # and given back
            assert [e.meta["status"] for e in two] == ["ok"] * len(reqs)
            for a, b in zip(one, two):
                assert a.data.shape == b.data.shape and a.data.size > 0
                np.testing.assert_array_equal(a.data, b.data)
                for key in ("embedding_sha256", "grid", "input_grid", "input_prep", "cell_px"):
                    assert a.meta.get(key) == b.meta.get(key), key
            # the items differ (equal answers are not one vector repeated)
            assert len({e.meta["embedding_sha256"] for e in two}) == len(reqs)
    finally:
        torch.set_num_threads(before)


def test_a_failed_batch_in_a_stream_is_retried_item_by_item(tmp_path):
    reqs, kw = _setup(tmp_path, n=6)
    embedder = create("galileo_nano", weights_paths=kw.pop("weights_paths"))
    ref = get_embeddings_batch(embedder, reqs, batch_size=2, streams=1, **kw)
    inner, calls, lock = embedder.forward, [0], threading.Lock()

    def flaky(batch):  # the second forward pass (whichever stream runs it) fails once
        with lock:
            calls[0] += 1
            n = calls[0]
        if n == 2:
            raise RuntimeError("transient")
        return inner(batch)

    embedder.forward = flaky
    got = get_embeddings_batch(embedder, reqs, batch_size=2, streams=2, **kw)
    assert calls[0] == len(reqs) // 2 + 2  # 3 batches, the failed one again as 2 single items
    assert [e.meta["status"] for e in got] == ["ok"] * len(reqs)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a.data, b.data)


def test_streams_only_where_the_model_allows_them():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        weights = {n: str(SHARED / "weights" / "galileo_nano" / n) for n in WEIGHT_FILES["galileo_nano"]}
        galileo = create("galileo_nano", weights_paths=weights)
        assert cpu_streams(galileo) == 2 and cpu_streams(galileo, "auto") == 2
        assert cpu_streams(galileo, 3) == 3 and cpu_streams(galileo, 1) == 1
        torch.set_num_threads(MAX_STREAMS + 3)
        assert cpu_streams(galileo) == MAX_STREAMS
        galileo.device = "cuda"  # an accelerator runs one batch at a time
        assert cpu_streams(galileo, 2) == 1
        dofa = create("dofa_base")  # forward hooks keep state: never concurrent
        assert dofa.concurrent_forward is False and cpu_streams(dofa, 2) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True, "2x"])
def test_a_bad_streams_value_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match=r"streams=.*allowed 'auto' or a positive integer"):
        cpu_streams(None, bad)
    with pytest.raises(ConfigError, match="streams="):
        get_embeddings_batch("spectral", [], streams=bad)


def test_streamed_api_run_keeps_the_batches_of_the_whole_list(tmp_path):
    """The first block (one batch per stream) is embedded before the rest arrives; with an item
    failing at fetch inside it, the batches are still those of the stage-by-stage run."""
    from eoembed.items import Request
    from eoembed.specs import PointBuffer

    reqs, kw = _setup(tmp_path, n=7)
    reqs.insert(1, Request("nowhere", PointBuffer(-60.0, -10.0, 320), reqs[0].temporal))
    embedder = create("galileo_nano", weights_paths=kw.pop("weights_paths"))
    batches: list[int] = []
    inner = embedder.forward

    def forward(batch):
        batches.append(len(batch.x["s2"]))
        return inner(batch)

    embedder.forward = forward
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ref = get_embeddings_batch(embedder, reqs, batch_size=3, overlap=False, streams=1, retries=0, **kw)
        ref_batches, batches[:] = list(batches), []
        got = get_embeddings_batch(embedder, reqs, batch_size=3, streams=2, retries=0, **kw)
    finally:
        torch.set_num_threads(before)
    assert ref_batches == [3, 3, 1] and sorted(batches) == sorted(ref_batches)
    assert [e.meta["status"] for e in got] == [e.meta["status"] for e in ref]
    assert got[1].meta["status"] == "failed" and got[1].meta["stage"] == "fetch"
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a.data, b.data)
