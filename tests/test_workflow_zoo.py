"""A research-zoo model (THOR tiny) through the real Snakemake workflow on the demo imagery, with
random weights in the released file layout written here (pinned by sha256 in the config):
pooled GeoParquet and grid NetCDF outputs, distinct finite embeddings, the embed job tagged with a
GPU when the model's device is cuda, and the family's conda env (envs/zoo.yaml)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import ROOT, SITES, make_imagery, make_rois, snakemake, write_config

from eoembed.export import read_geoparquet_metadata
from eoembed.export_grid import open_grid
from eoembed.models.nets import thor
from eoembed.models.registry import get_card

MODEL = "thor_tiny"


def _random_weights(path: Path) -> str:
    torch.manual_seed(0)
    net = thor.build({**thor.PUBLISHED["tiny"], **thor.PUBLISHED_COMMON})
    # the released pretrain file: encoder under 'encoder.' plus decoder parts (dropped on load)
    sd = {"encoder." + k: v for k, v in net.state_dict().items()}
    sd["encoder.decoder_embed.weight"] = torch.ones(2, 2)
    torch.save(sd, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_thor_tiny_runs_through_snakemake_with_pooled_and_grid_outputs(tmp_path: Path) -> None:
    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    name = get_card(MODEL).weights[0].name
    sha = _random_weights(tmp_path / name)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=(MODEL,), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {MODEL: {"sensor": "s2", "weights": {name: str(tmp_path / name)},
                             "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    n = len(pd.read_csv(rois, sep="\t"))
    assert len(manifest) == n and set(manifest["status"]) == {"ok"}, manifest[["roi_id", "status", "error"]]
    path = work / f"results/export/{MODEL}/embeddings.parquet"
    gdf = gpd.read_parquet(path)
    emb = np.stack(gdf["embedding"].to_numpy()).astype(np.float64)
    assert emb.shape == (n, 192) and np.isfinite(emb).all()
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)[np.triu_indices(n, 1)]
    assert dist.min() > 1e-4, f"two ROIs embed identically: {dist.min()}"
    meta = read_geoparquet_metadata(path)
    assert meta["model"] == MODEL and meta["weights_sha256"] == {name: sha}
    roi = pd.read_csv(rois, sep="\t")["roi_id"].iloc[0]
    grid = open_grid(work / f"results/export/{MODEL}/grid/c00000.nc", roi)
    # a 320 m ROI resized to THOR's 288 px: 36 tokens of 8.9 m, grouped into 80 m cells (9 tokens)
    assert grid["embedding"].shape == (192, 4, 4) and np.isfinite(grid["embedding"].values).all()
    assert np.diff(grid["x"].values)[0] == pytest.approx(80.0)
    grid.close()

    # the embed job asks for a GPU when the model runs on cuda, and uses the family's env
    doc["models"][MODEL]["device"] = "cuda"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    dry = snakemake(work, "--dry-run", "--forceall", "--printshellcmds")
    embed_jobs = [b for b in dry.stdout.split("rule ")[1:] if b.startswith("embed:")]
    assert embed_jobs and all("gpu=1" in b for b in embed_jobs), dry.stdout[-3000:]
    assert get_card(MODEL).family == "zoo" and (ROOT / "envs" / "zoo.yaml").is_file()
