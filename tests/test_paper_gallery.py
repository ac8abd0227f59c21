"""The gallery paper config (Fig. 6): planned for every registered model; run on generated imagery."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from eoembed.collections import COLLECTIONS
from eoembed.models.registry import get_card, model_ids
from workflow_helpers import ROOT, SITES, job_counts, make_imagery, snakemake

pytestmark = pytest.mark.slow


def runnable() -> list[str]:
    """Registered models whose input can be fetched (every model but those of unknown collections)."""
    return [m for m in model_ids() if get_card(m).kind != "on_the_fly"
            or any(c in COLLECTIONS for c in get_card(m).primary.collections)]


def test_gallery_config_plans_every_runnable_model(tmp_path):
    (tmp_path / "config/paper").mkdir(parents=True)
    (tmp_path / "config/paper/gallery_rois.tsv").write_text(
        (ROOT / "config/paper/gallery_rois.tsv").read_text())
    (tmp_path / "config.yaml").write_text((ROOT / "config/paper/gallery.yaml").read_text())
    out = snakemake(tmp_path, "-n")
    counts = job_counts(out.stdout + out.stderr)
    assert counts["embed"] == len(runnable())  # one ROI, one chunk: one embed job per model
    assert counts["export_grid"] == sum("grid" in get_card(m).outputs for m in runnable())
    assert counts["gallery"] == 1
    cfg = yaml.safe_load((ROOT / "config/paper/gallery.yaml").read_text())
    assert set(cfg["models"]) == set(runnable()) and "satvision_toa" in runnable()  # on the modis-toa collection
    rois = pd.read_csv(ROOT / "config/paper/gallery_rois.tsv", sep="\t")
    assert rois.iloc[0][["lon", "lat", "buffer_m", "start", "end"]].tolist() == [
        121.5, 31.2, 2048, "2022-06-01", "2022-09-01"]


def test_gallery_runs_and_says_why_a_panel_is_empty(tmp_path):
    index = make_imagery(tmp_path / "sample", sites=SITES[:1])
    _, lon, lat = SITES[0]
    # the paper's 3-month window (3 monthly frames for presto), in the generated year
    (tmp_path / "rois.tsv").write_text(f"roi_id\tlon\tlat\tbuffer_m\tstart\tend\n"
                                       f"q\t{lon}\t{lat}\t300\t2023-06-01\t2023-09-01\n")
    cfg = yaml.safe_load((ROOT / "config/paper/gallery.yaml").read_text())
    cfg["rois"] = str(tmp_path / "rois.tsv")
    cfg["provider"] = {"name": "local", "catalog": str(index), "retries": 1, "backoff_s": 0.01}
    for sensor in cfg["sensors"].values():
        sensor["cloudy_pct"] = 100
    cfg["models"] = {"spectral": {"sensor": "s2"}, "mosaiks": {"sensor": "s2", "options": {"num_filters": 8}},
                     "presto": {"sensor": "s2_frames"},  # no weights here: its items fail
                     "clay": {"source": None}}  # a patch product: no grid output
    cfg["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    cfg["output"]["grid_cell_m"] = 40
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(tmp_path)
    d = json.loads((tmp_path / "results/paper/fig6_gallery.data.json").read_text())
    shapes = d["data"]["shapes"]
    assert list(shapes) == ["spectral", "mosaiks", "presto", "clay"]
    # 600 m ROI on a 40 m grid: 15 x 15 cells; C = the card's dims (mosaiks: 2 x num_filters)
    assert shapes["spectral"] == [get_card("spectral").dims, 15, 15]
    assert shapes["mosaiks"] == [16, 15, 15]
    assert shapes["presto"].startswith("not run: embed: ") and "weights" in shapes["presto"].lower()
    assert shapes["clay"] == "no grid output"
    panels = d["panels"]
    assert panels[0]["title"] == f"spectral\n(C, H, W) = ({get_card('spectral').dims}, 15, 15)"
    assert panels[0]["images"] == [[15, 15]] and panels[1]["images"] == [[15, 15]]
    assert panels[2]["images"] == [] and panels[2]["texts"][0].startswith("not run:")
    assert np.isfinite(panels[0]["images"][0]).all()
