"""Copernicus-FM (TorchGeo 0.8.1): parity, key layout, preprocessing, workflow.

1. parity: eoembed's copernicusfm and TorchGeo's ``copernicusfm_base`` loaded by TorchGeo's own weights
   loader (its download replaced by the same seeded random state dict) give the same embedding for
   the same input, wavelengths, bandwidths and metadata; the output depends on each of them; an
   out-of-range patch area goes over as NaN (the learned token);
2. key layout: the published layout loads; an ``encoder.`` prefix, a checkpoint without the spectral
   hypernetwork, and the original (non-TorchGeo) release's extra ``mask_token`` are refused;
3. preprocessing: a real patch through the framework equals TorchGeo's published transform (Identity)
   of the same pixels with Copernicus-FM's pretraining z-score; the wavelengths, bandwidths and
   metadata handed over are the ESA band table, the ROI centre, the window's middle day and the area;
4. workflow: copernicusfm runs through snakemake on the demo imagery with random weights.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg = pytest.importorskip("torchgeo.models.copernicusfm")

from eoembed.errors import ModelError, WeightsError  # noqa: E402
from eoembed.models.copernicusfm import OPTIONAL_KEYS  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.ssl4eo import L2A_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

# ESA Sentinel-2A MSI band table (central wavelength, bandwidth; nm), B10 left out
WL_NM = (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1613.7, 2202.4)
BW_NM = (21.0, 66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 20.0, 91.0, 175.0)
# zhu-xlab/Copernicus-FM main_pretrain.py S2C_MEAN / S2C_STD (13 L1C bands; B10 is index 10)
S2C_MEAN = [1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0, 2195.2, 1537.4]
S2C_STD = [791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5, 1340.0, 1142.9]
NAME = get_card("copernicusfm").weights[0].name


@pytest.fixture(scope="module")
def state():
    return random_state(tg.copernicusfm_base(weights=None, num_classes=0), seed=31, drop=tuple(OPTIONAL_KEYS))


def torchgeo_loaded(state, monkeypatch):
    """TorchGeo's copernicusfm_base with its published weights enum, the download replaced by ``state``."""
    monkeypatch.setattr(tg.CopernicusFM_Base_Weights, "get_state_dict",
                        lambda self, *a, **k: {k2: v.clone() for k2, v in state.items()})
    return tg.copernicusfm_base(weights=tg.CopernicusFM_Base_Weights.CopernicusFM_ViT).eval()


def batch_for(x, latlon, days, gsd_m=10.0):
    batch = ready(x, L2A_BANDS)
    batch.wavelengths_nm, batch.bandwidths_nm = {"s2": WL_NM}, {"s2": BW_NM}
    batch.latlon, batch.epoch_days, batch.gsd_m = np.array(latlon, float), np.array(days)[:, None], gsd_m
    return batch


def test_parity_with_torchgeo_copernicusfm(state, tmp_path, monkeypatch):
    lib = torchgeo_loaded(state, monkeypatch)
    path, sha = write(state, tmp_path / NAME)
    x = np.random.default_rng(5).normal(0, 1, (2, 12, 224, 224)).astype(np.float32)
    latlon, days = [[52.5, 5.6], [-0.35, 36.0]], [19159, 19200]
    meta = torch.tensor([[5.6, 52.5, 19159, 0.0256], [36.0, -0.35, 19200, 0.0256]])  # lon, lat, days, (0.16 km)^2
    captured = {}
    lib.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.update(t=out))
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x), meta, wavelengths=WL_NM, bandwidths=BW_NM).numpy()
    patches = captured["t"][:, 1:].transpose(1, 2).reshape(2, 768, 14, 14).numpy()
    for tokens, want in (("pooled", ref[:, :, None, None]), ("patch", patches)):
        model = create("copernicusfm", {"tokens": tokens}, weights_paths={NAME: path}, weights_pins={NAME: sha})
        model.load()
        got = model.forward(batch_for(x, latlon, days)).features
        assert got.shape == want.shape
        assert np.abs(want).max() > 1e-3
        assert np.abs(got - want).max() <= 1e-5
    model = create("copernicusfm", weights_paths={NAME: path}, weights_pins={NAME: sha})
    model.load()
    base = ref[:, :, None, None]
    changed = {"wavelengths": dict(wavelengths_nm={"s2": tuple(w * 1.2 for w in WL_NM)}),
               "bandwidths": dict(bandwidths_nm={"s2": tuple(w * 2 for w in BW_NM)}),
               "location": dict(latlon=np.array([[40.0, -3.7], [10.0, 100.0]])),
               "time": dict(epoch_days=np.array([[18000], [18100]])),
               "area": dict(gsd_m=30.0)}
    for what, fields in changed.items():  # Copernicus-FM really reads each of them
        batch = batch_for(x, latlon, days)
        for k, v in fields.items():
            setattr(batch, k, v)
        assert np.abs(model.forward(batch).features - base).max() > 1e-3, what
    with torch.inference_mode():  # a 0.5 m GSD gives (8 m)^2 < 0.001 km^2: NaN, TorchGeo's learned scale token
        nan_area = lib.forward_features(torch.from_numpy(x), torch.cat([meta[:, :3], torch.full((2, 1), torch.nan)], 1),
                                        wavelengths=WL_NM, bandwidths=BW_NM).numpy()
    assert np.abs(model.forward(batch_for(x, latlon, days, gsd_m=0.5)).features[:, :, 0, 0] - nan_area).max() <= 1e-5
    batch = batch_for(x, latlon, days)
    batch.bandwidths_nm = {"s2": BW_NM[:-1] + (float("nan"),)}
    with pytest.raises(ModelError, match=r"needs every band's bandwidths.*'B12': nan"):
        model.forward(batch)


