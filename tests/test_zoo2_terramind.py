"""TerraMind 1.0 (TerraTorch 1.2.1): parity, key layout, preprocessing, workflow.

1. parity: eoembed's embedder and TerraTorch's own loader (``terramind_v1_<size>(modalities=["S2L2A"],
   ckpt_path=<file>)``, the path TerraTorch users take), given the same published-layout file with
   seeded random weights, give the same tokens (tiny at 224 px, small at 64 px);
2. key layout: the published container (the whole encoder-decoder state dict, all input modalities,
   built by TerraTorch's own ``TerraMind`` class) loads; a prefixed (Lightning-style) file and a file
   of another size are refused with the keys named; base / large layouts are checked on meta tensors;
3. preprocessing: a real Sentinel-2 L2A patch through the framework equals TerraTorch's published v1
   z-score (``v1_pretraining_mean/std["untok_sen2l2a@224"]``) in ``PRETRAINED_BANDS`` order; gaps -> 0;
4. workflow: terramind_v1_tiny runs through snakemake on generated S2 imagery (random weights).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tr = pytest.importorskip("terratorch.models.backbones.terramind.model.terramind_register")

from eoembed.collections import S2_BANDS  # noqa: E402
from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from zoo_helpers import model_with, patch_dn, ready, write  # noqa: E402

MOD = "untok_sen2l2a@224"
#: ESA's Sentinel-2 band designations of TerraMind's (TerraTorch's) S2 L2A band names
ESA = {"COASTAL_AEROSOL": "B01", "BLUE": "B02", "GREEN": "B03", "RED": "B04", "RED_EDGE_1": "B05",
       "RED_EDGE_2": "B06", "RED_EDGE_3": "B07", "NIR_BROAD": "B08", "NIR_NARROW": "B8A",
       "WATER_VAPOR": "B09", "SWIR_1": "B11", "SWIR_2": "B12"}


@contextmanager
def parameters_on_meta():
    """Build networks with their parameters on the meta device (what accelerate's init_empty_weights
    does): shapes without memory; buffers and plain tensors (TerraMind's drop-path schedule calls
    ``.item()``) stay on the CPU, which a plain ``torch.device("meta")`` context does not allow."""
    original = torch.nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None:
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def full_model(size: str):
    """TerraTorch's whole TerraMind 1.0 encoder-decoder of ``size`` (all raw input modalities, the
    tokenised output modalities): the network the published file is the state dict of."""
    from terratorch.models.backbones.terramind.model.modality_info import MODALITY_INFO
    from terratorch.models.backbones.terramind.model.terramind import (
        TerraMind, build_modality_embeddings, build_output_modality_embeddings)

    dim = get_card(f"terramind_v1_{size}").dims
    enc, _ = build_modality_embeddings(MODALITY_INFO, ["S2L2A", "S2L1C", "RGB", "S1GRD", "S1RTC", "DEM"],
                                       img_size=224, dim=dim, patch_size=16)
    dec, _ = build_output_modality_embeddings(MODALITY_INFO,
                                              ["S2L2A", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI"],
                                              img_size=224, dim=dim, patch_size=16)
    # terratorch 1.2.1's tiny/small encdec builders pass pretrained_bands on to TerraMind(), which takes none
    original, tr.TerraMind = tr.TerraMind, (lambda pretrained_bands=None, **kw: TerraMind(**kw))
    try:
        return getattr(tr, f"terramind_v1_{size}_encdec")(encoder_embeddings=enc, decoder_embeddings=dec,
                                                          modality_info=MODALITY_INFO)
    finally:
        tr.TerraMind = original


def published_state(size: str, seed: int) -> dict:
    """Seeded random parameters in the published layout; the fixed buffers (sin-cos tables, the zero
    biases of the bias-free norms) keep the library's values, as a trained model's do."""
    net = full_model(size)
    g = torch.Generator().manual_seed(seed)
    params = {k for k, _ in net.named_parameters()}
    return {k: torch.randn(v.shape, generator=g) * (0.02 if v.ndim > 1 else 0.1) if k in params
            else v.clone() for k, v in net.state_dict().items()}


def library_tokens(size: str, path: str, x: np.ndarray) -> np.ndarray:
    """TerraTorch loading the file itself; its last (normed) layer as a (B, D, h, w) grid."""
    lib = getattr(tr, f"terramind_v1_{size}")(modalities=["S2L2A"], pretrained=False, ckpt_path=path).eval()
    with torch.inference_mode():
        out = lib(torch.from_numpy(x))[-1]
    b, _, h, w = x.shape
    return out.reshape(b, h // 16, w // 16, -1).permute(0, 3, 1, 2).numpy()


@pytest.mark.parametrize("size,px", [("tiny", 224), ("small", 64)])
def test_parity_with_terratorch_loading_the_same_file(size, px, tmp_path):
    model_id = f"terramind_v1_{size}"
    name = get_card(model_id).weights[0].name
    path, sha = write(published_state(size, seed=11), tmp_path / name)
    x = np.random.default_rng(5).normal(0, 1, (2, 12, px, px)).astype(np.float32)
    model = create(model_id, weights_paths={name: path}, weights_pins={name: sha})
    model.load()
    got = model.forward(ready(x, S2_BANDS)).features
    want = library_tokens(size, path, x)
    assert got.shape == want.shape == (2, get_card(model_id).dims, px // 16, px // 16)
    assert np.abs(want).max() > 1e-3 and np.abs(want[0] - want[1]).max() > 1e-3
    assert np.abs(got - want).max() <= 1e-5
    # the file's weights really are what both ran: a fresh TerraTorch net gives something else
    fresh = getattr(tr, f"terramind_v1_{size}")(modalities=["S2L2A"], pretrained=False).eval()
    with torch.inference_mode():
        other = fresh(torch.from_numpy(x))[-1].numpy()
    assert np.abs(other.reshape(2, px // 16, px // 16, -1).transpose(0, 3, 1, 2) - want).max() > 1e-2
    # the band order reaches the network: swapping blue and red changes the tokens
    swapped = x[:, [0, 3, 2, 1] + list(range(4, 12))]
    assert np.abs(model.forward(ready(swapped, S2_BANDS)).features - got).max() > 1e-3


def test_key_layout_published_file_only(tmp_path):
    state = published_state("tiny", seed=2)
    assert {k.split(".")[0] for k in state} >= {"encoder_embeddings", "encoder", "encoder_norm", "decoder"}
    model_with("terramind_v1_tiny", state, tmp_path).load()
    # the fixed buffers may be absent (the library's sin-cos table / zero biases are kept)
    params = {k for k, _ in full_model("tiny").named_parameters()}
    model_with("terramind_v1_tiny", {k: v for k, v in state.items() if k in params}, tmp_path).load()
    prefixed = {f"model.{k}": v for k, v in state.items()}
    with pytest.raises(WeightsError, match=r"published key layout.*missing e\.g\. \['encoder\..*"
                       r"unexpected e\.g\. \['model\."):
        model_with("terramind_v1_tiny", prefixed, tmp_path).load()
    no_s2 = {k: v for k, v in state.items() if MOD not in k}
    with pytest.raises(WeightsError,
                       match=r"2 missing e\.g\. \['encoder_embeddings\.untok_sen2l2a@224\.mod_emb"):
        model_with("terramind_v1_tiny", no_s2, tmp_path).load()
    with pytest.raises(WeightsError, match=r"of another shape e\.g\. \['encoder_embeddings\.untok_sen2l2a@224"
                       r"\.mod_emb: \(1, 1, 384\) != \(1, 1, 192\)"):
        model_with("terramind_v1_tiny", published_state("small", seed=3), tmp_path).load()
    # the big sizes: published layouts on meta tensors pass eoembed's check, another size's does not
    for size in ("base", "large"):
        with parameters_on_meta():
            full = full_model(size).state_dict()
            model = create(f"terramind_v1_{size}")
            net = model.build()
            enc = model.encoder_state(full, net, size)
        assert set(enc) == set(net.state_dict())
    with parameters_on_meta():
        # 12 more blocks x 7 parameters (2 norm scales, qkv, proj, 3 SwiGLU matrices; no biases)
        with pytest.raises(WeightsError, match=r"84 missing e\.g\. \['encoder\.12\..*"
                           r"of another shape e\.g\. \['encoder_embeddings\.untok_sen2l2a@224\.mod_emb: "
                           r"\(1, 1, 768\) != \(1, 1, 1024\)"):
            model.encoder_state(full_model("base").state_dict(), net, "large")


@pytest.mark.shared
def test_preprocessing_equals_published_v1_standardisation_on_a_real_patch():
    from zoo_helpers import composite, framework_input

    dn12, lon, lat = patch_dn()  # B01..B12 without B10
    dn = dn12[:, 16:240, 16:240].copy()
    model = create("terramind_v1_large")
    spec = model.inputs()[0]
    assert spec.bands == tuple(ESA[b] for b in tr.PRETRAINED_BANDS[MOD])
    order = [S2_BANDS.index(ESA[b]) for b in tr.PRETRAINED_BANDS[MOD]]
    comp = composite(dn, S2_BANDS, lon, lat, "sentinel-2-l2a")
    comp.valid[0, 10:14, 20:30] = False  # a gap
    got = framework_input(model, comp)
    mean = np.asarray(tr.v1_pretraining_mean[MOD], np.float32)[:, None, None]
    std = np.asarray(tr.v1_pretraining_std[MOD], np.float32)[:, None, None]
    published = (dn[order] - mean) / std
    assert got.shape == (1, 12, 224, 224) and dn.max() > 2000  # real reflectances
    inside = np.ones((224, 224), bool)
    inside[10:14, 20:30] = False
    assert np.abs(got[0][:, inside] - published[:, inside]).max() <= 1e-6
    assert np.all(got[0][:, ~inside] == 0)
    # v1, not v0.1: the v0.1 statistics would be another input
    v01 = (dn[order] - np.asarray(tr.v01_pretraining_mean["untok_sen2l2a@224"], np.float32)[:, None, None]) \
        / np.asarray(tr.v01_pretraining_std["untok_sen2l2a@224"], np.float32)[:, None, None]
    assert np.abs(got[0][:, inside] - v01[:, inside]).max() > 0.1


@pytest.mark.slow
def test_workflow_runs_terramind_on_generated_s2_imagery(tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config
    from zoo_helpers import roi_grid_path

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, tile_px=48, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=1, sites=sites, tile_px=48)
    model_id = "terramind_v1_tiny"
    name = get_card(model_id).weights[0].name
    path, sha = write(published_state("tiny", seed=9), tmp_path / name)
    work = tmp_path / "run"
    work.mkdir()
    write_config(work, index, rois, models={model_id: {"sensor": "s2", "weights": {name: path},
                                                       "weights_sha256": {name: sha}}},
                 benchmark=False, chunk_size=2,
                 weights={"dir": str(tmp_path / "empty_cache"), "allow_download": False},
                 output={"grid": True, "grid_cell_m": 80})

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert list(manifest["status"]) == ["ok", "ok"], manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / f"results/export/{model_id}/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    assert emb.shape == (2, 192) and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1])
    roi = manifest["roi_id"].iloc[0]
    values = open_grid(roi_grid_path(work, model_id, roi), roi)["embedding"].values
    assert values.shape[0] == 192 and values.shape[1] * values.shape[2] > 1 and np.isfinite(values).all()
