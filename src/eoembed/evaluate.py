"""Benchmarks of embeddings against labels, with spatial cross-validation.

Nearby ROIs share land cover, weather and imagery, so a random split leaks: a model can score
well by memorising neighbours. :func:`spatial_blocks` assigns every ROI to a square block of
about ``block_km`` x ``block_km`` km and :func:`benchmark` uses scikit-learn's ``GroupKFold`` on
those blocks, so a block is never in the training and the test set of the same fold.

Estimators (all behind a ``SimpleImputer``, so NaN features are allowed):

* regression: ``ridge`` (``StandardScaler`` + ``RidgeCV``) and ``random_forest``
  (``RandomForestRegressor``, 200 trees); metrics ``r2`` and ``rmse``;
* classification: ``logistic`` (``StandardScaler`` + ``LogisticRegression``) and
  ``random_forest`` (``RandomForestClassifier``); metrics ``accuracy`` and ``macro_f1``.

Trivial baselines ``mean`` (regression) and ``majority`` (classification) are scored on the
same folds and reported as model ``baseline`` in every table.

Fair comparison (:func:`run_benchmarks`): every model is scored on the *same* items (those every
compared model embedded and that carry the label) and the *same* folds. Blocks alone do not stop
leakage across a block edge (two ROIs 10 m apart in neighbouring blocks), so :func:`buffered_folds`
also drops from each fold's training set every item within ``buffer_km`` (great-circle) of a test
item.

Metrics are computed per fold and reported as the mean, the standard deviation and the standard
error (``sem`` = std / sqrt(n_folds)) across folds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eoembed.chunkio import atomic_output
from eoembed.errors import ConfigError, SpecError

__all__ = ["BASELINE_MODEL", "METRIC_COLUMNS", "benchmark", "buffered_folds", "run_benchmarks", "spatial_blocks"]

log = logging.getLogger(__name__)
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
N_TREES = 200
RIDGE_ALPHAS = tuple(np.logspace(-3, 4, 15))
TASKS = ("regression", "classification")
ESTIMATORS = {"regression": ("ridge", "random_forest"), "classification": ("logistic", "random_forest")}
"""Estimators per task; the first two of each are the defaults."""
TRIVIAL = {"regression": "mean", "classification": "majority"}
"""The trivial estimator per task, reported as model :data:`BASELINE_MODEL`."""
BASELINE_MODEL = "baseline"
METRIC_COLUMNS = ("model", "target", "task", "estimator", "metric", "mean", "std", "sem", "n_folds", "n_items")


def spatial_blocks(lon: Sequence[float], lat: Sequence[float], block_km: float) -> np.ndarray:
    """Group ids of equal-area spatial blocks of about ``block_km`` x ``block_km`` km.

    Points are projected with the sinusoidal (equal-area) projection on a sphere:
    ``x = R * lon * cos(lat)``, ``y = R * lat`` (radians, ``R`` = mean Earth radius), and binned
    into ``block_km`` squares. Every block therefore covers the same ground area (a block spans
    more degrees of longitude at high latitude); block shapes shear far from the central
    meridian, which does not matter for keeping neighbours together.

    Args:
        lon, lat: Coordinates in degrees (same length).
        block_km: Block side in km, > 0.

    Returns:
        int64 group ids ``0..k-1``, numbered in order of first appearance.
    """
    lon_a, lat_a = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if lon_a.shape != lat_a.shape:
        raise SpecError("lat", lat_a.shape, f"the same shape as lon {lon_a.shape}", "spatial_blocks")
    if not np.isfinite(lon_a).all() or not np.isfinite(lat_a).all():
        raise SpecError("lon/lat", "non-finite values", "finite coordinates", "spatial_blocks")
    if not (isinstance(block_km, (int, float)) and np.isfinite(block_km) and block_km > 0):
        raise SpecError("block_km", block_km, "a finite number > 0", "spatial_blocks")
    x = EARTH_RADIUS_KM * np.radians(lon_a) * np.cos(np.radians(lat_a))
    y = EARTH_RADIUS_KM * np.radians(lat_a)
    cells = np.stack([np.floor(x / block_km), np.floor(y / block_km)], axis=-1).astype(np.int64)
    _, first, inverse = np.unique(cells.reshape(-1, 2), axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()].reshape(lon_a.shape)


def buffered_folds(lon: Sequence[float], lat: Sequence[float], groups: Sequence[Any], n_splits: int = 5,
                   seed: int = 0, buffer_km: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped folds (a group is never split) with a spatial buffer around each test set.

    Args:
        lon, lat: Item coordinates in degrees.
        groups: Group per item (e.g. :func:`spatial_blocks`).
        n_splits: Folds, capped at the number of groups.
        seed: Seed of the fold shuffling.
        buffer_km: Items within this great-circle distance of any test item are dropped from
            that fold's training set (0 = none).

    Returns:
        ``[(train_idx, test_idx), ...]``; every item is tested in exactly one fold.

    Raises:
        SpecError: fewer than 2 groups, a bad ``n_splits``/``buffer_km``, or a buffer that leaves
            a fold without training items.
    """
    from scipy.spatial import cKDTree
    from sklearn.model_selection import GroupKFold

    g = np.asarray(groups)
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise SpecError("groups", n_groups, "at least 2 distinct spatial groups (smaller block_km or "
                        "more ROIs)", "benchmark")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise SpecError("n_splits", n_splits, "an integer >= 2", "benchmark")
    if not (isinstance(buffer_km, (int, float)) and np.isfinite(buffer_km) and buffer_km >= 0):
        raise SpecError("buffer_km", buffer_km, "a finite number >= 0", "benchmark")
    splitter = GroupKFold(n_splits=min(n_splits, n_groups), shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros((len(g), 1)), None, g))
    if not buffer_km:
        return folds
    lo, la = np.radians(np.asarray(lon, float)), np.radians(np.asarray(lat, float))
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)
    chord = 2 * np.sin(min(buffer_km / EARTH_RADIUS_KM, np.pi) / 2)  # great-circle km -> unit chord
    out = []
    for i, (train, test) in enumerate(folds):
        dist, _ = cKDTree(xyz[test]).query(xyz[train], distance_upper_bound=chord * (1 + 1e-12))
        kept = train[~np.isfinite(dist)]
        if not len(kept):
            raise SpecError("buffer_km", buffer_km, f"a buffer that leaves training items in every fold "
                            f"(fold {i} has none left)", "benchmark")
        out.append((kept, test))
    return out


