"""The maize-yield paper config end to end, on SPAM-like rasters GENERATED here over generated imagery.

The test writes a yield (kg/ha) and a harvested-area (ha) GeoTIFF on one EPSG:4326 grid over three
small demo sites, plus a two-state boundary file; ``config/paper/maize_illinois.yaml`` is run with
its paths pointed at them (local provider, two weight-free models, small spatial blocks). The
figures are checked through the data each figure writes beside its PNG (read back from the
matplotlib artists): panels, axes, the points plotted and the residual sign.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine

from eoembed.providers.sample import generate, site_grid
from eoembed.grid import to_crs
from workflow_helpers import ROOT, job_counts, snakemake

pytestmark = pytest.mark.slow

TILE_PX = 96
SITES = [("il_w", -89.300, 40.100), ("il_e", -89.262, 40.112), ("in_x", -89.224, 40.100)]
RES = 0.0005  # degrees per SPAM-like cell (the real SPAM grid is 5', far larger than a test tile)
LON0, LAT1, NX, NY = -89.32, 40.13, 220, 100
MODELS = ("spectral", "mosaiks")


def _rasters(root: Path):
    """Yield/area rasters: qualifying cells only inside the sites' inner tiles; plus decoys."""
    rng = np.random.default_rng(3)
    area = np.zeros((NY, NX), np.float32)
    yld = np.full((NY, NX), -1.0, np.float32)  # nodata
    lon_c = LON0 + (np.arange(NX) + 0.5) * RES
    lat_c = LAT1 - (np.arange(NY) + 0.5) * RES
    for _, lon, lat in SITES:
        crs, x0, y1 = site_grid(lon, lat, TILE_PX)
        glon, glat = np.meshgrid(lon_c, lat_c)
        x, y = to_crs(glon.ravel(), glat.ravel(), "EPSG:4326", crs)
        inner = ((x > x0 + 330) & (x < x0 + TILE_PX * 10 - 330) & (y < y1 - 330)
                 & (y > y1 - TILE_PX * 10 + 330)).reshape(NY, NX)
        rr, cc = np.nonzero(inner)
        pick = rng.permutation(len(rr))[:10]
        area[rr[pick[:7]], cc[pick[:7]]] = rng.uniform(2600, 9000, 7)  # kept
        area[rr[pick[7]], cc[pick[7]]] = 2500.0  # not strictly above the threshold
        area[rr[pick[8]], cc[pick[8]]] = 1200.0  # too small
        area[rr[pick[9]], cc[pick[9]]] = 5000.0  # large but no yield (nodata)
        yld[rr[pick[:9]], cc[pick[:9]]] = rng.uniform(6000, 12000, 9)
    profile = {"driver": "GTiff", "width": NX, "height": NY, "count": 1, "dtype": "float32",
               "crs": "EPSG:4326", "transform": Affine(RES, 0, LON0, 0, -RES, LAT1), "nodata": -1.0}
    paths = {}
    for name, arr in (("Y", yld), ("H", area)):
        paths[name] = root / f"spam2020_V2r0_global_{name}_MAIZ_A.tif"
        with rasterio.open(paths[name], "w", **profile) as dst:
            dst.write(arr, 1)
    return paths, yld, area, lon_c, lat_c


def _boundary(root: Path) -> Path:
    """Two 'states': the first two sites in Illinois, the third in Indiana (must be excluded)."""
    split = (SITES[1][1] + SITES[2][1]) / 2
    feats = [{"type": "Feature", "properties": {"NAME": name},
              "geometry": {"type": "Polygon", "coordinates": [[[a, 40.0], [b, 40.0], [b, 40.2], [a, 40.2],
                                                               [a, 40.0]]]}}
             for name, a, b in (("Illinois", -89.5, split), ("Indiana", split, -89.0))]
    path = root / "states.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


