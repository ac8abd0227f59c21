"""eoembed status: a summary of the chunk files a workflow has written."""

from __future__ import annotations

import os

from eoembed.chunkio import write_chunk
from eoembed.cli import main
from eoembed.status import workflow_status


def _chunk(path, statuses, timing, seconds, mtime):
    recs = {f"r{i}": {"status": s, "timings": {timing: seconds}} for i, s in enumerate(statuses)}
    write_chunk(path, {}, recs, {"stage": "x"})
    os.utime(path, (mtime, mtime))


def test_status_counts_items_rates_and_slowest_stage(tmp_path, capsys):
    res = tmp_path / "results"
    _chunk(res / "fetch/s2/000.npz", ["ok", "ok", "failed"], "fetch_s", 0.5, 1000)
    _chunk(res / "fetch/s2/001.npz", ["ok", "ok", "ok"], "fetch_s", 0.5, 1010)
    _chunk(res / "composite/s2/000.npz", ["ok", "partial"], "composite_s", 0.1, 1005)
    _chunk(res / "embed/galileo_nano/000.npz", ["ok", "failed"], "embed_s", 2.0, 1020)
    (res / "embed/galileo_nano/001.npz").write_bytes(b"half written")  # not counted
    stats = {(s.stage, s.key): s for s in workflow_status(res)}
    fetch = stats[("fetch", "s2")]
    assert (fetch.chunks, fetch.items, fetch.counts) == (2, 6, {"ok": 5, "failed": 1})
    assert fetch.item_s == 3.0 and fetch.rate() == 2.0
    assert stats[("embed", "galileo_nano")].chunks == 1
    assert main(["status", "--results", str(res)]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("fetch"))
    assert row.split() == ["fetch", "s2", "2", "6", "5", "0", "1", "3.0", "2.0", "0.6"]
    assert out[-1] == "slowest stage: embed galileo_nano (4.0 s of item time)"


def test_status_of_an_empty_folder(tmp_path, capsys):
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "no chunk files yet" in capsys.readouterr().out
