"""Tests of eoembed.manifest: aggregation of chunk records into a TSV manifest and a summary JSON."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from eoembed.chunkio import write_chunk
from eoembed.manifest import COLUMNS, aggregate, read_manifest
from test_export import make_items

MULTILINE_ERROR = "Traceback:\n\tProviderError: 503\tfrom <server>\n  retry later"


@pytest.fixture()
def run(tmp_path):
    """A fetch chunk (no model) + embed chunks of two models; model m2 has no fetch timings."""
    embed = {}
    for model in ("m1", "m2"):
        items, records, meta = make_items(model=model, seed=len(embed), error=MULTILINE_ERROR)
        if model == "m2":
            for rec in records.values():
                rec["timings"]["fetch_s"] = None  # must come from the fetch stage
        path = tmp_path / f"embed_{model}.npz"
        write_chunk(path, items, records, meta)
        embed[model] = (path, items, records)
    fetch_records = {
        "r1": {"status": "ok", "stage": "fetch", "error": None, "timings": {"fetch_s": 2.0}},
        "r2": {"status": "ok", "stage": "fetch", "error": None, "timings": {"fetch_s": 3.0}},
        "r3": {"status": "failed", "stage": "fetch", "error": MULTILINE_ERROR, "timings": {"fetch_s": 4.0}},
        "NA": {"status": "failed", "stage": "fetch", "error": "no scenes", "timings": {"fetch_s": 0.5}},
    }
    fetch_path = tmp_path / "fetch.npz"
    write_chunk(fetch_path, {}, fetch_records, {"stage": "fetch", "sensor": {"collection": "s2"}})
    out_tsv, out_json = tmp_path / "m" / "manifest.tsv", tmp_path / "m" / "summary.json"
    df = aggregate({"embed": [embed["m1"][0], embed["m2"][0]], "fetch": [fetch_path]}, out_tsv, out_json,
                   wall_time_s=12.5)
    return df, out_tsv, out_json, embed


def test_manifest_rows(run):
    df, out_tsv, _, embed = run
    back = read_manifest(out_tsv)
    assert list(back.columns) == list(COLUMNS)
    assert len(back) == 3 * 2 + 1  # 3 items x 2 models + the upstream-only failure
    assert set(zip(back.roi_id, back.model)) == {(r, m) for r in ("r1", "r2", "r3") for m in ("m1", "m2")} | {
        ("NA", "")}
    by = back.set_index(["roi_id", "model"])
    assert by.loc[("r1", "m1"), "status"] == "ok" and by.loc[("r1", "m1"), "stage"] == "done"
    assert by.loc[("r2", "m2"), "status"] == "partial"
    failed = by.loc[("r3", "m1")]
    assert failed.status == "failed" and failed.stage == "fetch"
    assert failed.error == "Traceback: ProviderError: 503 from <server> retry later"
    assert by.loc[("NA", ""), "error"] == "no scenes"  # "NA" stays a string id
    # timings: m1 carries its own fetch_s; m2's are filled from the fetch stage
    assert by.loc[("r1", "m1"), "fetch_s"] == 1.5 and by.loc[("r1", "m2"), "fetch_s"] == 2.0
    assert by.loc[("r3", "m2"), "fetch_s"] == 4.0
    assert np.isnan(by.loc[("r3", "m1"), "embed_s"])
    assert by.loc[("r1", "m1"), "valid_fraction"] == pytest.approx(0.75)
    assert by.loc[("r2", "m1"), "cached"] and not by.loc[("r1", "m1"), "cached"]
    pooled = embed["m2"][1]["r1"]["pooled"]
    assert by.loc[("r1", "m2"), "embedding_sha256"] == hashlib.sha256(pooled.tobytes()).hexdigest()
    assert json.loads(by.loc[("r1", "m1"), "output_shape"])["pooled"] == [4]
    assert by.loc[("r1", "m1"), "request_key"] == "key-r1"
    assert len(df) == len(back)


def test_summary_json(run):
    df, _, out_json, embed = run
    summary = json.loads(out_json.read_text())
    assert summary["counts"]["m1"] == {"ok": 1, "partial": 1, "failed": 1}
    assert summary["counts"]["m2"] == {"ok": 1, "partial": 1, "failed": 1}
    assert summary["totals"] == {"ok": 2, "partial": 2, "failed": 3, "all": 7}
    failed = {(f["roi_id"], f["model"]): f for f in summary["failed"]}
    assert set(failed) == {("r3", "m1"), ("r3", "m2"), ("NA", "")}
    assert failed[("r3", "m1")]["stage"] == "fetch" and "\n" not in failed[("r3", "m1")]["error"]
    # m1: embed records' own fetch_s (1.5 each); m2: fetch stage values 2 + 3 + 4; plus NA's 0.5
    assert summary["timings_s"]["fetch_s"] == pytest.approx(3 * 1.5 + 2 + 3 + 4 + 0.5)
    assert summary["timings_s_by_model"]["m1"]["embed_s"] == pytest.approx(0.125 * 2)
    assert summary["wall_time_s"] == 12.5
    assert summary["versions"]["eoembed"] == "0.1.0"
    assert summary["cached"] == 2
    assert summary["chunk_files"] == {"fetch": 1, "embed": 2}


def test_later_stage_overrides_earlier(tmp_path):
    rec = {"roi_id": "x", "model": "m", "status": "failed", "stage": "embed", "error": "boom",
           "timings": {"fetch_s": 1.0, "embed_s": None}}
    write_chunk(tmp_path / "first.npz", {}, {"x": rec}, {"stage": "embed", "model": "m"})
    rec2 = {**rec, "status": "ok", "stage": "done", "error": None, "timings": {"embed_s": 2.0}}
    write_chunk(tmp_path / "retry.npz", {}, {"x": rec2}, {"stage": "embed", "model": "m"})
    df = aggregate({"embed": [tmp_path / "first.npz", tmp_path / "retry.npz"]}, tmp_path / "m.tsv",
                   tmp_path / "s.json")
    assert len(df) == 1
    row = df.iloc[0]
    assert row.status == "ok" and row.error == "" and row.fetch_s == 1.0 and row.embed_s == 2.0
