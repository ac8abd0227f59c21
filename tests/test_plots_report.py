"""Tests of eoembed.plots and eoembed.report: PNG figures and the self-contained HTML report."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from eoembed.export_grid import export_grid_netcdf
from eoembed.manifest import aggregate
from eoembed.plots import metric_bars, pca_rgb, pca_rgba, pred_vs_true
from eoembed.report import write_report
from test_export import ERROR_TEXT, write_fixture_chunk

DPI = 50


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"), dtype=float)


@pytest.fixture()
def metrics_tsv(tmp_path):
    rows = []
    for model in ("m1", "m2"):
        for est in ("ridge", "random_forest"):
            rows += [(model, "height", "regression", est, "r2", 0.7, 0.05, 5, 40),
                     (model, "height", "regression", est, "rmse", 2.5, 0.3, 5, 40),
                     (model, "cls", "classification", est, "accuracy", 0.8, 0.02, 5, 40),
                     (model, "cls", "classification", est, "macro_f1", 0.75, 0.04, 5, 40)]
    path = tmp_path / "metrics.tsv"
    pd.DataFrame(rows, columns=["model", "target", "task", "estimator", "metric", "mean", "std", "n_folds",
                                "n_items"]).to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture()
def predictions_tsv(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for model in ("m1", "m2"):
        y = rng.normal(size=30)
        frames.append(pd.DataFrame({"model": model, "target": "height", "task": "regression",
                                    "estimator": "ridge", "roi_id": [f"r{i}" for i in range(30)],
                                    "group": 0, "fold": 0, "y_true": y,
                                    "y_pred": y + 0.1 * rng.normal(size=30)}))
    frames.append(pd.DataFrame({"model": "m1", "target": "cls", "task": "classification",
                                "estimator": "ridge", "roi_id": ["r0"], "group": 0, "fold": 0,
                                "y_true": ["crop"], "y_pred": ["forest"]}))
    path = tmp_path / "pred.tsv"
    pd.concat(frames).to_csv(path, sep="\t", index=False)
    return path


def test_metric_bars_png(tmp_path, metrics_tsv):
    out = tmp_path / "fig" / "metrics.png"
    metric_bars(metrics_tsv, out, panel_size=(3.0, 2.5), dpi=DPI)
    img = _png(out)
    # 4 panels (2 targets x 2 metrics), 3 per row -> 3 x 2 panels
    assert img.shape[:2] == (2 * 2.5 * DPI, 3 * 3.0 * DPI)
    assert img.std() > 10  # something was drawn


def test_pred_vs_true_png(tmp_path, predictions_tsv):
    out = tmp_path / "pvt.png"
    pred_vs_true(predictions_tsv, out, units={"height": "m"}, panel_size=(3.0, 3.0), dpi=DPI)
    img = _png(out)
    assert img.shape[:2] == (3.0 * DPI, 2 * 3.0 * DPI)  # one regression target x two models
    assert img.std() > 10


def test_pca_rgba_recovers_dominant_pattern():
    rng = np.random.default_rng(0)
    rows, cols, dim = 6, 7, 5
    pattern = np.linspace(-3, 3, rows * cols).reshape(rows, cols)
    direction = rng.normal(size=dim)
    emb = direction[:, None, None] * pattern[None] + 0.01 * rng.normal(size=(dim, rows, cols))
    emb[:, 2, 3] = np.nan
    rgba, explained = pca_rgba(emb)
    assert rgba.shape == (rows, cols, 4)
    assert rgba[2, 3, 3] == 0 and (np.delete(rgba[..., 3].ravel(), 2 * cols + 3) == 1).all()
    assert rgba.min() >= 0 and rgba.max() <= 1
    valid = np.ones((rows, cols), bool)
    valid[2, 3] = False
    # first component (red) follows the planted pattern up to sign
    corr = np.corrcoef(rgba[..., 0][valid], pattern[valid])[0, 1]
    assert abs(corr) > 0.99
    assert explained > 0.99


def test_pca_rgb_png(tmp_path):
    paths = {}
    for model in ("m1", "m2"):
        chunk = tmp_path / f"{model}.npz"
        write_fixture_chunk(chunk, model=model, seed=len(paths))
        nc = tmp_path / f"{model}_grid.nc"
        export_grid_netcdf(chunk, nc)
        paths[model] = (nc, "r1")
    out = tmp_path / "pca.png"
    pca_rgb(paths, out, panel_size=(3.0, 3.0), dpi=DPI)
    img = _png(out)
    assert img.shape[:2] == (3.0 * DPI, 2 * 3.0 * DPI)
    assert img.std() > 10


def test_report_html(tmp_path, metrics_tsv, predictions_tsv):
    chunk = tmp_path / "chunk.npz"
    write_fixture_chunk(chunk, model="m1")
    summary = tmp_path / "summary.json"
    aggregate({"embed": [chunk]}, tmp_path / "manifest.tsv", summary, wall_time_s=3.0)
    fig1, fig2 = tmp_path / "metrics.png", tmp_path / "pvt.png"
    metric_bars(metrics_tsv, fig1, panel_size=(2.0, 2.0), dpi=DPI)
    pred_vs_true(predictions_tsv, fig2, panel_size=(2.0, 2.0), dpi=DPI)
    out = tmp_path / "report" / "index.html"
    write_report(summary, metrics_tsv, {"Metrics <all>": fig1, "Predicted vs observed": fig2,
                                        "Missing": tmp_path / "nope.png"}, out)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # the failed item's error, escaped (never raw markup from the data)
    assert html.escape(ERROR_TEXT, quote=True) in page
    assert "<cloud>" not in page and "Metrics &lt;all&gt;" in page
    assert re.search(r"<td>r3</td><td>m1</td><td>fetch</td>", page)
    # figures embedded, byte for byte
    blobs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(b) for b in blobs] == [fig1.read_bytes(), fig2.read_bytes()]
    assert "nope.png" in page  # a missing figure is reported, not fatal
    assert "random_forest" in page and "0.700 \u00b1 0.050" in page  # metrics table
    assert "numpy" in page  # versions
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained


def test_report_html_joins_metric_tables(tmp_path, metrics_tsv):
    chunk = tmp_path / "chunk.npz"
    write_fixture_chunk(chunk, model="m1")
    summary = tmp_path / "summary.json"
    aggregate({"embed": [chunk]}, tmp_path / "manifest.tsv", summary, wall_time_s=1.0)
    retrieval = tmp_path / "retrieval.tsv"
    pd.DataFrame([("m1", "cls", "retrieval", "cosine_knn", "precision_at_5", 0.625, 0.125, 0, 40)],
                 columns=["model", "target", "task", "estimator", "metric", "mean", "std", "n_folds",
                          "n_items"]).to_csv(retrieval, sep="\t", index=False)
    out = tmp_path / "r.html"
    write_report(summary, [metrics_tsv, retrieval, tmp_path / "absent.tsv"], [], out)
    page = out.read_text(encoding="utf-8")
    assert "0.700 \u00b1 0.050" in page  # from metrics.tsv
    assert re.search(r"<td>precision_at_5</td><td class=\"num\">0.625 \u00b1 0.125</td>", page)
