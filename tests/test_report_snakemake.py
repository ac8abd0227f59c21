"""Snakemake's own report of a real (tiny) run: captions, categories, and what Chromium renders."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from workflow_helpers import make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow
MODELS = ("spectral", "mosaiks")
FIGURES = ("metrics.png", "pred_vs_true.png", "score_heatmap.png", "embedding_scatter.png", "pca_rgb.png",
           "what_model_saw.png", "retrieval/spectral.png", "retrieval/mosaiks.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    index = make_imagery(root / "sample")
    rois = make_rois(index, root / "rois.tsv")
    table = pd.read_csv(rois, sep="\t")  # a two-class label (the tiny sites share one land cover)
    table["yield_class"] = np.where(table["yield_t_ha"] > table["yield_t_ha"].median(), "high", "low")
    table.to_csv(rois, sep="\t", index=False)
    config = write_config(root, index, rois, models=MODELS)
    cfg = yaml.safe_load(config.read_text())
    cfg["benchmark"]["targets"].append({"column": "yield_class", "task": "classification"})
    cfg["benchmark"]["retrieval_k"] = 3
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(root)
    snakemake(root, "--report", "report.html")
    snakemake(root, "--report", "report.zip")
    return root


def _script_json(page: str, name: str) -> dict:
    m = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', page, re.S)
    assert m, f"no {name} data in the report"
    return json.loads(m.group(1))


def test_report_has_every_figure_with_its_caption(run):
    page = (run / "report.html").read_text(encoding="utf-8")
    results, categories = _script_json(page, "results"), _script_json(page, "categories")
    for fig in FIGURES:
        entry = results[f"results/figures/{fig}"]
        assert entry["mime_type"] == "image/png"
        head, blob = entry["data_uri"].split(";base64,")
        assert head.startswith("data:image/png")
        assert base64.b64decode(blob) == (run / "results/figures" / fig).read_bytes()  # embedded as is
        assert len(entry["caption"]) > 100, fig
    caption = {k.split("/")[-1]: re.sub(r"<[^>]+>", "", v["caption"]) for k, v in results.items()}  # text
    # captions are rendered with the run's config and models
    assert "Models: spectral, mosaiks" in caption["metrics.png"]
    assert "50 km" in caption["metrics.png"] and "yield_class (classification)" in caption["metrics.png"]
    assert "yield_class" in caption["embedding_scatter.png"]
    assert "eoembed similar --model mosaiks --roi nl_a_00 -k 5" in caption["mosaiks.png"]
    assert "precision at k = 3" in caption["score_heatmap.png"]
    assert "retrieval.tsv" in " ".join(results)
    # categories: per benchmark, per model, run summary
    assert set(categories) == {"Benchmark", "Models", "Run summary"}
    assert set(categories["Models"]) == set(MODELS)
    assert categories["Models"]["mosaiks"] == ["results/figures/retrieval/mosaiks.png"]
    assert "results/figures/score_heatmap.png" in categories["Benchmark"]["Comparison"]


def test_report_zip_holds_the_figures(run):
    with zipfile.ZipFile(run / "report.zip") as zf:
        names = zf.namelist()
        assert "report/report.html" in names
        heatmap = [n for n in names if n.endswith("/score_heatmap.png")]
        assert len(heatmap) == 1
        assert zf.read(heatmap[0]) == (run / "results/figures/score_heatmap.png").read_bytes()


def _screenshot(html_path, png_path, chromium):
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,900", "--virtual-time-budget=5000", f"--screenshot={png_path}",
                    html_path.as_uri()], check=True, capture_output=True, timeout=120)
    with Image.open(png_path) as im:
        return np.asarray(im.convert("RGB"), dtype=float)


def _coloured_share(img: np.ndarray) -> float:
    """Share of strongly coloured pixels (the viridis heatmap cells; the report's chrome is grey)."""
    return float(((img.max(axis=-1) - img.min(axis=-1)) > 60).mean())


def test_report_renders_figures_in_chromium(run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    page = (run / "report.html").read_text(encoding="utf-8")
    # do what a reader's click on the figure does: the app's own setView with the result's data URI
    click = """<script>window.addEventListener('load', function () { setTimeout(function () {
      var p = 'results/figures/score_heatmap.png';
      app.setView({navbarMode: 'resultinfo', content: 'img', contentPath: results[p].data_uri, resultPath: p});
    }, 200); });</script></body>"""
    i = page.rindex("</body>")
    viewed = tmp_path / "viewed.html"
    viewed.write_text(page[:i] + click + page[i + 7:], encoding="utf-8")
    landing = _screenshot(run / "report.html", tmp_path / "landing.png", chromium)
    shot = _screenshot(viewed, tmp_path / "viewed.png", chromium)
    assert shot.shape == (900, 1280, 3)
    assert landing.std() > 5  # the report app itself rendered (not a blank page)
    content = shot[:, 640:]  # the content pane right of the menu
    assert _coloured_share(content) > 0.03, "heatmap not visible in the rendered report"
    assert _coloured_share(landing[:, 640:]) < _coloured_share(content) / 3
    # the menu shows the figure's caption text: darker text pixels on the grey menu
    assert shot[:, :640].std() > 10
