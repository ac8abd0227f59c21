"""Panopticon (TorchGeo 0.8.1): parity, key layout, preprocessing, workflow.

1. parity: eoembed's panopticon and TorchGeo's ``panopticon_vitb14`` loaded by TorchGeo's own weights
   loader (its download replaced by the same seeded random state dict in the published layout:
   ``mask_token``, 518 px position embedding) give the same CLS embedding and patch tokens for the
   same input and channel ids; the output depends on the wavelengths;
2. key layout: the published layout loads; the ``model.``-prefixed wrapper layout, a checkpoint
   without ``mask_token`` and one whose position embedding is already 224 px are refused;
3. preprocessing: a real patch through the framework equals TorchGeo's published transform
   (Identity) of the same pixels with the declared z-score; the channel ids are the ESA band centres;
4. workflow: panopticon runs through snakemake on the demo imagery with random weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg = pytest.importorskip("torchgeo.models.panopticon")

from eoembed.errors import ModelError, WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.ssl4eo import L2A_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

WL_NM = (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1613.7, 2202.4)  # ESA S2A
# SSL4EO-S12 statistics (TorchGeo's ssl4eo _mean_s2 / _std_s2, 13 L1C bands; B10 is index 10)
MEAN = [1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0, 2195.2, 1537.4]
STD = [791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5, 1340.0, 1142.9]
NAME = get_card("panopticon").weights[0].name


@pytest.fixture(scope="module")
def state():
    """The published layout: Panopticon.model's keys at 518 px (37 x 37 patches) plus mask_token."""
    out = random_state(tg.Panopticon(img_size=518).model, seed=41)
    assert out["pos_embed"].shape == (1, 1 + 37 * 37, 768)
    out["mask_token"] = torch.randn(1, 768, generator=torch.Generator().manual_seed(1)) * 0.02
    return out


def torchgeo_loaded(state, monkeypatch):
    """TorchGeo's panopticon_vitb14 with its published weights enum, the download replaced by ``state``."""
    monkeypatch.setattr(tg.Panopticon_Weights, "get_state_dict",
                        lambda self, *a, **k: {k2: v.clone() for k2, v in state.items()})
    return tg.panopticon_vitb14(weights=tg.Panopticon_Weights.VIT_BASE14).eval()


def test_parity_with_torchgeo_panopticon(state, tmp_path, monkeypatch):
    lib = torchgeo_loaded(state, monkeypatch)
    path, sha = write(state, tmp_path / NAME)
    x = np.random.default_rng(5).normal(0, 1, (2, 12, 224, 224)).astype(np.float32)
    batch = ready(x, L2A_BANDS)
    batch.wavelengths_nm = {"s2": WL_NM}

    def lib_run(wl):
        ids = torch.tensor([wl, wl])
        with torch.inference_mode():
            cls = lib({"imgs": torch.from_numpy(x), "chn_ids": ids.clone()}).numpy()
            tokens = lib.model.forward_features({"imgs": torch.from_numpy(x), "chn_ids": ids.clone()})
        return cls, tokens[:, 1:].transpose(1, 2).reshape(2, 768, 16, 16).numpy()

    ref, patches = lib_run(WL_NM)
    for tokens, want in (("pooled", ref[:, :, None, None]), ("patch", patches)):
        model = create("panopticon", {"tokens": tokens}, weights_paths={NAME: path}, weights_pins={NAME: sha})
        model.load()
        got = model.forward(batch).features
        assert got.shape == want.shape
        assert np.abs(want).max() > 1e-3
        assert np.abs(got - want).max() <= 1e-5
    shifted = tuple(w * 1.2 for w in WL_NM)  # Panopticon really reads the wavelengths
    batch.wavelengths_nm = {"s2": shifted}
    got = model.forward(batch).features
    assert np.abs(got - patches).max() > 1e-3
    assert np.abs(got - lib_run(shifted)[1]).max() <= 1e-5
    batch.wavelengths_nm = {"s2": WL_NM[:-1] + (float("nan"),)}
    with pytest.raises(ModelError, match=r"needs every band's wavelength.*'B12': nan"):
        model.forward(batch)


def test_key_layout(state, tmp_path):
    model_with("panopticon", state, tmp_path).load()  # the published layout
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['model\."):
        model_with("panopticon", {f"model.{k}": v for k, v in state.items()}, tmp_path).load()
    no_mask = {k: v for k, v in state.items() if k != "mask_token"}
    with pytest.raises(WeightsError, match=r"1 missing e\.g\. \['mask_token'\]"):
        model_with("panopticon", no_mask, tmp_path).load()
    small = dict(state, pos_embed=state["pos_embed"][:, :257])
    with pytest.raises(WeightsError, match=r"pos_embed: \(1, 257, 768\) != \(1, 1370, 768\)"):
        model_with("panopticon", small, tmp_path).load()


@pytest.mark.shared
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch():
    from eoembed.models.base import _wavelengths
    from eoembed.prep import InputPrep, batches, pieces_for

    dn12, lon, lat = patch_dn()
    model = create("panopticon")
    specs = {s.modality: s for s in model.inputs()}
    crop = dn12[:, 16:240, 16:240]
    comp = composite(crop, L2A_BANDS, lon, lat, "sentinel-2-l2a")
    got = framework_input(model, comp)
    raw = tg.Panopticon_Weights.VIT_BASE14.transforms(torch.from_numpy(crop[None].copy())).numpy()
    keep = [i for i in range(13) if i != 10]
    published = (raw - np.array(MEAN)[keep, None, None]) / np.array(STD)[keep, None, None]
    assert got.shape == published.shape == (1, 12, 224, 224)
    assert np.abs(got - published).max() <= 1e-6
    (_, batch), = list(batches(pieces_for(0, {"s2": comp}, specs["s2"], InputPrep())[0], specs, 1,
                               _wavelengths(model.inputs(), [comp])))
    assert model.channel_ids(batch) == pytest.approx(WL_NM)


@pytest.mark.slow
def test_workflow_runs_panopticon_on_demo_imagery(state, tmp_path):
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
    config = write_config(work, index, rois, models=("panopticon",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"panopticon": {"sensor": "s2", "options": {"tokens": "patch", "batch_size": 2},
                                    "weights": {NAME: path}, "weights_sha256": {NAME: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/panopticon/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 768) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    roi = sorted(gdf["roi_id"])[0]
    values = open_grid(roi_grid_path(work, "panopticon", roi), roi)["embedding"].values
    assert values.shape[0] == 768 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
