"""Tests of eoembed.figures: comparison figures, retrieval figure, gallery, holdout and label preparation."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from eoembed.chunkio import write_chunk
from eoembed.errors import ConfigError, SpecError
from eoembed.figures import sidecar_path
from eoembed.figures.compare import embedding_scatter, headline_scores, score_heatmap, what_model_saw
from eoembed.figures.retrieval import retrieval_figure
from eoembed.grid import GridSpec
from eoembed.holdout import random_holdout, run_holdout
from eoembed.items import Composite
from eoembed.labels import labels_pending, load_boundary
from test_retrieval import _write_export

DPI = 40


def _metrics(tmp_path):
    rows = [("m1", "y", "regression", "ridge", "r2", 0.4), ("m1", "y", "regression", "random_forest", "r2", 0.6),
            ("m1", "y", "regression", "ridge", "rmse", 1.0), ("m2", "y", "regression", "ridge", "r2", -0.2),
            ("m1", "cls", "classification", "logistic", "macro_f1", 0.7),
            ("m2", "cls", "classification", "logistic", "accuracy", 0.9)]
    df = pd.DataFrame(rows, columns=["model", "target", "task", "estimator", "metric", "mean"]).assign(
        std=0.0, n_folds=3, n_items=10)
    df.to_csv(tmp_path / "metrics.tsv", sep="\t", index=False)
    pd.DataFrame([("m2", "cls", "retrieval", "cosine_knn", "precision_at_5", 0.55, 0.1, 0, 10)],
                 columns=df.columns).to_csv(tmp_path / "retrieval.tsv", sep="\t", index=False)
    return [tmp_path / "metrics.tsv", tmp_path / "retrieval.tsv"]


def test_headline_scores_take_the_best_estimator_per_cell(tmp_path):
    table = headline_scores(_metrics(tmp_path))
    assert list(table.index) == ["m1", "m2"]
    assert list(table.columns) == ["y (regression: r2)", "cls (classification: macro_f1)",
                                   "cls (retrieval: precision_at_5)"]
    assert table.loc["m1", "y (regression: r2)"] == 0.6  # random forest beats ridge
    assert table.loc["m2", "y (regression: r2)"] == -0.2
    assert np.isnan(table.loc["m2", "cls (classification: macro_f1)"])  # only accuracy: not headline
    assert table.loc["m2", "cls (retrieval: precision_at_5)"] == 0.55


def test_score_heatmap_cells_are_written(tmp_path):
    out = tmp_path / "heat.png"
    score_heatmap(_metrics(tmp_path), out, dpi=DPI)
    d = json.loads(sidecar_path(out).read_text())
    heat = d["panels"][0]
    assert heat["images"] == [[2, 3]] and heat["ylabel"] == "model"
    assert heat["texts"] == ["0.60", "0.70", "n/a", "-0.20", "n/a", "0.55"]
    assert d["data"]["models"] == ["m1", "m2"]


def _composite(seed, shape=(12, 10)):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 3000, (1, 4, *shape)).astype(np.float32)
    valid = np.ones((1, *shape), bool)
    grid = GridSpec(crs="EPSG:32631", transform=(10.0, 0.0, 600000.0, 0.0, -10.0, 5800000.0),
                    width=shape[1], height=shape[0])
    return Composite(data, valid, [(dt.date(2023, 1, 1), dt.date(2024, 1, 1))], ("B02", "B03", "B04", "B08"),
                     grid, np.ones(shape, bool), 0.0, "median")


def _composite_chunk(path, ids, failed=()):
    items, records = {}, {}
    for i, rid in enumerate(ids):
        if rid in failed:
            items[rid], records[rid] = {}, {"status": "failed", "error": "no scene"}
            continue
        arrays, meta = _composite(i).to_arrays()
        items[rid], records[rid] = arrays, {"status": "ok", "meta": meta}
    write_chunk(path, items, records, {"stage": "composite"})
    return path


def test_what_model_saw_shows_each_models_composite(tmp_path):
    chunk = _composite_chunk(tmp_path / "c.npz", ["a", "b"])
    out = tmp_path / "saw.png"
    what_model_saw({"m1": chunk, "product": ""}, "a", out, dpi=DPI)
    d = json.loads(sidecar_path(out).read_text())
    assert d["data"] == {"m1": {"bands": ["B02", "B03", "B04", "B08"], "shape": [4, 12, 10]}}
    assert d["panels"][0]["images"] == [[12, 10]]
    assert d["panels"][0]["xlabel"] == "4 bands, 12x10 px"
    assert d["panels"][1]["images"] == [] and "precomputed product" in d["panels"][1]["texts"][0]


def test_embedding_scatter_colours_by_label(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(12)]
    vecs = np.concatenate([rng.normal(0, 0.1, (6, 5)) + 3, rng.normal(0, 0.1, (6, 5)) - 3])
    path = _write_export(tmp_path / "e.parquet", ids, np.arange(12.0), np.zeros(12), vecs)
    labels = pd.DataFrame({"roi_id": ids, "cls": ["a"] * 6 + ["b"] * 5 + [None]})
    out = tmp_path / "scatter.png"
    embedding_scatter({"m": path}, labels, "cls", out, dpi=DPI)
    d = json.loads(sidecar_path(out).read_text())
    a, b = d["panels"][0]["points"]  # one scatter per class, in class order
    assert len(a) == 6 and len(b) == 5  # the unlabelled ROI is not drawn
    # PC1 separates the two planted clusters
    assert max(p[0] for p in a) < min(p[0] for p in b) or min(p[0] for p in a) > max(p[0] for p in b)
    assert d["panels"][0]["xlabel"].startswith("PC1 (")


def test_retrieval_figure_shows_query_then_neighbours(tmp_path):
    ids = ["q", "near", "far", "gone"]
    vecs = np.array([[1, 0, 0], [1, 0.05, 0], [0.5, 0.5, 0], [1, 0.01, 0]], float)
    path = _write_export(tmp_path / "e.parquet", ids, [0, 1, 2, 3], [0, 0, 0, 0], vecs)
    chunk = _composite_chunk(tmp_path / "c.npz", ids, failed={"gone"})
    out = tmp_path / "ret.png"
    retrieval_figure(path, [chunk], "q", out, k=3, dpi=DPI, model="m")
    d = json.loads(sidecar_path(out).read_text())
    assert d["data"]["neighbours"] == ["gone", "near", "far"]
    titles = [p["title"] for p in d["panels"]]
    assert titles[0] == "query: q" and titles[1].startswith("#1 gone")
    assert d["panels"][1]["images"] == [] and d["panels"][1]["texts"] == ["no imagery for this ROI"]
    assert d["panels"][2]["images"] == [[12, 10]]


def test_random_holdout_is_seeded_and_sized():
    a, b = random_holdout(50, 0.2, 7), random_holdout(50, 0.2, 7)
    assert a.sum() == 10 and (a == b).all()
    assert not (a == random_holdout(50, 0.2, 8)).all()
    with pytest.raises(SpecError, match="test_fraction"):
        random_holdout(50, 1.0, 0)


def test_run_holdout_scores_the_same_test_rois_for_every_model(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    ids = [f"p{i}" for i in range(n)]
    x = rng.normal(size=(n, 4))
    y = 2 * x[:, 0] + 0.01 * rng.normal(size=n)
    good = _write_export(tmp_path / "g.parquet", ids, np.arange(n) * 0.1, np.zeros(n), x)
    noise = _write_export(tmp_path / "n.parquet", ids, np.arange(n) * 0.1, np.zeros(n), rng.normal(size=(n, 4)))
    m = run_holdout({"good": good, "noise": noise}, pd.DataFrame({"roi_id": ids, "y": y}),
                    [{"column": "y", "task": "regression"}], ["ridge"], 0.2, 0,
                    tmp_path / "m.tsv", tmp_path / "p.tsv")
    r2 = m[m["metric"] == "r2"].set_index("model")["mean"]
    assert r2["good"] > 0.95 and r2["noise"] < 0.5
    p = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert len(p) == 2 * 6
    assert set(p[p.model == "good"].roi_id) == set(p[p.model == "noise"].roi_id)


def test_labels_pending_and_boundary_errors(tmp_path):
    assert labels_pending({"rois": str(tmp_path / "missing.tsv"), "labels": {"source": "spam2020"}})
    assert not labels_pending({"rois": str(tmp_path / "missing.tsv")})
    with pytest.raises(ConfigError, match="labels.boundary: no file"):
        load_boundary(tmp_path / "nope.geojson")
    gj = tmp_path / "b.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "NAME": "A"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}))
    with pytest.raises(ConfigError, match="boundary_column: 'STATE' not in"):
        load_boundary(gj, "STATE", "A")
    with pytest.raises(ConfigError, match="no feature .* NAME == 'B'"):
        load_boundary(gj, "NAME", "B")
    assert load_boundary(gj, "NAME", "A").area == pytest.approx(0.5)
