"""DINOv3 ViT-L/16 SAT-493M (timm) on Sentinel-2 true colour: the four zoo tests.

1. parity: eoembed's embedder and ``timm.create_model('vit_large_patch16_dinov3.sat493m')``, loaded
   with the same seeded random state dict, give the same patch tokens (a small non-square input: the
   network uses RoPE, so any multiple of 16 px runs);
2. key layout: timm's safetensors export (timm key names) loads; Meta's original names or a prefixed
   state dict are refused with the keys named;
3. preprocessing: a real 256 px patch through the framework equals timm's own eval transform for these
   weights (SAT-493M mean/std, 256 px) applied to the same pixels after the declared stretch DN / 3000;
4. workflow: dinov3_sat_vitl16 runs through snakemake on the demo imagery (random weights).
ViT-L is built a few times on the CPU (~10 s each); the random weights are written once per module.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.rgb import FULL_SCALE_DN, RGB_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, patch_dn, random_state, ready, write  # noqa: E402

MID = "dinov3_sat_vitl16"
NAME = get_card(MID).weights[0].name


def timm_dinov3():
    return timm.create_model("vit_large_patch16_dinov3.sat493m", pretrained=False,
                             dynamic_img_size=True).eval()


def timm_data_config() -> dict:
    """timm's data config of the .sat493m weights (the network on the meta device: no allocation)."""
    with torch.device("meta"):
        net = timm.create_model("vit_large_patch16_dinov3.sat493m", pretrained=False)
    return timm.data.resolve_data_config({}, model=net)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """timm's network with seeded random weights, and those weights in the published container."""
    lib = timm_dinov3()
    state = random_state(lib, seed=13)
    lib.load_state_dict(state, strict=True)
    folder = tmp_path_factory.mktemp("dinov3")
    path, sha = write(state, folder / NAME)
    yield lib, path, sha
    shutil.rmtree(folder, ignore_errors=True)  # 1.2 GB: not kept until the session ends


def model_at(path: str, sha: str):
    return create(MID, weights_paths={NAME: path}, weights_pins={NAME: sha})


# ---------------------------------------------------------------- 1. parity + 2. the published layout


def test_parity_with_timm_on_the_published_safetensors(seeded):
    lib, path, sha = seeded
    assert path.endswith(".safetensors")  # timm's Hugging Face export, loaded as published
    model = model_at(path, sha)
    model.load()
    assert torch.equal(model.net.reg_token.detach(), lib.reg_token.detach())  # 4 register tokens
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 64, 96)).astype(np.float32)
    tokens = model.forward(ready(x, RGB_BANDS))
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x))
    assert ref.shape == (1, 5 + 4 * 6, 1024) and lib.num_prefix_tokens == 5  # class + 4 registers
    ref = ref[:, 5:].transpose(1, 2).reshape(1, 1024, 4, 6).numpy()
    assert tokens.features.shape == ref.shape
    assert np.abs(ref).max() > 1e-3 and ref.std(axis=(2, 3)).mean() > 1e-3  # tokens differ by position
    assert np.abs(tokens.features - ref).max() <= 1e-5


def test_other_key_layouts_are_refused(seeded, tmp_path):
    from safetensors.torch import load_file

    _, path, _ = seeded
    state = load_file(path)
    meta_names = {k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma"): v
                  for k, v in state.items()}  # Meta's original checkpoint names
    p, sha = write(meta_names, tmp_path / NAME)
    with pytest.raises(WeightsError, match=r"published key layout.*missing e\.g\. \['blocks\.0\.gamma_1'.*"
                                           r"unexpected e\.g\. \['blocks\.0\.ls1\.gamma'"):
        model_at(p, sha).load()
    prefixed = {f"model.{k}": v for k, v in state.items()}
    p, sha = write(prefixed, tmp_path / NAME)
    with pytest.raises(WeightsError, match=r"318 missing.*318 unexpected e\.g\. \['model\.blocks\.0\."):
        model_at(p, sha).load()


def test_card_declares_the_published_normalisation_and_licence():
    card = get_card(MID)
    cfg = timm_data_config()
    spec = card.inputs[0]
    assert cfg["input_size"] == (3, spec.space.size, spec.space.size) == (3, 256, 256)
    np.testing.assert_allclose([n.shift for n in spec.norm], np.array(cfg["mean"]) * FULL_SCALE_DN)
    np.testing.assert_allclose([n.div for n in spec.norm], np.array(cfg["std"]) * FULL_SCALE_DN)
    assert card.weights[0].url == ("https://huggingface.co/timm/vit_large_patch16_dinov3.sat493m/resolve/"
                                   "main/model.safetensors")
    assert card.licence.startswith("DINOv3 License") and "not an open-source" in card.licence


# ---------------------------------------------------------------- 3. preprocessing


@pytest.mark.shared
def test_preprocessing_equals_timm_transform_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    got = framework_input(create(MID), composite(dn12, bands, lon, lat, "sentinel-2-l2a"))
    rgb = np.stack([dn12[bands.index(b)] for b in RGB_BANDS]) / FULL_SCALE_DN  # the declared stretch
    cfg = timm_data_config()
    published = timm.data.create_transform(**cfg)(torch.from_numpy(rgb.astype(np.float32))).numpy()
    assert got.shape == (1, *published.shape) == (1, 3, 256, 256)
    assert rgb.max() > 0.2  # real reflectances, not a dark or empty patch
    assert np.abs(got[0] - published).max() <= 1e-6


# ---------------------------------------------------------------- 4. workflow


@pytest.mark.slow
def test_workflow_runs_dinov3_on_demo_imagery(seeded, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config
    from zoo_helpers import roi_grid_path

    _, path, sha = seeded
    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=1, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=(MID,), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"][MID] = {"sensor": "s2", "weights": {NAME: path}, "weights_sha256": {NAME: sha}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "model", "status", "error"]]
    gdf = gpd.read_parquet(work / f"results/export/{MID}/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 1024) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    roi = sorted(gdf["roi_id"])[0]
    values = open_grid(roi_grid_path(work, MID, roi), roi)["embedding"].values
    assert values.shape[0] == 1024 and values.shape[1] * values.shape[2] > 1 and np.isfinite(values).all()
