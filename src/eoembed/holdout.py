"""A seeded random train/test holdout (the paper's split is unstated; this is the 80/20 reading).

The workflow's default benchmark is spatial block cross-validation
(:func:`eoembed.evaluate.run_benchmarks`); this module gives the random split beside it, in the
same metrics and predictions layout (``n_folds`` = 1, ``fold`` = 0, predictions of test items only),
so both can be reported and compared. A random split lets neighbouring ROIs sit on both sides, so
its scores are an optimistic upper bound.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from eoembed.chunkio import atomic_output
from eoembed.errors import SpecError
from eoembed.evaluate import METRIC_COLUMNS, _estimator, _fold_metrics

__all__ = ["random_holdout", "run_holdout"]

PRED_COLUMNS = ["model", "target", "task", "estimator", "roi_id", "group", "fold", "y_true", "y_pred"]


def random_holdout(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask of ``round(n * test_fraction)`` items (at least 1, at most n - 1), seeded."""
    if not 0 < test_fraction < 1:
        raise SpecError("test_fraction", test_fraction, "a number in (0, 1)", "random holdout")
    if n < 2:
        raise SpecError("items", n, "at least 2 labelled items", "random holdout")
    k = min(n - 1, max(1, int(round(n * test_fraction))))
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(seed).permutation(n)[:k]] = True
    return test


def run_holdout(export_parquets: Mapping[str, str | os.PathLike], labels: pd.DataFrame,
                targets: Sequence[Mapping[str, str]], estimators: Sequence[str], test_fraction: float,
                seed: int, out_metrics_tsv: str | os.PathLike,
                out_predictions_tsv: str | os.PathLike) -> pd.DataFrame:
    """Fit on a random ``1 - test_fraction`` of the ROIs, score on the rest, for every model/target.

    The split is drawn once over the labelled ROI ids (sorted), so every model is tested on the
    same ROIs when they all have embeddings for them.
    """
    from eoembed.retrieval import load_embeddings

    lab = labels.assign(roi_id=labels["roi_id"].astype(str)).drop_duplicates("roi_id").set_index("roi_id")
    metric_rows, preds = [], []
    for target in targets:
        column, task = target["column"], target["task"]
        ids = np.array(sorted(lab.index[lab[column].notna()]))
        test_ids = set(ids[random_holdout(len(ids), test_fraction, seed)])
        for model, path in export_parquets.items():
            table = load_embeddings(path)
            y_all = lab[column].reindex(table.roi_ids)
            keep = y_all.notna().to_numpy()
            X, y, rid = table.raw[keep].astype(float), y_all.to_numpy()[keep], table.roi_ids[keep]
            if task == "regression":
                y = y.astype(float)
            test = np.isin(rid, list(test_ids))
            for name in estimators:
                est = _estimator(name, task, seed).fit(X[~test], y[~test])
                y_pred = est.predict(X[test])
                ctx = {"model": model, "target": column, "task": task, "estimator": name}
                for metric, value in _fold_metrics(task, y[test], y_pred).items():
                    metric_rows.append({**ctx, "metric": metric, "mean": value, "std": float("nan"),
                                        "n_folds": 1, "n_items": int(len(y))})
                preds.append(pd.DataFrame({**ctx, "roi_id": rid[test], "group": -1, "fold": 0,
                                           "y_true": y[test], "y_pred": y_pred}))
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    predictions = pd.concat(preds, ignore_index=True)[PRED_COLUMNS] if preds else pd.DataFrame(
        columns=PRED_COLUMNS)
    for df, path in ((metrics, out_metrics_tsv), (predictions, out_predictions_tsv)):
        with atomic_output(path, ".tsv") as tmp:
            df.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return metrics
