"""``inspect``: scenes, valid fraction per frame and a quick-look PNG for one ROI."""

from __future__ import annotations

import argparse
import json

import matplotlib.image as mpimg
import numpy as np

from eoembed.grid import grid_for
from eoembed.inspect import add_cli, inspect_roi
from eoembed.providers.stac import StacProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import cog_server, rewrite_hrefs, s2_imagery, stac_api  # noqa: F401
from workflow_helpers import make_rois, write_config

ROI = PointBuffer(5.62, 52.55, 120)
YEAR = TemporalSpec.year(2023)
SENSOR = SensorSpec(bands=("B02", "B03", "B04"), frames=2)


def test_inspect_roi_through_stac(s2_imagery, cog_server, stac_api, tmp_path):
    items = rewrite_hrefs(s2_imagery, cog_server.url)
    provider = StacProvider(url=stac_api(items).url)
    report = inspect_roi(provider, ROI, YEAR, SENSOR, tmp_path / "q.png")
    assert [s["id"] for s in report["scenes"]] == [it["id"] for it in items]
    assert [s["cloud_cover"] for s in report["scenes"]] == [it["properties"]["eo:cloud_cover"] for it in items]
    assert [s["datetime"][:10] for s in report["scenes"]] == [it["properties"]["datetime"][:10] for it in items]
    # independent valid fraction: a ROI pixel is valid in a frame if any scene of it has a clear SCL class
    grid = grid_for(ROI, 10)
    stack = provider.fetch(ROI, YEAR, SENSOR, grid)
    inside = grid.inside_mask(ROI.geometry())
    clear = ~np.isin(stack.qa, [0, 1, 3, 8, 9, 10]) & np.isfinite(stack.data).all(axis=1)
    frames = YEAR.frame_bounds(2)
    for (a, b), got in zip(frames, report["frames"]):
        sel = [i for i, t in enumerate(stack.times) if a <= t.date() < b]
        want = (clear[sel].any(axis=0) & inside).sum() / inside.sum() if sel else 0.0
        assert got["valid_fraction"] == round(float(want), 6)
    png = mpimg.imread(report["png"])
    assert png.shape[:2] == (grid.height, grid.width) and png[..., :3].std() > 0
    assert report["provider"]["provider"] == "stac"


def test_inspect_cli(tmp_path, capsys, s2_imagery):
    rois = make_rois(s2_imagery, tmp_path / "rois.tsv", n_per_site=1, sites=[("nl_a", 5.62, 52.55)],
                     tile_px=48)
    config = write_config(tmp_path, s2_imagery, rois, models=("spectral",))
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    roi_id = open(rois).read().splitlines()[1].split("\t")[0]
    args = parser.parse_args(["inspect", "--config", str(config), "--roi", roi_id, "--png",
                              str(tmp_path / "ql.png")])
    assert args.fn(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["roi_id"] == roi_id and len(out["scenes"]) == 3 and out["png"].endswith("ql.png")
    assert 0 < out["frames"][0]["valid_fraction"] <= 1
    bad = parser.parse_args(["inspect", "--config", str(config), "--roi", "nope"])
    import pytest

    from eoembed.errors import ConfigError
    with pytest.raises(ConfigError, match="roi='nope'"):
        bad.fn(bad)
