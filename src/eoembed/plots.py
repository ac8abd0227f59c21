"""Figures of a run: benchmark metrics, predicted vs observed, PCA false-colour of grid embeddings.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas): no pyplot, no
display, no global state, so they are safe in parallel workflow jobs. Each function writes one
PNG atomically whose size in pixels is exactly ``panel_size * dpi`` per panel (no tight
bounding box), so figure layouts are reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from eoembed.chunkio import atomic_output

__all__ = ["metric_bars", "pca_rgb", "pca_rgba", "pred_vs_true"]

METRIC_LABELS = {"r2": "R\u00b2 (unitless)", "rmse": "RMSE ({target} units)",
                 "accuracy": "accuracy (fraction correct)", "macro_f1": "macro F1 (unitless)"}
NODATA_GREY = "0.8"


def _figure(n_panels: int, panel_size: tuple[float, float], dpi: int, ncols: int | None = None):
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols or 3, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(ncols * panel_size[0], nrows * panel_size[1]), dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _save(fig, out_png: str | os.PathLike, dpi: int) -> None:
    with atomic_output(out_png, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _message(out_png: str | os.PathLike, title: str, text: str, panel_size, dpi: int) -> None:
    fig, (ax,) = _figure(1, panel_size, dpi)
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    _save(fig, out_png, dpi)


def metric_bars(metrics_tsv: str | os.PathLike, out_png: str | os.PathLike,
                panel_size: tuple[float, float] = (4.5, 3.5), dpi: int = 100,
                ncols: int | None = None) -> None:
    """Bar charts of benchmark metrics: one panel per (target, metric), bars per model x estimator.

    Error bars are the standard deviation across cross-validation folds.

    Args:
        metrics_tsv: Metrics written by :func:`eoembed.evaluate.run_benchmarks`.
        out_png: Destination PNG.
        panel_size: Inches per panel (width, height).
        dpi: Dots per inch.
        ncols: Panels per row (default up to 3).
    """
    df = pd.read_csv(metrics_tsv, sep="\t", dtype={"model": str, "target": str, "estimator": str})
    if df.empty:
        _message(out_png, "Benchmark metrics", "no metrics", panel_size, dpi)
        return
    panels = list(dict.fromkeys(zip(df["target"], df["metric"])))
    models = list(dict.fromkeys(df["model"]))
    colours = {est: f"C{i}" for i, est in enumerate(dict.fromkeys(df["estimator"]))}
    fig, axes = _figure(len(panels), panel_size, dpi, ncols)
    for ax, (target, metric) in zip(axes, panels):
        sub = df[(df["target"] == target) & (df["metric"] == metric)]
        estimators = list(dict.fromkeys(sub["estimator"]))
        width = 0.8 / len(estimators)
        for k, est in enumerate(estimators):
            rows = sub[sub["estimator"] == est].set_index("model").reindex(models)
            x = np.arange(len(models)) + (k - (len(estimators) - 1) / 2) * width
            ax.bar(x, rows["mean"].to_numpy(dtype=float), width, yerr=rows["std"].to_numpy(dtype=float),
                   capsize=3, color=colours[est], label=est)
        ax.set_xticks(np.arange(len(models)), models, rotation=30 if len(models) > 3 else 0,
                      ha="right" if len(models) > 3 else "center")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric).format(target=target))
        ax.set_title(f"{target}: {metric}")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.3)  # headroom for the legend above the bars
        ax.legend(loc="upper right", ncols=len(estimators), fontsize="small")
    fig.suptitle("Spatial cross-validation (mean \u00b1 SD over folds)")
    _save(fig, out_png, dpi)


def pred_vs_true(predictions_tsv: str | os.PathLike, out_png: str | os.PathLike,
                 estimator: str | None = None, units: Mapping[str, str] | None = None,
                 panel_size: tuple[float, float] = (4.0, 4.0), dpi: int = 100) -> None:
    """Out-of-fold predicted vs observed values of the regression targets.

    One panel per model (columns) and regression target (rows), with the 1:1 line and the
    pooled out-of-fold R² in the title.

    Args:
        predictions_tsv: Predictions written by :func:`eoembed.evaluate.run_benchmarks`.
        out_png: Destination PNG.
        estimator: Estimator to show (default: the first one in the file).
        units: Optional unit per target, for the axis labels.
        panel_size: Inches per panel (width, height).
        dpi: Dots per inch.
    """
    from sklearn.metrics import r2_score

    df = pd.read_csv(predictions_tsv, sep="\t", dtype=str, keep_default_na=False)
    df = df[df["task"] == "regression"] if "task" in df else df.iloc[0:0]
    if estimator is not None:
        df = df[df["estimator"] == estimator]
    elif not df.empty:
        estimator = df["estimator"].iloc[0]
        df = df[df["estimator"] == estimator]
    if df.empty:
        _message(out_png, "Predicted vs observed", "no regression predictions", panel_size, dpi)
        return
    df = df.assign(y_true=pd.to_numeric(df["y_true"], errors="coerce"),
                   y_pred=pd.to_numeric(df["y_pred"], errors="coerce"))
    models, targets = list(dict.fromkeys(df["model"])), list(dict.fromkeys(df["target"]))
    fig, axes = _figure(len(models) * len(targets), panel_size, dpi, ncols=len(models))
    for i, target in enumerate(targets):
        unit = f" [{units[target]}]" if units and target in units else ""
        for j, model in enumerate(models):
            ax = axes[i * len(models) + j]
            sub = df[(df["model"] == model) & (df["target"] == target)].dropna(subset=["y_true", "y_pred"])
            yt, yp = sub["y_true"].to_numpy(), sub["y_pred"].to_numpy()
            r2 = r2_score(yt, yp) if len(yt) > 1 else float("nan")
            ax.scatter(yt, yp, s=12, alpha=0.7, edgecolor="none")
            if len(yt):
                lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
                ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, label="1:1")
                ax.legend(loc="upper left", fontsize="small")
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xlabel(f"observed {target}{unit}")
            ax.set_ylabel(f"predicted {target}{unit}")
            ax.set_title(f"{model} ({estimator})\nR\u00b2 = {r2:.2f}, n = {len(yt)}")
    _save(fig, out_png, dpi)


def pca_rgba(embedding: np.ndarray) -> tuple[np.ndarray, float]:
    """False-colour RGBA of a ``(dim, rows, cols)`` embedding: its first 3 principal components.

    Cells with any non-finite value are transparent (alpha 0). Each component is scaled
    robustly (2nd-98th percentile to [0, 1], clipped); missing components (fewer than 3 dims or
    cells) are 0.

    Returns:
        ``(rgba (rows, cols, 4) float in [0, 1], fraction of variance explained by the components)``.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    dim, rows, cols = emb.shape
    flat = emb.reshape(dim, -1).T
    valid = np.isfinite(flat).all(axis=1)
    rgba = np.zeros((rows * cols, 4))
    explained = float("nan")
    data = flat[valid]
    if len(data):
        centred = data - data.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(3, vt.shape[0])
        scores = centred @ vt[:k].T
        total = float((s ** 2).sum())
        explained = float((s[:k] ** 2).sum() / total) if total > 0 else float("nan")
        for c in range(k):
            lo, hi = np.percentile(scores[:, c], [2, 98])
            rgba[valid, c] = np.clip((scores[:, c] - lo) / (hi - lo), 0, 1) if hi > lo else 0.5
        rgba[valid, 3] = 1.0
    return rgba.reshape(rows, cols, 4), explained