def test_key_layout(state, tmp_path):
    model_with("copernicusfm", state, tmp_path).load()  # the published layout
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['encoder\."):
        model_with("copernicusfm", {f"encoder.{k}": v for k, v in state.items()}, tmp_path).load()
    no_hyper = {k: v for k, v in state.items() if not k.startswith("patch_embed_spectral.")}
    with pytest.raises(WeightsError, match=r"missing e\.g\. \['patch_embed_spectral\."):
        model_with("copernicusfm", no_hyper, tmp_path).load()
    original = dict(state, mask_token=torch.zeros(1, 1, 768))  # the zhu-xlab release (not TorchGeo's file)
    with pytest.raises(WeightsError, match=r"TorchGeo CopernicusFM key names.*1 unexpected e\.g\. \['mask_token'\]"):
        model_with("copernicusfm", original, tmp_path).load()


@pytest.mark.shared
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch():
    from eoembed.models.base import _wavelengths
    from eoembed.prep import InputPrep, batches, pieces_for

    dn12, lon, lat = patch_dn()
    model = create("copernicusfm")
    specs = {s.modality: s for s in model.inputs()}
    crop = dn12[:, 16:240, 16:240]
    comp = composite(crop, L2A_BANDS, lon, lat, "sentinel-2-l2a")
    got = framework_input(model, comp)
    raw = tg.CopernicusFM_Base_Weights.CopernicusFM_ViT.transforms(torch.from_numpy(crop[None].copy())).numpy()
    keep = [i for i in range(13) if i != 10]
    published = (raw - np.array(S2C_MEAN)[keep, None, None]) / np.array(S2C_STD)[keep, None, None]
    assert got.shape == published.shape == (1, 12, 224, 224)
    assert np.abs(got - published).max() <= 1e-6
    (_, batch), = list(batches(pieces_for(0, {"s2": comp}, specs["s2"], InputPrep())[0], specs, 1,
                               _wavelengths(model.inputs(), [comp]),
                               _wavelengths(model.inputs(), [comp], "bandwidths_nm")))
    wl, bw = model.spectra_nm(batch)
    assert wl == pytest.approx(WL_NM) and bw == pytest.approx(BW_NM)
    (m_lon, m_lat, days, area), = model.metadata(batch)
    assert (m_lon, m_lat) == pytest.approx((lon, lat), abs=1e-4)
    assert days == (dt.date(2022, 6, 16) - dt.date(1970, 1, 1)).days  # middle of 2022-06-01 .. 07-01
    assert area == pytest.approx((16 * 10 / 1000) ** 2)


@pytest.mark.slow
def test_workflow_runs_copernicusfm_on_demo_imagery(state, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from zoo_helpers import roi_grid_path
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=1, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    path, sha = write(state, tmp_path / NAME)
    config = write_config(work, index, rois, models=("copernicusfm",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"copernicusfm": {"sensor": "s2", "options": {"tokens": "patch", "batch_size": 2},
                                      "weights": {NAME: path}, "weights_sha256": {NAME: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/copernicusfm/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 768) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    roi = sorted(gdf["roi_id"])[0]
    values = open_grid(roi_grid_path(work, "copernicusfm", roi), roi)["embedding"].values
    assert values.shape[0] == 768 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