@pytest.fixture(scope="module")
def maize(tmp_path_factory):
    root = tmp_path_factory.mktemp("maize")
    index = generate(root / "sample", SITES, year=2019, dates_per_year=12, tile_px=TILE_PX)
    paths, yld, area, lon_c, lat_c = _rasters(root)
    cfg = yaml.safe_load((ROOT / "config/paper/maize_illinois.yaml").read_text())
    cfg["rois"] = "results/labels/maize_illinois.tsv"
    cfg["labels"].update(yield_tif=str(paths["Y"]), harvested_area_tif=str(paths["H"]),
                         boundary=str(_boundary(root)), buffer_m=150)
    cfg["provider"] = {"name": "local", "catalog": str(index), "retries": 1, "backoff_s": 0.01}
    cfg["sensors"] = {"s2": cfg["sensors"]["s2"] | {"cloudy_pct": 100}}
    cfg["models"] = {"spectral": {"sensor": "s2"}, "mosaiks": {"sensor": "s2", "options": {"num_filters": 16}}}
    cfg["benchmark"].update(block_km=0.3, n_splits=3)
    cfg["chunk_size"] = 8
    (root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    first = snakemake(root)
    table_after_first = pd.read_csv(root / cfg["rois"], sep="\t")
    listing_after_first = sorted(p.name for p in (root / "results").iterdir())
    snakemake(root)
    return root, cfg, first, table_after_first, listing_after_first, (yld, area, lon_c, lat_c)


def _data(root: Path, name: str) -> dict:
    return json.loads((root / "results/paper/maize" / f"{name}.data.json").read_text())


def test_first_call_builds_only_the_point_table(maize):
    root, cfg, first, table, listing, (yld, area, lon_c, lat_c) = maize
    assert job_counts(first.stdout + first.stderr) == {"prepare_labels": 1, "all": 1}
    assert listing == ["labels", "logs"]
    # expected points, computed from the generated arrays: area > 2500, yield > 0, inside Illinois
    split = (SITES[1][1] + SITES[2][1]) / 2
    rr, cc = np.nonzero((area > 2500) & (yld > 0) & (lon_c[None, :] < split))
    expected = pd.DataFrame({"lon": lon_c[cc], "lat": lat_c[rr], "y": yld[rr, cc] / 1000, "a": area[rr, cc]})
    assert len(table) == len(expected) == 14  # 7 per Illinois site; decoys and Indiana dropped
    np.testing.assert_allclose(table["lon"], expected["lon"], atol=1e-6)
    np.testing.assert_allclose(table["lat"], expected["lat"], atol=1e-6)
    np.testing.assert_allclose(table["maize_yield_t_ha"], expected["y"], atol=1e-4)
    np.testing.assert_allclose(table["maize_area_ha"], expected["a"], atol=0.01)
    assert (table["maize_area_ha"] > 2500).all()
    assert set(table["start"]) == {"2019-06-01"} and set(table["end"]) == {"2019-08-01"}
    assert table["roi_id"].iloc[0] == "il_maize_0000"


def test_fig4_bars_and_scatter_match_the_metrics(maize):
    root = maize[0]
    table = pd.read_csv(root / "results/labels/maize_illinois.tsv", sep="\t")
    for split, metrics, preds in (("spatial_cv", "metrics", "predictions"),
                                  ("random_80_20", "holdout_metrics", "holdout_predictions")):
        d = _data(root, f"fig4_scores_{split}")
        m = pd.read_csv(root / f"results/benchmark/{metrics}.tsv", sep="\t")
        m = m[m["estimator"] == "random_forest"]
        r2 = m[m["metric"] == "r2"].set_index("model")["mean"].sort_values(ascending=False)
        panels = d["panels"]
        assert len([p for p in panels if not p["colorbar"]]) == 2 + len(MODELS)  # top 3 of 2 models = 2
        assert panels[0]["ylabel"] == "test R\u00b2" and panels[1]["ylabel"] == "test RMSE (t/ha)"
        np.testing.assert_allclose(panels[0]["bars"], r2.to_numpy(), atol=1e-6)  # best first
        assert d["data"]["models_by_r2"] == list(r2.index)
        p = pd.read_csv(root / f"results/benchmark/{preds}.tsv", sep="\t")
        p = p[p["estimator"] == "random_forest"]
        for panel, model in zip(panels[2:4], d["data"]["top"]):
            sub = p[p["model"] == model]
            assert panel["title"].startswith(f"{model}: R\u00b2 =")
            assert panel["xlabel"] == "observed maize_yield_t_ha (t/ha)"
            np.testing.assert_allclose(panel["points"][0], sub[["y_true", "y_pred"]].to_numpy(), atol=1e-5)
            assert panel["lines"] == 1  # the 1:1 line
        n_scatter = [len(pp["points"][0]) for pp in panels[2:4]]
        if split == "spatial_cv":
            assert n_scatter == [len(table)] * 2  # every point predicted out of fold
        else:
            assert n_scatter == [round(0.2 * len(table))] * 2
            test_sets = [set(p[p["model"] == mdl]["roi_id"]) for mdl in MODELS]
            assert test_sets[0] == test_sets[1]  # both models tested on the same ROIs


def test_fig5_residuals_are_predicted_minus_observed(maize):
    root = maize[0]
    rois = pd.read_csv(root / "results/labels/maize_illinois.tsv", sep="\t").set_index("roi_id")
    d = _data(root, "fig5_maps_spatial_cv")
    p = pd.read_csv(root / "results/benchmark/predictions.tsv", sep="\t")
    p = p[p["estimator"] == "random_forest"]
    r2 = {m: 1 - ((g.y_true - g.y_pred) ** 2).sum() / ((g.y_true - g.y_true.mean()) ** 2).sum()
          for m, g in p.groupby("model")}
    best = max(r2, key=r2.get)
    assert d["data"]["best"] == best
    maps = [pp for pp in d["panels"] if not pp["colorbar"]]
    bars = [pp for pp in d["panels"] if pp["colorbar"]]
    assert len(maps) == 2 and len(bars) == 2
    sub = p[p["model"] == best].set_index("roi_id").loc[d["data"]["roi_id"]]
    for panel in maps:
        assert panel["xlabel"] == "longitude (\u00b0E)" and panel["ylabel"] == "latitude (\u00b0N)"
        np.testing.assert_allclose(panel["points"][0], rois.loc[sub.index, ["lon", "lat"]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(maps[0]["colours"][0], sub["y_pred"], atol=1e-5)
    # the residual panel's colours are predicted - observed (positive = over-prediction)
    np.testing.assert_allclose(maps[1]["colours"][0], sub["y_pred"] - sub["y_true"], atol=1e-5)
    assert "red = over-predicted" in maps[1]["title"]
    assert any("predicted \u2212 observed" in b["ylabel"] for b in bars)


def test_fig7_and_fig8_show_every_point_and_sample_imagery(maize):
    root = maize[0]
    rois = pd.read_csv(root / "results/labels/maize_illinois.tsv", sep="\t")
    d7 = _data(root, "fig7_overview")
    hist_label, hist_area, points = [p for p in d7["panels"] if not p["colorbar"]]
    assert sum(hist_label["bars"]) == len(rois) and sum(hist_area["bars"]) == len(rois)
    assert hist_area["xlabel"] == "maize_area_ha (ha)"
    np.testing.assert_allclose(points["points"][0], rois[["lon", "lat"]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(points["colours"][0], rois["maize_yield_t_ha"], atol=1e-4)
    d8 = _data(root, "fig8_imagery")
    assert len(d8["data"]["roi_id"]) == 6
    lats = rois.set_index("roi_id").loc[d8["data"]["roi_id"], "lat"].to_numpy()
    assert (np.diff(lats) >= 0).all()  # south to north
    assert all(p["images"] for p in d8["panels"]), "a Fig. 8 panel has no imagery"
    for name in ("fig4_scores_spatial_cv", "fig4_scores_random_80_20", "fig5_maps_spatial_cv",
                 "fig5_maps_random_80_20", "fig7_overview", "fig8_imagery"):
        assert (root / "results/paper/maize" / f"{name}.png").stat().st_size > 5000


def test_report_has_the_paper_figures_with_captions(maize):
    import re

    root = maize[0]
    snakemake(root, "--report", "report.html")
    page = (root / "report.html").read_text(encoding="utf-8")
    categories, results = (json.loads(re.search(rf'<script id="{n}">\s*var {n} = (.*?);\s*</script>', page,
                                                re.S).group(1)) for n in ("categories", "results"))
    paper = categories["Paper"]["Maize yield"]
    assert len(paper) == 6 and "results/paper/maize/fig5_maps_random_80_20.png" in paper
    text = {k.split("/")[-1]: re.sub(r"<[^>]+>", "", v["caption"]) for k, v in results.items()}
    assert "random 80/20 holdout" in text["fig4_scores_random_80_20.png"]
    assert "Models: spectral, mosaiks" in text["fig4_scores_spatial_cv.png"]
    assert "Residual =\npredicted - observed" in text["fig5_maps_spatial_cv.png"]
    assert "above 2500 ha" in text["fig7_overview.png"]
    assert "holdout_metrics.tsv" in " ".join(results)
