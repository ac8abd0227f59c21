"""The rs-embed paper's maize-yield figures (Figs. 4, 5, 7, 8), from any regression run.

* Fig. 4: test R² and RMSE per model (bars, best first) and predicted vs observed for the top models;
* Fig. 5: maps of the best model's test predictions and residuals (residual = predicted - observed,
  so red = over-prediction, blue = under-prediction);
* Fig. 7: dataset overview: label histogram, harvested-area histogram, map of points by label;
* Fig. 8: sample input imagery (RGB of the composites) across the region.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from eoembed.figures.base import save_with_data
from eoembed.figures.quicklook import load_composites, show_missing, show_rgb
from eoembed.plots import _figure

__all__ = ["fig4_scores", "fig5_maps", "fig7_overview", "fig8_imagery", "unit_of"]

UNITS = {"_t_ha": "t/ha", "_kg_ha": "kg/ha", "_ha": "ha"}


def unit_of(column: str) -> str:
    """Unit from a column-name suffix (``maize_yield_t_ha`` -> ``t/ha``), else ''."""
    return next((u for suffix, u in UNITS.items() if column.endswith(suffix)), "")


def _preds(predictions_tsv, target: str, estimator: str) -> pd.DataFrame:
    df = pd.read_csv(predictions_tsv, sep="\t", dtype={"model": str, "roi_id": str})
    df = df[(df["target"] == target) & (df["estimator"] == estimator)]
    return df.assign(y_true=df["y_true"].astype(float), y_pred=df["y_pred"].astype(float))


def _r2(yt: np.ndarray, yp: np.ndarray) -> float:
    ss = float(((yt - yt.mean()) ** 2).sum())
    return 1.0 - float(((yt - yp) ** 2).sum()) / ss if len(yt) > 1 and ss > 0 else float("nan")


def fig4_scores(metrics_tsv: str | os.PathLike, predictions_tsv: str | os.PathLike, target: str,
                estimator: str, out_png: str | os.PathLike, split: str, top_n: int = 3, dpi: int = 100):
    """Fig. 4: R² and RMSE bars per model (sorted by R², best first) + predicted vs observed of the top models."""
    m = pd.read_csv(metrics_tsv, sep="\t", dtype={"model": str})
    m = m[(m["target"] == target) & (m["estimator"] == estimator)]
    scores = m.pivot_table(index="model", columns="metric", values="mean", sort=False)
    err = m.pivot_table(index="model", columns="metric", values="std", sort=False)
    scores = scores.sort_values("r2", ascending=False) if "r2" in scores else scores
    models = list(scores.index)
    top = models[:top_n]
    unit = unit_of(target)
    fig, axes = _figure(2 + len(top), (3.4, 3.2), dpi, ncols=2 + len(top))
    for ax, metric, label in ((axes[0], "r2", "test R\u00b2"), (axes[1], "rmse", f"test RMSE ({unit})")):
        vals = scores[metric].to_numpy(float) if metric in scores else np.full(len(models), np.nan)
        sd = err[metric].reindex(models).to_numpy(float) if metric in err else None
        ax.bar(np.arange(len(models)), vals, yerr=None if sd is None or np.isnan(sd).all() else sd,
               color=[f"C{i}" for i in range(len(models))], capsize=3)
        ax.set_xticks(np.arange(len(models)), models, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per model" + (" (fold mean)" if sd is not None and not np.isnan(sd).all() else ""))
        ax.axhline(0, color="black", linewidth=0.6)
    preds = _preds(predictions_tsv, target, estimator)
    points = {}
    for ax, model in zip(axes[2:], top):
        sub = preds[preds["model"] == model]
        yt, yp = sub["y_true"].to_numpy(), sub["y_pred"].to_numpy()
        ax.scatter(yt, yp, s=10, alpha=0.7, edgecolor="none")
        if len(yt):
            lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        ax.set_xlabel(f"observed {target} ({unit})")
        ax.set_ylabel(f"predicted {target} ({unit})")
        ax.set_title(f"{model}: R\u00b2 = {_r2(yt, yp):.2f}, n = {len(yt)}", fontsize="medium")
        points[model] = list(sub["roi_id"])
    fig.suptitle(f"Maize yield, {estimator}, {split}: test scores and the top {len(top)} models")
    return save_with_data(fig, out_png, dpi, {"split": split, "models_by_r2": models,
                                             "r2": scores["r2"].tolist() if "r2" in scores else [],
                                             "rmse": scores["rmse"].tolist() if "rmse" in scores else [],
                                             "top": top, "scatter_roi_ids": points})


def fig5_maps(predictions_tsv: str | os.PathLike, rois: pd.DataFrame, target: str, estimator: str,
              out_png: str | os.PathLike, split: str, dpi: int = 100):
    """Fig. 5: the best model's (highest pooled test R²) predictions and residuals on a lon/lat map."""
    preds = _preds(predictions_tsv, target, estimator)
    r2 = {m: _r2(g["y_true"].to_numpy(), g["y_pred"].to_numpy()) for m, g in preds.groupby("model", sort=False)}
    best = max(r2, key=lambda m: -np.inf if np.isnan(r2[m]) else r2[m])
    sub = preds[preds["model"] == best].merge(rois.assign(roi_id=rois["roi_id"].astype(str))[
        ["roi_id", "lon", "lat"]], on="roi_id")
    residual = (sub["y_pred"] - sub["y_true"]).to_numpy()
    unit = unit_of(target)
    fig, (a1, a2) = _figure(2, (4.2, 3.6), dpi)
    sc = a1.scatter(sub["lon"], sub["lat"], c=sub["y_pred"], s=16, cmap="viridis")
    fig.colorbar(sc, ax=a1, label=f"predicted {target} ({unit})")
    a1.set_title(f"{best}: test predictions")
    lim = float(np.nanmax(np.abs(residual))) if len(residual) else 1.0
    sc2 = a2.scatter(sub["lon"], sub["lat"], c=residual, s=16, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(sc2, ax=a2, label=f"residual = predicted \u2212 observed ({unit})")
    a2.set_title(f"{best}: residuals (red = over-predicted)")
    for ax in (a1, a2):
        ax.set_xlabel("longitude (\u00b0E)")
        ax.set_ylabel("latitude (\u00b0N)")
    fig.suptitle(f"Maize yield, best model {best} (R\u00b2 = {r2[best]:.2f}), {estimator}, {split}")
    return save_with_data(fig, out_png, dpi, {"split": split, "best": best, "roi_id": list(sub["roi_id"]),
                                             "residual": residual, "residual_definition": "y_pred - y_true"})


def fig7_overview(rois: pd.DataFrame, target: str, area_column: str, out_png: str | os.PathLike,
                  dpi: int = 100):
    """Fig. 7: histograms of the label and of the harvested area, and the points coloured by label."""
    fig, (a1, a2, a3) = _figure(3, (3.6, 3.2), dpi)
    y, area = rois[target].astype(float), rois[area_column].astype(float)
    a1.hist(y.dropna(), bins=20, color="C2")
    a1.set_xlabel(f"{target} ({unit_of(target)})")
    a1.set_ylabel("points")
    a1.set_title(f"label (n = {y.notna().sum()})")
    a2.hist(area.dropna(), bins=20, color="C1")
    a2.set_xlabel(f"{area_column} ({unit_of(area_column)})")
    a2.set_ylabel("points")
    a2.set_title("harvested area")
    sc = a3.scatter(rois["lon"], rois["lat"], c=y, s=12, cmap="viridis")
    fig.colorbar(sc, ax=a3, label=f"{target} ({unit_of(target)})")
    a3.set_xlabel("longitude (\u00b0E)")
    a3.set_ylabel("latitude (\u00b0N)")
    a3.set_title("points")
    fig.suptitle(f"Dataset: {len(rois)} points")
    return save_with_data(fig, out_png, dpi, {"n_points": len(rois), "roi_id": list(rois["roi_id"])})


def fig8_imagery(composite_chunks, rois: pd.DataFrame, target: str, out_png: str | os.PathLike,
                 n: int = 6, dpi: int = 100):
    """Fig. 8: RGB composites of ``n`` ROIs spread over the region (evenly through the latitude order)."""
    order = rois.sort_values(["lat", "lon"], kind="stable").reset_index(drop=True)
    pick = order.iloc[np.unique(np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int))]
    comps = load_composites(composite_chunks, list(pick["roi_id"].astype(str)))
    fig, axes = _figure(len(pick), (2.6, 2.8), dpi, ncols=min(len(pick), 6))
    for ax, row in zip(axes, pick.itertuples()):
        title = f"{row.roi_id} ({row.lat:.2f}\u00b0N)\n{target} = {float(getattr(row, target)):.2f}"
        if str(row.roi_id) in comps:
            show_rgb(ax, comps[str(row.roi_id)], title)
        else:
            show_missing(ax, title, "no composite (failed item)")
    fig.suptitle("Sample input imagery (RGB composite of the window), south to north")
    return save_with_data(fig, out_png, dpi, {"roi_id": list(pick["roi_id"].astype(str))})
