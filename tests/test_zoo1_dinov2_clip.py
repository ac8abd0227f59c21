"""DINOv2 (timm) and CLIP ViT-B/32 (open_clip) on Sentinel-2 true colour: the four zoo tests.

1. parity: eoembed's embedder and the library's own model (``timm.create_model`` with the
   ``.lvd142m`` pretrained config; ``open_clip.create_model('ViT-B-32', force_quick_gelu=True)``),
   loaded with the same seeded random state dict, give the same tokens / image embedding;
2. key layout: the published container (timm safetensors; open_clip's plain state dict of the whole
   CLIP model) loads; a prefixed or an image-tower-only checkpoint is refused with the keys named;
3. preprocessing: a real patch's central 224 px through the framework equals the library's own
   eval transform (timm ``create_transform`` / open_clip ``image_transform``) applied to the same
   pixels after the declared stretch DN / 3000 (<= 1e-6);
4. workflow: dinov2_small and clip_vitb32 run through snakemake on the demo imagery (random weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.rgb import FULL_SCALE_DN, RGB_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402


def timm_dinov2(size: str):
    name = {"small": "vit_small_patch14_dinov2.lvd142m", "base": "vit_base_patch14_dinov2.lvd142m"}[size]
    return timm.create_model(name, pretrained=False, dynamic_img_size=True).eval()


def openai_clip():
    return open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True).eval()


def remote_clip():
    """RemoteCLIP as its README builds it: ``create_model_and_transforms('ViT-B-32')`` (GELU)."""
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    return model.eval(), preprocess


# ---------------------------------------------------------------- 1. parity


@pytest.mark.parametrize("size", ["small", "base"])
def test_dinov2_parity_with_timm(size, tmp_path):
    lib = timm_dinov2(size)
    state = random_state(lib, seed=7)
    model = model_with(f"dinov2_{size}", state, tmp_path)
    model.load()
    lib.load_state_dict(state, strict=True)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    tokens = model.forward(ready(x, RGB_BANDS))
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x))[:, 1:]  # (2, 256, D) patch tokens
    d = get_card(f"dinov2_{size}").dims
    ref = ref.transpose(1, 2).reshape(2, d, 16, 16).numpy()
    assert tokens.features.shape == ref.shape
    assert np.abs(ref).max() > 1e-3
    assert np.abs(tokens.features - ref).max() <= 1e-5


def test_clip_parity_with_open_clip(tmp_path):
    lib = openai_clip()
    state = random_state(lib, seed=8)
    model = model_with("clip_vitb32", state, tmp_path)
    model.load()
    lib.load_state_dict(state, strict=True)
    x = np.random.default_rng(2).normal(0, 1, (3, 3, 224, 224)).astype(np.float32)
    tokens = model.forward(ready(x, RGB_BANDS))
    with torch.inference_mode():
        ref = lib.encode_image(torch.from_numpy(x)).numpy()
    assert tokens.features.shape == (3, 512, 1, 1)
    pooled = np.stack([model.reduce_cells(f, w, 1)[:, 0, 0] for f, w in zip(tokens.features, tokens.weight)])
    assert np.abs(ref).max() > 1e-3
    assert np.abs(pooled - ref).max() <= 1e-5


def test_remoteclip_parity_with_open_clip_and_not_the_quickgelu_net(tmp_path):
    lib, _ = remote_clip()
    state = random_state(lib, seed=18)
    model = model_with("remoteclip", state, tmp_path)
    model.load()  # the whole-model state dict RemoteCLIP publishes loads strictly
    lib.load_state_dict(state, strict=True)
    x = np.random.default_rng(12).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    got = model.forward(ready(x, RGB_BANDS)).features[:, :, 0, 0]
    with torch.inference_mode():
        ref = lib.encode_image(torch.from_numpy(x)).numpy()
        quick = openai_clip()
        quick.load_state_dict(state, strict=True)
        ref_quick = quick.encode_image(torch.from_numpy(x)).numpy()
    assert np.abs(ref).max() > 1e-3
    assert np.abs(got - ref).max() <= 1e-5
    # the activation matters (GELU, as RemoteCLIP loads it): QuickGELU misses by 70x the parity tolerance
    assert np.abs(ref_quick - ref).max() > 50 * 1e-5


# ---------------------------------------------------------------- 2. key layout


def test_dinov2_key_layout(tmp_path):
    state = random_state(timm_dinov2("small"), seed=3)
    name = get_card("dinov2_small").weights[0].name
    assert name.endswith(".safetensors")  # the published container (zoo_helpers.write uses safetensors)
    model = model_with("dinov2_small", state, tmp_path)
    model.load()
    assert torch.equal(model.net.pos_embed.detach(), state["pos_embed"])
    assert tuple(state["pos_embed"].shape) == (1, 1 + 37 * 37, 384)  # the 518 px grid of the release
    meta = {k.replace("blocks.", "backbone.blocks."): v for k, v in state.items()}
    with pytest.raises(WeightsError, match=r"key layout.*unexpected e\.g\. \['backbone\.blocks\."):
        model_with("dinov2_small", meta, tmp_path).load()


def test_clip_key_layout(tmp_path):
    state = random_state(openai_clip(), seed=4)
    model_with("clip_vitb32", state, tmp_path).load()  # the whole CLIP state dict, as published
    visual_only = {k: v for k, v in state.items() if k.startswith("visual.")}
    with pytest.raises(WeightsError, match=r"key layout.*missing e\.g\. \['ln_final\.bias'"):
        model_with("clip_vitb32", visual_only, tmp_path).load()
    prefixed = {f"module.{k}": v for k, v in state.items()}
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['module\."):
        model_with("clip_vitb32", prefixed, tmp_path).load()


# ---------------------------------------------------------------- 3. preprocessing


def library_transform(model_id: str):
    if model_id == "clip_vitb32":
        return open_clip.image_transform(224, is_train=False)
    if model_id == "remoteclip":
        return remote_clip()[1]  # the preprocess RemoteCLIP's README uses
    cfg = timm.data.resolve_data_config({}, model=timm_dinov2(get_card(model_id).variant))
    return timm.data.create_transform(**{**cfg, "input_size": (3, 224, 224)})


@pytest.mark.shared
@pytest.mark.parametrize("model_id", ["dinov2_small", "clip_vitb32", "remoteclip"])
def test_preprocessing_equals_library_transform_on_a_real_patch(model_id):
    dn12, lon, lat = patch_dn()
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    roi = dn12[:, 16:240, 16:240]
    got = framework_input(create(model_id), composite(roi, bands, lon, lat, "sentinel-2-l2a"))
    rgb = np.stack([roi[bands.index(b)] for b in RGB_BANDS]) / FULL_SCALE_DN  # the declared stretch
    published = library_transform(model_id)(torch.from_numpy(rgb.astype(np.float32))).numpy()
    assert got.shape == (1, *published.shape) == (1, 3, 224, 224)
    assert rgb.max() > 0.2  # real reflectances, not a dark or empty patch
    assert np.abs(got[0] - published).max() <= 1e-6


# ---------------------------------------------------------------- 4. workflow


@pytest.mark.slow
def test_workflow_runs_dinov2_and_clip_on_demo_imagery(tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from zoo_helpers import roi_grid_path
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=("dinov2_small", "clip_vitb32"), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    for mid, net in (("dinov2_small", timm_dinov2("small")), ("clip_vitb32", openai_clip())):
        name = get_card(mid).weights[0].name
        path, sha = write(random_state(net, seed=9), tmp_path / name)  # safetensors / torch.save
        doc["models"][mid] = {"sensor": "s2", "weights": {name: path}, "weights_sha256": {name: sha}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "model", "status", "error"]]
    n = len(pd.read_csv(rois, sep="\t"))
    for mid, dims in (("dinov2_small", 384), ("clip_vitb32", 512)):
        gdf = gpd.read_parquet(work / f"results/export/{mid}/embeddings.parquet")
        emb = np.stack(gdf["embedding"].to_numpy())
        assert emb.shape == (n, dims) and np.isfinite(emb).all()
        assert len({e.tobytes() for e in emb}) == n, f"{mid}: two ROIs embedded identically"
        grid = open_grid(roi_grid_path(work, mid, sorted(gdf["roi_id"])[0]), sorted(gdf["roi_id"])[0])
        values = grid["embedding"].values
        assert values.shape[0] == dims and np.isfinite(values).all()
        if mid == "dinov2_small":  # 16 x 16 tokens of 20 m pooled into ~80 m cells
            assert values.shape[1] * values.shape[2] > 1
        else:  # one token per resized ROI: the grid is that single embedding
            assert values.shape[1:] == (1, 1)
            np.testing.assert_allclose(values[:, 0, 0], emb[list(gdf["roi_id"]).index(sorted(gdf["roi_id"])[0])],
                                       rtol=1e-5, atol=1e-6)
