"""DOFA (TorchGeo 0.8.1): parity, key layout, preprocessing, workflow.

1. parity: eoembed's dofa_base and TorchGeo's ``dofa_base_patch16_224``, loaded with the same seeded
   random state dict (published layout: no fc_norm / head), give the same embedding for the same
   input and the same wavelengths; ``tokens='patch'`` gives the last block's patch tokens;
2. key layout: the published layout loads; a checkpoint with an ``encoder.`` prefix or without the
   wavelength hypernetwork is refused; dofa_large's key names and shapes are checked against
   TorchGeo's builder without writing its 1.3 GB file (meta tensors);
3. preprocessing: a real patch's central 224 px through the framework equals TorchGeo's published
   ``CenterCrop(224)`` of the whole patch with the declared / 10000, and the wavelengths handed to
   DOFA are the collection's band centres in micrometres;
4. workflow: dofa_base runs through snakemake on the demo imagery with random weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_dofa = pytest.importorskip("torchgeo.models.dofa")

from eoembed.collections import COLLECTIONS  # noqa: E402
from eoembed.errors import ModelError, WeightsError  # noqa: E402
from eoembed.models.dofa import LAYOUT, OPTIONAL_KEYS  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.ssl4eo import L2A_BANDS, check_keys  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

WL_NM = tuple(COLLECTIONS["sentinel-2-l2a"].wavelengths_nm[b] for b in L2A_BANDS)


def published_state(seed: int) -> dict:
    lib = tg_dofa.dofa_base_patch16_224(weights=None, num_classes=0)
    return random_state(lib, seed=seed, drop=tuple(OPTIONAL_KEYS))


@pytest.fixture(scope="module")
def base_state():
    return published_state(21)


def test_parity_with_torchgeo_dofa(base_state, tmp_path):
    lib = tg_dofa.dofa_base_patch16_224(weights=None, num_classes=0).eval()
    missing, unexpected = lib.load_state_dict(base_state, strict=False)
    assert set(missing) == {"fc_norm.weight", "fc_norm.bias"} and not unexpected  # as TorchGeo's loader
    name = get_card("dofa_base").weights[0].name
    path, sha = write(base_state, tmp_path / name)
    x = np.random.default_rng(5).normal(0, 0.2, (2, 12, 224, 224)).astype(np.float32)
    batch = ready(x, L2A_BANDS)
    batch.wavelengths_nm = {"s2": WL_NM}
    captured = {}
    lib.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.update(t=out))
    with torch.inference_mode():
        ref = lib.forward_features(torch.from_numpy(x), [w / 1000 for w in WL_NM]).numpy()
    patches = captured["t"][:, 1:].transpose(1, 2).reshape(2, 768, 14, 14).numpy()
    for tokens, want in (("pooled", ref[:, :, None, None]), ("patch", patches)):
        model = create("dofa_base", {"tokens": tokens}, weights_paths={name: path}, weights_pins={name: sha})
        model.load()
        got = model.forward(batch).features
        assert got.shape == want.shape
        assert np.abs(want).max() > 1e-3
        assert np.abs(got - want).max() <= 1e-5
    other = create("dofa_base", weights_paths={name: path}, weights_pins={name: sha})
    other.load()
    batch.wavelengths_nm = {"s2": tuple(w * 1.2 for w in WL_NM)}  # DOFA really reads the wavelengths
    assert np.abs(other.forward(batch).features - ref[:, :, None, None]).max() > 1e-3
    batch.wavelengths_nm = {"s2": WL_NM[:-1] + (float("nan"),)}
    with pytest.raises(ModelError, match="needs every band's wavelength.*'B12': nan"):
        other.forward(batch)


def test_key_layout(base_state, tmp_path):
    model_with("dofa_base", base_state, tmp_path).load()  # the published layout
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['encoder\."):
        model_with("dofa_base", {f"encoder.{k}": v for k, v in base_state.items()}, tmp_path).load()
    no_hyper = {k: v for k, v in base_state.items() if not k.startswith("patch_embed.")}
    with pytest.raises(WeightsError, match=r"missing e\.g\. \['patch_embed\."):
        model_with("dofa_base", no_hyper, tmp_path).load()
    # dofa_large: TorchGeo's large layout (without fc_norm/head) passes eoembed's check, base's does not
    with torch.device("meta"):
        expected = create("dofa_large").build().state_dict()  # eoembed's network for dofa_large
        torchgeo_large = tg_dofa.dofa_large_patch16_224(weights=None).state_dict()  # with its default head
    published = {k: v for k, v in torchgeo_large.items() if k not in OPTIONAL_KEYS}
    check_keys(expected, published, OPTIONAL_KEYS, "dofa_large", LAYOUT)
    with pytest.raises(WeightsError, match=r"TorchGeo DOFA key names.*144 missing e\.g\. \['blocks\.12\..*"
                       r"blocks\.0\.attn\.proj\.bias: \(768,\) != \(1024,\)"):
        check_keys(expected, base_state, OPTIONAL_KEYS, "dofa_large", LAYOUT)


@pytest.mark.shared
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    model = create("dofa_base")
    specs = {s.modality: s for s in model.inputs()}
    from eoembed.prep import InputPrep, batches, pieces_for

    comp = composite(dn12[:, 16:240, 16:240], L2A_BANDS, lon, lat, "sentinel-2-l2a")
    got = framework_input(model, comp)
    published = tg_dofa.DOFABase16_Weights.DOFA_MAE.transforms(torch.from_numpy(dn12[None].copy())).numpy() / 10000
    assert got.shape == published.shape == (1, 12, 224, 224)
    assert np.abs(got - published).max() <= 1e-6
    (_, batch), = list(batches(pieces_for(0, {"s2": comp}, specs["s2"], InputPrep())[0], specs, 1,
                               {"s2": dict(COLLECTIONS["sentinel-2-l2a"].wavelengths_nm)}))
    assert model.wavelengths_um(batch) == pytest.approx([0.4427, 0.4924, 0.5598, 0.6646, 0.7041, 0.7405, 0.7828,
                                                        0.8328, 0.8647, 0.9451, 1.6137, 2.2024])


@pytest.mark.slow
def test_workflow_runs_dofa_on_demo_imagery(base_state, tmp_path):
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
    name = get_card("dofa_base").weights[0].name
    path, sha = write(base_state, tmp_path / name)
    config = write_config(work, index, rois, models=("dofa_base",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"dofa_base": {"sensor": "s2", "options": {"tokens": "patch", "batch_size": 4},
                                   "weights": {name: path}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/dofa_base/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 768) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    values = open_grid(roi_grid_path(work, "dofa_base", sorted(gdf["roi_id"])[0]), sorted(gdf["roi_id"])[0])["embedding"].values
    assert values.shape[0] == 768 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
