"""Scale-MAE ViT-L/16 (TorchGeo 0.8.1, non-commercial weights): the four zoo tests.

One seeded random state dict in the published layout (timm ViT-L/16 keys, no classifier) is written
once (~1.2 GB) and shared by the parity, key-layout and workflow tests.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_smae = pytest.importorskip("torchgeo.models.scale_mae")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.rgb import FULL_SCALE_DN, RGB_BANDS  # noqa: E402
from eoembed.models.scalemae import OPTIONAL_KEYS  # noqa: E402
from eoembed.models.ssl4eo import check_keys  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

NAME = get_card("scalemae_large").weights[0].name


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(state, path, sha256) of a random Scale-MAE checkpoint without head / fc_norm (as published)."""
    lib = tg_smae.scalemae_large_patch16(weights=None)  # TorchGeo's default: a 1000-class head
    state = random_state(lib, seed=31, drop=("head.weight", "head.bias"))
    folder = tmp_path_factory.mktemp("smae")
    path, sha = write(state, folder / NAME)
    yield state, path, sha
    shutil.rmtree(folder, ignore_errors=True)  # 1.2 GB: not kept until the session ends


def test_parity_with_torchgeo_scalemae(published):
    state, path, sha = published
    lib = tg_smae.scalemae_large_patch16(weights=None, num_classes=0, res=10.0).eval()
    lib.load_state_dict(state, strict=True)
    model = create("scalemae_large", weights_paths={NAME: path}, weights_pins={NAME: sha})
    model.load()
    x = np.random.default_rng(4).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    batch = ready(x, RGB_BANDS)  # gsd_m = 10.0
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x))[:, 1:].transpose(1, 2).reshape(2, 1024, 14, 14).numpy()
    got = model.forward(batch).features
    assert got.shape == ref.shape and np.abs(ref).max() > 1e-3
    assert np.abs(got - ref).max() <= 1e-5
    batch.gsd_m = 40.0  # the GSD reaches the position embedding
    assert np.abs(model.forward(batch).features - ref).max() > 1e-3


def test_key_layout(published, tmp_path):
    state, path, sha = published
    model = create("scalemae_large", weights_paths={NAME: path}, weights_pins={NAME: sha})
    model.load()  # the published layout (no head) loads
    assert torch.equal(model.net.blocks[23].mlp.fc2.weight.detach(), state["blocks.23.mlp.fc2.weight"])
    with torch.device("meta"):
        expected = create("scalemae_large").build().state_dict()
    meta = {k: torch.empty(v.shape, device="meta") for k, v in state.items()}
    check_keys(expected, {k: v for k, v in meta.items() if k not in OPTIONAL_KEYS}, OPTIONAL_KEYS, "smae")
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['model\.blocks\.0\."):
        check_keys(expected, {f"model.{k}": v for k, v in meta.items()}, OPTIONAL_KEYS, "smae")
    stem = {k: v for k, v in state.items() if k.startswith("patch_embed.")}  # a real, truncated file
    with pytest.raises(WeightsError, match=r"key layout.*missing e\.g\. \['blocks\.0\."):
        model_with("scalemae_large", stem, tmp_path).load()


@pytest.mark.shared
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    roi = dn12[:, 16:240, 16:240]
    got = framework_input(create("scalemae_large"), composite(roi, bands, lon, lat, "sentinel-2-l2a"))
    eight_bit = np.stack([roi[bands.index(b)] for b in RGB_BANDS]) / FULL_SCALE_DN * 255.0  # stretch, unclipped
    t = tg_smae.ScaleMAELarge16_Weights.FMOW_RGB.transforms
    published = t(torch.from_numpy(eight_bit[None].astype(np.float32))).numpy()
    assert got.shape == published.shape == (1, 3, 224, 224)
    assert np.abs(got - published).max() <= 1e-6


@pytest.mark.slow
def test_workflow_runs_scalemae_on_demo_imagery(published, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from zoo_helpers import roi_grid_path
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    _, path, sha = published
    sites = SITES[:1]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=("scalemae_large",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"scalemae_large": {"sensor": "s2", "weights": {NAME: path}, "weights_sha256": {NAME: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/scalemae_large/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 1024) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    values = open_grid(roi_grid_path(work, "scalemae_large", sorted(gdf["roi_id"])[0]), sorted(gdf["roi_id"])[0])["embedding"].values
    assert values.shape[0] == 1024 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
