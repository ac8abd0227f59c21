"""SSL4EO-S12 (TorchGeo 0.8.1 weights): parity, key layout, preprocessing, workflow.

1. parity: eoembed's embedder and TorchGeo's own builder (``torchgeo.models.resnet18`` ...), loaded
   with the same seeded random state dict, give the same token grid and pooled vector;
2. key layout: a plain timm-keyed state dict (as TorchGeo's files are) loads, with or without the
   classifier / final norm TorchGeo tolerates; a MoCo ``module.encoder_q.`` checkpoint, a 3-band
   stem or a Lightning-style nested checkpoint is refused with a message naming the problem;
3. preprocessing: a real 256 px Sentinel-2 patch, its central 224 px as the ROI, through the
   framework equals TorchGeo's published ``Resize(256) -> CenterCrop(224) -> Normalize`` of the
   whole patch (<= 1e-6); a 256 px ROI shows exactly where eoembed differs (no crop);
4. workflow: ``ssl4eo_s12_resnet18_moco_l2a`` runs through snakemake on the demo imagery with random
   weights written here, and exports pooled and grid outputs; the L1C model is refused on L2A.
"""

from __future__ import annotations


import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_models = pytest.importorskip("torchgeo.models")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.ssl4eo import B10_FILL_DN, L1C_BANDS, L2A_BANDS, PUBLISHED  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

ARCH_BUILDERS = {"resnet18": tg_models.resnet18, "resnet50": tg_models.resnet50,
                 "vits16": tg_models.vit_small_patch16_224}
#: every published SSL4EO-S12 weights variant -> TorchGeo's builder of its architecture
BUILDERS = {v: ARCH_BUILDERS[v.split("_")[0]] for v in PUBLISHED}


# ---------------------------------------------------------------- 1. parity with TorchGeo's model


@pytest.mark.parametrize("variant", sorted(BUILDERS))
def test_parity_with_torchgeo_builder(variant, tmp_path):
    lib = BUILDERS[variant](weights=None, in_chans=13, num_classes=0).eval()
    state = random_state(lib, seed=11)
    model = model_with(f"ssl4eo_s12_{variant}", state, tmp_path)
    model.load()
    lib.load_state_dict(state, strict=True)
    x = np.random.default_rng(3).normal(0, 0.3, (2, 13, 224, 224)).astype(np.float32)
    tokens = model.forward(ready(x, L1C_BANDS))
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x))
        pooled_lib = lib(torch.from_numpy(x)).numpy()
    if ref.ndim == 3:  # ViT: patch tokens (B, 196, 384) -> (B, 384, 14, 14)
        ref = ref[:, 1:].transpose(1, 2).reshape(2, 384, 14, 14)
        pooled_lib = ref.mean(dim=(2, 3)).numpy()  # eoembed pools patch tokens, not the CLS token
    assert tokens.features.shape == tuple(ref.shape) == (2, model.card.dims, *ref.shape[2:])
    assert np.abs(tokens.features - ref.numpy()).max() <= 1e-5
    pooled = np.stack([model.reduce_cells(f, w, 99)[:, 0, 0] for f, w in zip(tokens.features, tokens.weight)])
    scale = np.abs(pooled_lib).max()
    assert scale > 1e-3  # a real signal, not zeros
    assert np.abs(pooled - pooled_lib).max() <= 1e-5 * max(1.0, scale)


# ---------------------------------------------------------------- 2. key layout


def test_key_layout_accepts_published_files_and_refuses_others(tmp_path):
    lib = tg_models.resnet18(weights=None, in_chans=13)  # with its 1000-class fc, as some files carry
    with_fc = random_state(lib, seed=1)
    model = model_with("ssl4eo_s12_resnet18_moco", with_fc, tmp_path)
    model.load()
    np.testing.assert_array_equal(model.net.conv1.weight.detach().numpy(), with_fc["conv1.weight"].numpy())

    vit = tg_models.vit_small_patch16_224(weights=None, in_chans=13, num_classes=0)
    no_norm = random_state(vit, seed=2, drop=("norm.weight", "norm.bias"))  # MAE encoder files lack it
    model = model_with("ssl4eo_s12_vits16_mae", no_norm, tmp_path)
    model.load()
    assert torch.equal(model.net.norm.weight.detach(), torch.ones(384))  # TorchGeo leaves it at init too

    moco = {f"module.encoder_q.{k}": v for k, v in with_fc.items()}  # the original SSL4EO release layout
    with pytest.raises(WeightsError, match=r"key layout.*missing e\.g\. \['bn1\.bias'.*module\.encoder_q\."):
        model_with("ssl4eo_s12_resnet18_moco", moco, tmp_path).load()
    rgb = dict(with_fc, **{"conv1.weight": torch.zeros(64, 3, 7, 7)})
    with pytest.raises(WeightsError, match=r"conv1\.weight: \(64, 3, 7, 7\) != \(64, 13, 7, 7\)"):
        model_with("ssl4eo_s12_resnet18_moco", rgb, tmp_path).load()
    with pytest.raises(WeightsError, match="not a plain state dict.*nested mapping"):
        model_with("ssl4eo_s12_resnet18_moco", {"state_dict": with_fc, "epoch": torch.tensor(1)}, tmp_path).load()


