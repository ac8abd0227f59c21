"""Tests of eoembed.retrieval and ``eoembed similar``: cosine search, spatial blocks, precision@k."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from eoembed.cli import main
from eoembed.evaluate import METRIC_COLUMNS
from eoembed.retrieval import EmbeddingTable, load_embeddings, neighbours, precision_at_k, run_retrieval, similar


def _write_export(path, ids, lon, lat, vectors, status=None):
    gdf = gpd.GeoDataFrame(
        {"roi_id": ids, "status": status or ["ok"] * len(ids),
         "embedding": [np.asarray(v, dtype=np.float32) for v in vectors]},
        geometry=shapely.buffer(shapely.points(np.asarray(lon), np.asarray(lat)), 0.001), crs="EPSG:4326")
    gdf.to_parquet(path)
    return path


@pytest.fixture()
def planted(tmp_path):
    """40 random ROIs spread over ~4 degrees; r07's twin is a scaled, slightly perturbed copy far away."""
    rng = np.random.default_rng(1)
    n, dim = 40, 24
    vecs = rng.normal(size=(n, dim))
    lon, lat = rng.uniform(5, 9, n), rng.uniform(45, 49, n)
    ids = [f"r{i:02d}" for i in range(n)]
    vecs[39] = 3.0 * vecs[7] + 0.01 * rng.normal(size=dim)  # cosine ~1, different norm
    ids[39] = "twin"
    return _write_export(tmp_path / "emb.parquet", ids, lon, lat, vecs), ids


@pytest.mark.parametrize("method", ["exact", "ann"])
def test_planted_near_duplicate_is_top_neighbour(planted, method):
    if method == "ann":
        pytest.importorskip("faiss")
    path, ids = planted
    hits = similar(path, "r07", k=5, method=method)
    assert hits["roi_id"].iloc[0] == "twin"
    assert hits["cosine"].iloc[0] > 0.999
    assert "r07" not in set(hits["roi_id"])  # never the query itself
    assert list(hits["rank"]) == [1, 2, 3, 4, 5]
    assert (np.diff(hits["cosine"]) <= 1e-6).all()
    # the reverse query finds r07 as well
    assert similar(path, "twin", k=1, method=method)["roi_id"].iloc[0] == "r07"


def test_ann_and_exact_agree_on_ranking(planted):
    pytest.importorskip("faiss")
    path, _ = planted
    exact, ann = similar(path, "r03", k=10, method="exact"), similar(path, "r03", k=10, method="ann")
    assert list(exact["roi_id"]) == list(ann["roi_id"])
    np.testing.assert_allclose(exact["cosine"], ann["cosine"], atol=1e-5)


def test_spatial_block_excludes_adjacent_rois():
    # a query with two adjacent near-copies 200 m away and a weaker match 300 km away
    base = np.array([1.0, 0.0, 0.0, 0.0])
    vecs = np.array([base, base + [0, 0.01, 0, 0], base + [0, 0, 0.01, 0], base + [0, 0.5, 0.5, 0],
                     [0.0, 0.0, 0.0, 1.0]])
    lon = np.array([10.0, 10.002, 10.0, 13.0, 16.0])
    lat = np.array([50.0, 50.0, 50.0018, 50.0, 50.0])
    table = EmbeddingTable(["q", "adj1", "adj2", "far", "other"], lon, lat, vecs)
    plain = neighbours(table, [0], k=2)[0]
    assert {table.roi_ids[i] for i, _ in plain} == {"adj1", "adj2"}
    blocked = neighbours(table, [0], k=2, block_km=50)[0]
    assert [table.roi_ids[i] for i, _ in blocked] == ["far", "other"]
    # precision@1: same label for adjacent copies counts without blocks, not with them
    labels = ["crop", "crop", "crop", "forest", "crop"]  # 'other' ties at cosine 0: first row (q) wins
    p_unblocked = np.mean([labels[neighbours(table, [q], 1)[0][0][0]] == labels[q] for q in range(5)])
    p_blocked, _, n = precision_at_k(table, labels, 1, block_km=50)
    assert n == 5
    assert p_unblocked == pytest.approx(0.8) and p_blocked == pytest.approx(0.2)


def test_failed_and_nonfinite_items_are_not_searched(tmp_path):
    vecs = np.eye(4)
    vecs[2, 1] = np.nan
    path = _write_export(tmp_path / "e.parquet", ["a", "b", "c", "d"], [0, 1, 2, 3], [0, 0, 0, 0], vecs,
                         status=["ok", "failed", "ok", "partial"])
    table = load_embeddings(path)
    assert list(table.roi_ids) == ["a", "d"]
    with pytest.raises(Exception, match="roi.*'b'"):
        similar(path, "b", k=1)


def test_run_retrieval_writes_metric_rows(tmp_path):
    rng = np.random.default_rng(0)
    # two classes with distinct directions, scattered over many blocks
    n = 30
    labels = np.array(["crop", "forest"] * (n // 2))
    centre = {"crop": np.array([1.0, 0, 0]), "forest": np.array([0, 1.0, 0])}
    vecs = np.stack([centre[c] + 0.1 * rng.normal(size=3) for c in labels])
    lon, lat = np.linspace(0, 10, n), np.zeros(n)
    ids = [f"p{i}" for i in range(n)]
    path = _write_export(tmp_path / "e.parquet", ids, lon, lat, vecs)
    noise = _write_export(tmp_path / "n.parquet", ids, lon, lat, rng.normal(size=(n, 3)))
    table = pd.DataFrame({"roi_id": ids, "cls": labels, "y": np.arange(n, dtype=float)})
    out = tmp_path / "retrieval.tsv"
    df = run_retrieval({"good": path, "noise": noise}, table,
                       [{"column": "cls", "task": "classification"}, {"column": "y", "task": "regression"}],
                       k=3, block_km=50, out_tsv=out)
    assert list(df.columns) == list(METRIC_COLUMNS)
    read = pd.read_csv(out, sep="\t").set_index("model")
    assert set(read["metric"]) == {"precision_at_3"} and set(read["task"]) == {"retrieval"}
    assert read.loc["good", "mean"] == pytest.approx(1.0)
    assert read.loc["noise", "mean"] < 0.8
    assert read.loc["good", "n_items"] == n


def test_cli_similar(planted, capsys):
    path, _ = planted
    assert main(["similar", "--model", "x", "--roi", "r07", "-k", "3", "--parquet", str(path),
                 "--method", "exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["rank", "roi_id", "cosine"]
    assert lines[1].split()[:2] == ["1", "twin"] and len(lines) == 4
    assert main(["similar", "--model", "nope", "--roi", "r07", "--results", str(path.parent)]) == 2
    assert "no export of model 'nope'" in capsys.readouterr().err


def test_exact_search_in_query_blocks_gives_the_same_neighbours(planted, monkeypatch):
    import eoembed.retrieval as retrieval

    table = load_embeddings(planted[0])
    whole = neighbours(table, range(len(table)), k=4, method="exact")
    monkeypatch.setattr(retrieval, "QUERY_BLOCK", 3)
    blocked = neighbours(table, range(len(table)), k=4, method="exact")
    assert [[i for i, _ in row] for row in blocked] == [[i for i, _ in row] for row in whole]
    np.testing.assert_allclose([[c for _, c in row] for row in blocked], [[c for _, c in row] for row in whole],
                               atol=1e-6)
    assert whole[7][0][0] == list(table.roi_ids).index("twin")
