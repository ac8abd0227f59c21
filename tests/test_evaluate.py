"""Tests of eoembed.evaluate: spatial blocks, grouped cross-validation benchmarks and TSV outputs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from eoembed.errors import ConfigError, SpecError
from eoembed.evaluate import EARTH_RADIUS_KM
from eoembed.evaluate import METRIC_COLUMNS, benchmark, buffered_folds, run_benchmarks, spatial_blocks


def test_blocks_keep_neighbours_together_and_far_points_apart():
    # 50 km blocks; points ~1 km apart inside one block, and points 300+ km away
    lon = [0.10, 0.11, 0.10, 3.5, 0.10]
    lat = [0.20, 0.21, 3.20, 0.20, 0.205]
    g = spatial_blocks(lon, lat, 50.0)
    assert g[0] == g[1] == g[4]
    assert len({g[0], g[2], g[3]}) == 3
    assert list(g[:4]) == [0, 0, 1, 2]  # numbered in order of first appearance


def test_blocks_are_equal_area_not_equal_degree():
    # 0.6 deg of longitude is ~67 km at the equator but ~33 km at 60N (cos 60 = 1/2):
    # with 50 km blocks the pair splits at the equator and stays together at 60N
    # (x = 6371 km * radians(lon) * cos(lat): 5.6 and 38.9 km at 60N; 11.1 and 77.8 km at 0.2N)
    g = spatial_blocks([0.1, 0.7, 0.1, 0.7], [60.0, 60.0, 0.2, 0.2], 50.0)
    assert g[0] == g[1]
    assert g[2] != g[3]


@pytest.mark.parametrize("bad", [0, -5, float("nan")])
def test_blocks_reject_bad_size(bad):
    with pytest.raises(SpecError, match="block_km"):
        spatial_blocks([0.0], [0.0], bad)


def _synthetic(n=150, seed=0):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(0, 10, n)
    lat = rng.uniform(40, 48, n)
    X = rng.normal(size=(n, 3))
    y = 2.0 * X[:, 0] - 1.0 * X[:, 1] + 0.1 * rng.normal(size=n)
    return lon, lat, X, y


def test_benchmark_learns_signal_and_not_noise():
    lon, lat, X, y = _synthetic()
    groups = spatial_blocks(lon, lat, 100.0)
    rows, preds = benchmark(X, y, groups, task="regression", n_splits=5, seed=0)
    r2 = {r["estimator"]: r for r in rows if r["metric"] == "r2"}
    assert set(r2) == {"ridge", "random_forest"}
    assert r2["ridge"]["mean"] > 0.8 and r2["random_forest"]["mean"] > 0.8
    assert all(r["n_folds"] == 5 and r["n_items"] == len(y) for r in rows)
    rmse = {r["estimator"]: r for r in rows if r["metric"] == "rmse"}["ridge"]
    assert 0 < rmse["mean"] < 0.3 and rmse["std"] >= 0
    # no spatial group is ever on both sides of a split: every group is tested in exactly one fold
    for _, p in preds.groupby("estimator"):
        assert (p.groupby("group")["fold"].nunique() == 1).all()
        assert sorted(p["fold"].unique()) == list(range(5))
        np.testing.assert_array_equal(p["y_true"].to_numpy(), y)
    rng = np.random.default_rng(1)
    shuffled_rows, _ = benchmark(X, rng.permutation(y), groups, task="regression", n_splits=5, seed=0)
    for r in shuffled_rows:
        if r["metric"] == "r2":
            assert r["mean"] < 0.2


def test_benchmark_classification_with_nan_features():
    lon, lat, X, _ = _synthetic(n=120, seed=3)
    labels = np.where(X[:, 0] > 0, "forest", "crop")
    X = X.copy()
    X[::7, 2] = np.nan  # missing features are imputed inside each fold
    groups = spatial_blocks(lon, lat, 100.0)
    rows, preds = benchmark(X, labels, groups, task="classification", n_splits=4, seed=0)
    acc = {r["estimator"]: r["mean"] for r in rows if r["metric"] == "accuracy"}
    assert set(acc) == {"logistic", "random_forest"}
    assert min(acc.values()) > 0.85
    assert {r["metric"] for r in rows} == {"accuracy", "macro_f1"}
    assert set(preds["y_pred"]) <= {"forest", "crop"}


def test_benchmark_caps_folds_and_needs_two_groups():
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = np.arange(6, dtype=float)
    rows, preds = benchmark(X, y, [0, 0, 1, 1, 2, 2], models=("ridge",), n_splits=5)
    assert {r["n_folds"] for r in rows if r["metric"] == "rmse"} == {3}
    assert preds["fold"].nunique() == 3
    with pytest.raises(SpecError, match="groups"):
        benchmark(X, y, [7] * 6)
    with pytest.raises(SpecError, match="lasso"):
        benchmark(X, y, [0, 0, 1, 1, 2, 2], models=("lasso",))


def test_run_benchmarks_tsvs(tmp_path):
    lon, lat, X, y = _synthetic(n=60, seed=5)
    ids = [f"p{i}" for i in range(len(y))]
    status = ["ok"] * len(y)
    status[0] = "failed"  # skipped even though it has a label
    gdf = gpd.GeoDataFrame(
        {"roi_id": ids, "status": status, "embedding": [row.astype(np.float32) for row in X]},
        geometry=[shapely.box(a - 0.001, b - 0.001, a + 0.001, b + 0.001) for a, b in zip(lon, lat)],
        crs="EPSG:4326")
    path = tmp_path / "m.parquet"
    gdf.to_parquet(path)
    labels = pd.DataFrame({"roi_id": ids, "height": y, "cls": np.where(X[:, 0] > 0, "a", "b")})
    labels.loc[1, "height"] = np.nan  # unlabelled for this target
    metrics = run_benchmarks({"toy": path}, labels,
                             [{"column": "height", "task": "regression"},
                              {"column": "cls", "task": "classification"}],
                             block_km=100.0, out_metrics_tsv=tmp_path / "metrics.tsv",
                             out_predictions_tsv=tmp_path / "pred.tsv",
                             models={"regression": ("ridge",), "classification": ("logistic",)}, n_splits=3)
    back = pd.read_csv(tmp_path / "metrics.tsv", sep="\t")
    assert list(back.columns) == list(METRIC_COLUMNS)
    assert len(back) == len(metrics) == 8  # 2 targets x 2 metrics, for the model and the baseline
    assert set(back.model) == {"toy", "baseline"}
    assert set(back[back.model == "baseline"].estimator) == {"mean", "majority"}
    back = back[back.model == "toy"]
    reg = back[back.target == "height"]
    assert set(reg.metric) == {"r2", "rmse"} and (reg.n_items == 58).all()
    assert reg[reg.metric == "r2"]["mean"].iloc[0] > 0.8
    cls = back[back.target == "cls"]
    assert set(cls.metric) == {"accuracy", "macro_f1"} and (cls.n_items == 59).all()
    pred = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert set(pred.model) == {"toy", "baseline"}
    pred = pred[pred.model == "toy"]
    assert "p0" not in set(pred.roi_id)
    assert "p1" not in set(pred[pred.target == "height"].roi_id)
    assert "p1" in set(pred[pred.target == "cls"].roi_id)
    # labels join on roi_id: y_true is the label of that ROI
    height = pred[pred.target == "height"].set_index("roi_id")["y_true"]
    assert float(height.loc["p5"]) == pytest.approx(y[5])  # y_true mixes tasks, so read as text
    with pytest.raises(ConfigError, match="biomass"):
        run_benchmarks({"toy": path}, labels, [{"column": "biomass", "task": "regression"}], 100.0,
                       tmp_path / "x.tsv", tmp_path / "y.tsv")


def _export(path, ids, lon, lat, X, status=None):
    gpd.GeoDataFrame({"roi_id": ids, "status": status or ["ok"] * len(ids),
                      "embedding": [row.astype(np.float32) for row in X]},
                     geometry=gpd.points_from_xy(lon, lat).buffer(0.0005), crs="EPSG:4326").to_parquet(path)
    return path


def test_planted_pair_across_a_block_edge_never_straddles_train_and_test():
    # 50 km blocks; a pair 10 m apart straddling a block edge, among points spread over ~500 km
    rng = np.random.default_rng(2)
    lon = list(rng.uniform(0, 5, 60))
    lat = list(rng.uniform(0, 5, 60))
    edge_deg = np.degrees(50.0 / EARTH_RADIUS_KM)  # x = R * radians(lon) at the equator: edge at 50 km
    lon += [edge_deg - 0.00005, edge_deg + 0.00005]
    lat += [0.0001, 0.0001]
    groups = spatial_blocks(lon, lat, 50.0)
    a, b = len(lon) - 2, len(lon) - 1
    assert groups[a] != groups[b]  # the blocks alone would let them straddle
    unbuffered = buffered_folds(lon, lat, groups, n_splits=5, seed=0)
    assert any((a in test and b in train) or (b in test and a in train) for train, test in unbuffered)
    for train, test in buffered_folds(lon, lat, groups, n_splits=5, seed=0, buffer_km=1.0):
        assert not ((a in test and b in train) or (b in test and a in train))
        # and no training item is within 1 km of any test item
        tl, tt = np.radians(np.c_[np.asarray(lon)[train], np.asarray(lat)[train]]), np.radians(
            np.c_[np.asarray(lon)[test], np.asarray(lat)[test]])
        d = EARTH_RADIUS_KM * np.hypot((tl[:, None, 0] - tt[None, :, 0]) * np.cos(tl[:, None, 1]),
                                       tl[:, None, 1] - tt[None, :, 1])
        assert d.min() > 1.0
    with pytest.raises(SpecError, match="buffer_km"):
        buffered_folds(lon, lat, groups, n_splits=5, seed=0, buffer_km=5000.0)


def test_models_share_items_and_folds_and_a_baseline_row(tmp_path):
    lon, lat, X, y = _synthetic(n=60, seed=7)
    ids = [f"p{i}" for i in range(len(y))]
    status_b = ["ok"] * len(ids)
    status_b[3] = status_b[10] = "failed"  # model b lost two items: a is scored without them too
    pa = _export(tmp_path / "a.parquet", ids, lon, lat, X)
    pb = _export(tmp_path / "b.parquet", ids, lon, lat, X[:, :2] + 1.0, status_b)
    labels = pd.DataFrame({"roi_id": ids, "height": y})
    metrics = run_benchmarks({"a": pa, "b": pb}, labels, [{"column": "height", "task": "regression"}],
                             block_km=100.0, out_metrics_tsv=tmp_path / "m.tsv", out_predictions_tsv=tmp_path / "p.tsv",
                             models={"regression": ("ridge",)}, n_splits=3, buffer_km=2.0)
    assert set(metrics.model) == {"a", "b", "baseline"} and set(metrics.n_items) == {58}
    pred = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    per_model = {m: p.sort_values("roi_id") for m, p in pred.groupby("model")}
    assert {"p3", "p10"}.isdisjoint(pred.roi_id)
    for m in ("b", "baseline"):  # same items, same folds
        np.testing.assert_array_equal(per_model[m][["roi_id", "fold"]].to_numpy(),
                                      per_model["a"][["roi_id", "fold"]].to_numpy())
    r2 = metrics[metrics.metric == "r2"].set_index("model")
    assert r2.loc["a", "mean"] > 0.8 and r2.loc["baseline", "mean"] < 0.05  # mean predictor: r2 <= 0
    sem = r2.loc["a", "sem"]
    assert sem == pytest.approx(r2.loc["a", "std"] / np.sqrt(r2.loc["a", "n_folds"]))
    _export(pb, ids, lon, lat, X[:, :2], ["failed"] * len(ids))
    with pytest.raises(ConfigError, match="every compared model"):
        run_benchmarks({"a": pa, "b": pb}, labels, [{"column": "height", "task": "regression"}], 100.0,
                       tmp_path / "m.tsv", tmp_path / "p.tsv")