def _estimator(name: str, task: str, seed: int):
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    impute = SimpleImputer(strategy="median")
    if task == "regression" and name == TRIVIAL["regression"]:
        return DummyRegressor(strategy="mean")
    if task == "classification" and name == TRIVIAL["classification"]:
        return DummyClassifier(strategy="most_frequent")
    if task == "regression" and name == "ridge":
        return make_pipeline(impute, StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    if task == "regression" and name == "random_forest":
        return make_pipeline(impute, RandomForestRegressor(n_estimators=N_TREES, random_state=seed, n_jobs=1))
    if task == "classification" and name == "logistic":
        return make_pipeline(impute, StandardScaler(), LogisticRegression(max_iter=2000))
    if task == "classification" and name == "random_forest":
        return make_pipeline(impute,
                             RandomForestClassifier(n_estimators=N_TREES, random_state=seed, n_jobs=1))
    raise SpecError("models", name, f"one of {(*ESTIMATORS[task], TRIVIAL[task])} for task {task!r}", "benchmark")


def _fold_metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, r2_score

    if task == "regression":
        r2 = r2_score(y_true, y_pred) if len(y_true) > 1 else float("nan")
        return {"r2": float(r2), "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred)))}
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def benchmark(X: np.ndarray, y: Sequence[Any], groups: Sequence[Any], task: str = "regression",
              models: Sequence[str] | None = None, n_splits: int = 5, seed: int = 0,
              folds: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Cross-validate estimators on ``X -> y`` with spatial groups.

    Args:
        X: ``(n_items, n_features)`` features; NaN allowed (median-imputed inside each fold).
        y: Targets (float for regression, labels for classification).
        groups: Group id per item (e.g. :func:`spatial_blocks`); a group is never split.
        task: ``"regression"`` or ``"classification"``.
        models: Estimator names (see module docstring); default ``("ridge", "random_forest")``
            for regression and ``("logistic", "random_forest")`` for classification.
        n_splits: Folds; capped at the number of distinct groups.
        seed: Seed of the fold shuffling and the random forests.
        folds: Precomputed ``[(train, test), ...]`` (e.g. :func:`buffered_folds`), so several
            models share the same folds; default grouped folds from ``groups`` without buffer.

    Returns:
        ``(rows, predictions)``: one dict per (estimator, metric) with ``estimator``, ``metric``,
        ``mean``, ``std`` (across folds), ``n_folds``, ``n_items``; and the out-of-fold
        predictions with columns ``item`` (row index), ``group``, ``fold`` (the fold the item was
        tested in), ``estimator``, ``y_true``, ``y_pred``.

    Raises:
        SpecError: For an unknown task/estimator, mismatched lengths or fewer than 2 groups.
    """
    if task not in TASKS:
        raise SpecError("task", task, f"one of {TASKS}", "benchmark")
    X = np.asarray(X, dtype=float)
    y_arr = np.asarray(y, dtype=float) if task == "regression" else np.asarray(y)
    g = np.asarray(groups)
    if X.ndim != 2 or len(X) != len(y_arr) or len(X) != len(g):
        raise SpecError("X/y/groups", (X.shape, len(y_arr), len(g)),
                        "a 2-D X with one y and one group per row", "benchmark")
    models = tuple(models) if models is not None else ESTIMATORS[task]
    if folds is None:
        folds = buffered_folds(np.zeros(len(g)), np.zeros(len(g)), g, n_splits, seed, 0.0)
    fold_of = np.empty(len(X), dtype=np.int64)
    for i, (_, test) in enumerate(folds):
        fold_of[test] = i

    rows: list[dict[str, Any]] = []
    preds: list[pd.DataFrame] = []
    for name in models:
        _estimator(name, task, seed)  # validate the name before fitting anything
        y_pred = np.empty(len(X), dtype=float if task == "regression" else y_arr.dtype)
        per_fold: dict[str, list[float]] = {}
        for train, test in folds:
            est = _estimator(name, task, seed).fit(X[train], y_arr[train])
            y_pred[test] = est.predict(X[test])
            for metric, value in _fold_metrics(task, y_arr[test], y_pred[test]).items():
                per_fold.setdefault(metric, []).append(value)
        for metric, values in per_fold.items():
            v = np.asarray(values, dtype=float)
            finite = v[np.isfinite(v)]
            rows.append({"estimator": name, "metric": metric,
                         "mean": float(finite.mean()) if finite.size else float("nan"),
                         "std": float(finite.std()) if finite.size else float("nan"),
                         "sem": float(finite.std() / np.sqrt(finite.size)) if finite.size else float("nan"),
                         "n_folds": int(finite.size), "n_items": int(len(X))})
        preds.append(pd.DataFrame({"item": np.arange(len(X)), "group": g, "fold": fold_of,
                                   "estimator": name, "y_true": y_arr, "y_pred": y_pred}))
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(
        columns=["item", "group", "fold", "estimator", "y_true", "y_pred"])
    return rows, predictions


def _write_tsv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_output(path, ".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def _embedded(path: str | os.PathLike, labelled) -> pd.DataFrame:
    """A model's export: the items with an embedding (not failed) and a labels row, by roi_id."""
    import geopandas as gpd

    gdf = gpd.read_parquet(path)
    gdf = gdf[(gdf["status"] != "failed") & gdf["embedding"].notna()]
    gdf = gdf.assign(roi_id=gdf["roi_id"].astype(str))
    return gdf[gdf["roi_id"].isin(labelled)].set_index("roi_id")


def run_benchmarks(export_parquets: Mapping[str, str | os.PathLike], labels: pd.DataFrame,
                   targets: Sequence[Mapping[str, str]], block_km: float,
                   out_metrics_tsv: str | os.PathLike, out_predictions_tsv: str | os.PathLike,
                   models: Mapping[str, Sequence[str]] | None = None, n_splits: int = 5,
                   seed: int = 0, buffer_km: float = 0.0) -> pd.DataFrame:
    """Benchmark every embedding model on every target; write tidy metrics and predictions TSVs.

    Args:
        export_parquets: Per model id, its GeoParquet export (:func:`eoembed.export.export_geoparquet`).
        labels: A table with ``roi_id`` and one column per target.
        targets: ``[{"column": ..., "task": "regression"|"classification"}, ...]``.
        block_km: Spatial block size for the grouped cross-validation.
        out_metrics_tsv: Destination of the metrics (:data:`METRIC_COLUMNS`).
        out_predictions_tsv: Destination of the out-of-fold predictions (model, target, task,
            estimator, roi_id, group, fold, y_true, y_pred).
        models: Estimators per task (default :data:`ESTIMATORS`).
        n_splits: Folds (capped at the number of blocks).
        seed: Seed of folds and forests.
        buffer_km: Training items within this distance of a test item are left out of that fold
            (:func:`buffered_folds`).

    Returns:
        The metrics table, with model :data:`BASELINE_MODEL` (mean / majority) per target. Every
        model is scored on the same items (embedded by every model, not failed, labelled) and
        the same folds.

    Raises:
        ConfigError: a target column is missing, or no item was embedded by every model.
    """
    import shapely

    if "roi_id" not in labels.columns:
        raise ConfigError(f"labels table has no 'roi_id' column; columns: {list(labels.columns)}")
    for target in targets:
        if target.get("column") not in labels.columns:
            raise ConfigError(f"target column {target.get('column')!r} not in labels; allowed: "
                              f"{[c for c in labels.columns if c != 'roi_id']}")
        if target.get("task") not in TASKS:
            raise SpecError("task", target.get("task"), f"one of {TASKS}", f"target {target.get('column')}")
    estimators = {**ESTIMATORS, **(models or {})}
    lab = labels.assign(roi_id=labels["roi_id"].astype(str)).drop_duplicates("roi_id").set_index("roi_id")
    embedded = {model: _embedded(path, lab.index) for model, path in export_parquets.items()}
    common = sorted(set.intersection(*(set(g.index) for g in embedded.values()))) if embedded else []
    if embedded and not common:
        raise ConfigError("no ROI was embedded by every compared model (embedded and labelled: "
                          f"{ {m: len(g) for m, g in embedded.items()} }); benchmarks compare models on "
                          "the same items")
    for model, g in embedded.items():
        if len(g) > len(common):
            log.warning("benchmark: %d item(s) of %s left out (not embedded by every model)",
                        len(g) - len(common), model)
    metric_rows: list[dict[str, Any]] = []
    pred_frames: list[pd.DataFrame] = []
    if embedded:
        first = next(iter(embedded.values())).loc[common]
        centroids = shapely.get_coordinates(shapely.centroid(first.geometry.to_numpy()))
    for target in targets if embedded else []:
        column, task = target["column"], target["task"]
        y_all = lab.loc[common, column]
        keep = y_all.notna().to_numpy()
        if task == "regression":
            keep = keep & np.isfinite(pd.to_numeric(y_all, errors="coerce").to_numpy(dtype=float))
        ids = np.asarray(common)[keep]
        lon, lat = centroids[keep, 0], centroids[keep, 1]
        y = y_all.to_numpy()[keep]
        groups = spatial_blocks(lon, lat, block_km)
        try:
            folds = buffered_folds(lon, lat, groups, n_splits, seed, buffer_km)
        except SpecError as exc:
            raise SpecError(exc.field, exc.value, exc.allowed, f"benchmark of {column}") from exc
        runs = [(m, np.stack([np.asarray(e, dtype=float) for e in g.loc[ids, "embedding"]]), estimators[task])
                for m, g in embedded.items()]
        runs.append((BASELINE_MODEL, np.zeros((len(ids), 1)), (TRIVIAL[task],)))
        for model, X, names in runs:
            rows, preds = benchmark(X, y, groups, task=task, models=names, seed=seed, folds=folds)
            ctx = {"model": model, "target": column, "task": task}
            metric_rows += [{**ctx, **r} for r in rows]
            preds.insert(0, "roi_id", ids[preds["item"].to_numpy()])
            pred_frames.append(preds.drop(columns="item").assign(**ctx))
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    pred_cols = ["model", "target", "task", "estimator", "roi_id", "group", "fold", "y_true", "y_pred"]
    predictions = pd.concat(pred_frames, ignore_index=True)[pred_cols] if pred_frames else pd.DataFrame(
        columns=pred_cols)
    _write_tsv(metrics, out_metrics_tsv)
    _write_tsv(predictions, out_predictions_tsv)
    return metrics