# ---------------------------------------------------------------- 3. preprocessing vs TorchGeo's transform


@pytest.mark.shared
@pytest.mark.parametrize("variant,weights", [("resnet18_moco", tg_models.ResNet18_Weights.SENTINEL2_ALL_MOCO),
                                             ("resnet50_softcon", tg_models.ResNet50_Weights.SENTINEL2_ALL_SOFTCON),
                                             ("vits16_mae", tg_models.ViTSmall16_Weights.SENTINEL2_ALL_MAE)])
@pytest.mark.parametrize("level", ["l1c", "l2a"])
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch(variant, weights, level):
    dn12, lon, lat = patch_dn()
    if level == "l1c":  # real 12 bands, B10 made up (no real L1C patch here); the collection is L1C
        b10 = np.random.default_rng(0).integers(0, 200, (1, 256, 256)).astype(np.float32)
        model_id, scene = f"ssl4eo_s12_{variant}", np.concatenate([dn12[:10], b10, dn12[10:]])
        comp_bands, roi_dn = L1C_BANDS, scene
    else:  # L2A: the declared fill of B10
        model_id = f"ssl4eo_s12_{variant}_l2a"
        scene = np.concatenate([dn12[:10], np.full((1, 256, 256), B10_FILL_DN, np.float32), dn12[10:]])
        comp_bands, roi_dn = L2A_BANDS, dn12
    model = create(model_id)
    assert model.inputs()[0].collections == ((f"sentinel-2-{level}",))
    published = weights.transforms(torch.from_numpy(scene[None].copy())).numpy()  # (1, 13, 224, 224)
    # the ROI = the central 224 px of the 256 px scene the published transform crops to
    got = framework_input(model, composite(roi_dn[:, 16:240, 16:240], comp_bands, lon, lat, f"sentinel-2-{level}"))
    assert got.shape == published.shape == (1, 13, 224, 224)
    assert np.abs(got - published).max() <= 1e-6
    # where eoembed differs: a 256 px ROI is resized whole (torchvision Resize(224)), not centre-cropped
    whole = framework_input(model, composite(roi_dn, comp_bands, lon, lat, f"sentinel-2-{level}"))
    from torchvision.transforms import v2

    resized = weights.transforms[2](v2.Resize((224, 224))(torch.from_numpy(scene[None].copy()))).numpy()
    assert np.abs(whole - resized).max() <= 1e-5
    assert np.abs(whole - published).max() > 0.01


# ---------------------------------------------------------------- 4. workflow


def test_l1c_models_refuse_l2a_sensors():
    from eoembed.models.inputs import check_sensor
    from eoembed.specs import SensorSpec

    sensor = SensorSpec(bands=L2A_BANDS, scale_m=10)
    problems = check_sensor("ssl4eo_s12_resnet50_moco", get_card("ssl4eo_s12_resnet50_moco").inputs[0], "s2", sensor)
    assert len(problems) == 1 and "collection='sentinel-2-l2a' is not accepted; allowed ['sentinel-2-l1c']" in problems[0]
    assert check_sensor("ssl4eo_s12_resnet50_moco_l2a", get_card("ssl4eo_s12_resnet50_moco_l2a").inputs[0],
                        "s2", sensor) == []


@pytest.mark.slow
def test_workflow_runs_ssl4eo_on_demo_imagery(tmp_path):
    import geopandas as gpd
    import pandas as pd

    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    mid = "ssl4eo_s12_resnet18_moco_l2a"
    name = get_card(mid).weights[0].name
    path, sha = write(random_state(tg_models.resnet18(weights=None, in_chans=13), seed=5), tmp_path / name)
    config = write_config(work, index, rois, models=(mid,), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {mid: {"sensor": "s2", "weights": {name: path}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / f"results/export/{mid}/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    assert emb.shape == (len(pd.read_csv(rois, sep="\t")), 512) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == len(emb), "two ROIs embedded identically"
    from eoembed.export_grid import open_grid
    from zoo_helpers import roi_grid_path

    first = sorted(gdf["roi_id"])[0]
    grid = open_grid(roi_grid_path(work, mid, first), first)
    values = grid["embedding"].values  # (512, y, x): 7 x 7 tokens of ~46 m pooled into ~80 m cells
    assert grid["embedding"].dims[1:] == ("y", "x") and values.shape[0] == 512
    assert np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
    assert 40.0 <= abs(float(np.diff(grid["x"].values)[0])) <= 120.0
    assert np.abs(values - values[:, :1, :1]).max() > 1e-4  # cells differ: a real grid, not a broadcast
