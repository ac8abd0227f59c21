"""Figures people expect when comparing models: score heatmap, embedding scatter, model inputs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from eoembed.figures.base import save_with_data
from eoembed.figures.quicklook import load_composites, show_missing, show_rgb
from eoembed.plots import _figure

__all__ = ["HEADLINE_METRICS", "embedding_scatter", "headline_scores", "score_heatmap", "what_model_saw"]

HEADLINE_METRICS = {"regression": "r2", "classification": "macro_f1", "retrieval": "precision_at_"}
"""The score shown per task (retrieval: any ``precision_at_<k>``); higher is better for all three."""


def headline_scores(metrics_tsvs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Model x task table of the headline score, best estimator per cell.

    Columns are ``"<target> (<task>: <metric>)"``; a cell is the best mean over estimators.
    """
    frames = [pd.read_csv(p, sep="\t", dtype={"model": str, "target": str, "estimator": str})
              for p in metrics_tsvs]
    df = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
        not f.empty for f in frames) else pd.DataFrame(columns=["model", "target", "task", "metric", "mean"])
    keep = np.array([str(m).startswith(HEADLINE_METRICS.get(t, "\0")) if t == "retrieval"
                     else m == HEADLINE_METRICS.get(t) for t, m in zip(df["task"], df["metric"])], dtype=bool)
    df = df[keep]
    if df.empty:
        return pd.DataFrame()
    df = df.assign(column=df["target"] + " (" + df["task"] + ": " + df["metric"] + ")")
    table = df.groupby(["model", "column"], sort=False)["mean"].max().unstack("column")
    return table.reindex(index=list(dict.fromkeys(df["model"])), columns=list(dict.fromkeys(df["column"])))


def score_heatmap(metrics_tsvs: Sequence[str | os.PathLike], out_png: str | os.PathLike, dpi: int = 100):
    """Heatmap of models (rows) x tasks (columns): R² (regression), macro F1 (classification),
    precision@k (retrieval); the best estimator per cell, value written in the cell."""
    table = headline_scores(metrics_tsvs)
    n_rows, n_cols = max(1, table.shape[0]), max(1, table.shape[1])
    fig, (ax,) = _figure(1, (2.0 + 2.0 * n_cols, 1.6 + 0.5 * n_rows), dpi)
    if table.empty:
        show_missing(ax, "Scores per model and task", "no metrics")
        return save_with_data(fig, out_png, dpi, {"models": [], "tasks": [], "scores": []})
    values = table.to_numpy(dtype=float)
    im = ax.imshow(np.clip(values, 0, 1), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")  # < 0 shows as 0
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                color="white" if np.isnan(v) or v < 0.6 else "black", fontsize="small")
    ax.set_xticks(range(table.shape[1]), [c.replace(" (", "\n(") for c in table.columns], fontsize="small")
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_xlabel("task (metric)")
    ax.set_ylabel("model")
    ax.set_title("Best score per model and task (higher is better)")
    fig.colorbar(im, ax=ax, label="score (< 0 shown as 0)")
    return save_with_data(fig, out_png, dpi, {"models": list(table.index), "tasks": list(table.columns),
                                             "scores": values})


def _pca2(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centred = X - X.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    scores = np.zeros((len(X), 2))
    scores[:, :k] = centred @ vt[:k].T
    total = float((s ** 2).sum())
    return scores, (s[:2] ** 2 / total if total > 0 else np.zeros(2))


def embedding_scatter(export_parquets: Mapping[str, str | os.PathLike], labels: pd.DataFrame, column: str,
                      out_png: str | os.PathLike, dpi: int = 100):
    """PCA (first two components) of each model's pooled embeddings, points coloured by ``column``.

    A categorical label gets one colour per class and a legend, a numeric one a colour bar.
    """
    from eoembed.retrieval import load_embeddings

    lab = labels.assign(roi_id=labels["roi_id"].astype(str)).drop_duplicates("roi_id").set_index("roi_id")
    numeric = pd.api.types.is_numeric_dtype(lab[column])
    classes = sorted(lab[column].dropna().astype(str).unique()) if not numeric else []
    fig, axes = _figure(len(export_parquets), (3.6, 3.4), dpi)
    data = {}
    for ax, (model, path) in zip(axes, export_parquets.items()):
        table = load_embeddings(path)
        y = lab[column].reindex(table.roi_ids)
        keep = y.notna().to_numpy()
        if keep.sum() < 2:
            show_missing(ax, model, f"fewer than 2 ROIs with an embedding and a {column!r} label")
            continue
        xy, var = _pca2(table.raw[keep].astype(np.float64))
        yv = y[keep]
        if numeric:
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=yv.to_numpy(dtype=float), s=14, cmap="viridis")
            fig.colorbar(sc, ax=ax, label=column)
        else:
            for i, cls in enumerate(classes):
                m = (yv.astype(str) == cls).to_numpy()
                ax.scatter(xy[m, 0], xy[m, 1], s=14, color=f"C{i}", label=cls)
            ax.legend(fontsize="x-small", title=column, title_fontsize="x-small")
        ax.set_xlabel(f"PC1 ({var[0]:.0%} var.)")
        ax.set_ylabel(f"PC2 ({var[1]:.0%} var.)")
        ax.set_title(f"{model} ({table.raw.shape[1]}-d, n = {int(keep.sum())})", fontsize="medium")
        data[model] = {"roi_id": list(table.roi_ids[keep]), "label": [str(v) for v in yv]}
    fig.suptitle(f"Pooled embeddings, PCA, coloured by {column}")
    return save_with_data(fig, out_png, dpi, data)


def what_model_saw(composite_chunks: Mapping[str, str | os.PathLike], roi_id: str, out_png: str | os.PathLike,
                   dpi: int = 100):
    """One panel per model: the composite it was given for ``roi_id`` (RGB quick-look), with its
    band count and pixel size. Models without imagery input (precomputed products) are listed
    with a note instead of an image."""
    fig, axes = _figure(max(1, len(composite_chunks)), (3.0, 3.2), dpi, ncols=4)
    data = {}
    for ax, (model, path) in zip(axes, composite_chunks.items()):
        comps = load_composites([path], [roi_id]) if path else {}
        if roi_id not in comps:
            show_missing(ax, model, "no composite: a precomputed product or a failed item" if path
                         else "precomputed product: no imagery input")
            continue
        comp = comps[roi_id]
        show_rgb(ax, comp, f"{model}\n{comp.collection}, {comp.method}")
        data[model] = {"bands": list(comp.bands), "shape": [len(comp.bands), *comp.grid_shape()]}
    fig.suptitle(f"What each model saw: {roi_id} (RGB of its composite)")
    return save_with_data(fig, out_png, dpi, data)
