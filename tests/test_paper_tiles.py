"""The tile-mode gallery (Fig. 9, config/paper/tiles.yaml) against the resize gallery (Fig. 6) on
generated imagery: a fixed-size model (THOR tiny, 288 px, 8-px patches; random weights written by
the test in the released layout) sees a 3.2 km ROI as 2 x 2 tiles at 10 m, so its panel has
ceil(320 / 8) = 40 tokens per side of 80 m, against 36 tokens of 88.9 m when the ROI is resized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_workflow_zoo import _random_weights
from workflow_helpers import ROOT, SITES, make_imagery, snakemake

from eoembed.export_grid import open_grid
from eoembed.models.registry import get_card

pytestmark = pytest.mark.slow
MODEL = "thor_tiny"


def _run(tmp_path: Path, name: str, index: Path, weights: Path, sha: str) -> tuple[dict, object]:
    work = tmp_path / name
    work.mkdir()
    _, lon, lat = SITES[0]
    (work / "rois.tsv").write_text(f"roi_id\tlon\tlat\tbuffer_m\tyear\nq\t{lon}\t{lat}\t1600\t2023\n")
    cfg = yaml.safe_load((ROOT / f"config/paper/{name}.yaml").read_text())
    cfg["rois"] = str(work / "rois.tsv")
    cfg["provider"] = {"name": "local", "catalog": str(index), "retries": 1, "backoff_s": 0.01}
    cfg["sensors"]["s2"]["cloudy_pct"] = 100
    cfg["models"] = {"spectral": {"sensor": "s2"},
                     MODEL: {"sensor": "s2", "weights": {weights.name: str(weights)},
                             "weights_sha256": {weights.name: sha}}}
    cfg["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(work)
    fig = cfg["paper"]["gallery"]["name"]
    data = json.loads((work / f"results/paper/{fig}.data.json").read_text())
    grids = list((work / f"results/export/{MODEL}/grid").glob("*.nc"))
    assert len(grids) == 1  # one ROI, one chunk
    return data, open_grid(grids[0], "q")


def test_tile_gallery_stitches_native_tiles_and_resize_gallery_does_not(tmp_path: Path) -> None:
    index = make_imagery(tmp_path / "sample", sites=SITES[:1], tile_px=408, dates=2)
    weights = tmp_path / get_card(MODEL).weights[0].name
    sha = _random_weights(weights)
    tiles, tgrid = _run(tmp_path, "tiles", index, weights, sha)
    resized, rgrid = _run(tmp_path, "gallery", index, weights, sha)
    dims = get_card(MODEL).dims
    assert tiles["data"]["shapes"][MODEL] == [dims, 40, 40]
    assert resized["data"]["shapes"][MODEL] == [dims, 36, 36]
    # spectral takes any size: the same panel in both figures
    assert tiles["data"]["shapes"]["spectral"] == resized["data"]["shapes"]["spectral"]
    titles = [p["title"] for p in tiles["panels"]]
    assert f"{MODEL}\n(C, H, W) = ({dims}, 40, 40)" in titles
    # georeferenced: tile tokens are 80 m cells starting at the ROI's corner; resize spreads 36 over 3.2 km
    assert float(tgrid["x"][1] - tgrid["x"][0]) == pytest.approx(80.0)
    assert float(rgrid["x"][1] - rgrid["x"][0]) == pytest.approx(3200 / 36)
    assert float(tgrid["x"][0]) == pytest.approx(float(rgrid["x"][0]) - 3200 / 72 + 40)