def pca_rgb(grid_nc_by_model: Mapping[str, tuple[str | os.PathLike, str]], out_png: str | os.PathLike,
            panel_size: tuple[float, float] = (4.0, 4.0), dpi: int = 100) -> None:
    """PCA false-colour maps of grid embeddings, one panel per model.

    Args:
        grid_nc_by_model: Per model, ``(grid NetCDF path, roi_id)`` (see
            :func:`eoembed.export_grid.export_grid_netcdf`).
        out_png: Destination PNG.
        panel_size: Inches per panel (width, height).
        dpi: Dots per inch.
    """
    from pyproj import CRS

    from eoembed.errors import EoembedError
    from eoembed.export_grid import open_grid

    if not grid_nc_by_model:
        _message(out_png, "Grid embeddings", "no grid embeddings", panel_size, dpi)
        return
    fig, axes = _figure(len(grid_nc_by_model), panel_size, dpi)
    for ax, (model, (path, roi_id)) in zip(axes, grid_nc_by_model.items()):
        try:
            ds = open_grid(path, roi_id)
        except (EoembedError, KeyError, OSError) as exc:  # the item failed: say so in its panel
            ax.set_axis_off()
            ax.set_title(f"{model}: {roi_id}", fontsize="medium")
            ax.text(0.5, 0.5, f"no grid embedding:\n{str(exc)[:120]}", ha="center", va="center",
                    wrap=True, transform=ax.transAxes, fontsize="small")
            continue
        rgba, explained = pca_rgba(ds["embedding"].transpose("dim", "y", "x").values)
        x, y = ds["x"].values, ds["y"].values
        dx = abs(x[1] - x[0]) if len(x) > 1 else float(ds.attrs.get("cell_size_m", 1.0))
        dy = abs(y[1] - y[0]) if len(y) > 1 else float(ds.attrs.get("cell_size_m", 1.0))
        ax.set_facecolor(NODATA_GREY)  # transparent (no-data) cells show grey
        ax.imshow(rgba, extent=(x.min() - dx / 2, x.max() + dx / 2, y.min() - dy / 2, y.max() + dy / 2),
                  origin="upper" if y[0] >= y[-1] else "lower", interpolation="nearest")
        epsg = CRS.from_cf(ds["crs"].attrs).to_epsg() if "crs" in ds else None
        unit = ds["x"].attrs.get("units", "m")
        ax.set_xlabel(f"easting ({unit}, EPSG:{epsg})")
        ax.set_ylabel(f"northing ({unit})")
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(f"{model}: {roi_id}\nPCA RGB of {ds.sizes['dim']}-d embedding "
                     f"({explained:.0%} var.)", fontsize="medium")
    fig.suptitle("Grid embeddings, first 3 principal components as RGB (grey = no data)")
    _save(fig, out_png, dpi)
