"""SatlasPretrain Swin-V2 (TorchGeo 0.8.1 weights): the four zoo tests.

1. parity: TorchGeo's own builder ``swin_v2_t/_b(weights=Swin_V2_*_Weights.SENTINEL2_SI_*_SATLAS)``
   (its download replaced by the seeded random state dict: the only thing mocked) and eoembed's
   embedder give the same last-stage tokens, and their mean is torchvision's pooled feature;
2. key layout: the published torchvision state dict (head included) loads; a 3-band stem for the
   9-band model or a ``backbone.`` prefix is refused, naming the shapes / keys;
3. preprocessing: a real 256 px L2A patch through the framework equals TorchGeo's published
   ``CenterCrop(256) -> Normalize`` applied to the TCI-scaled RGB (DN x 255 / 2000) and raw DN bands;
4. workflow: satlas_swint_ms runs through snakemake on the demo imagery (random weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_swin = pytest.importorskip("torchgeo.models.swin")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.satlas import MS, RGB, VARIANTS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

ENUMS = {"swint_rgb": (tg_swin.swin_v2_t, tg_swin.Swin_V2_T_Weights.SENTINEL2_SI_RGB_SATLAS),
         "swint_ms": (tg_swin.swin_v2_t, tg_swin.Swin_V2_T_Weights.SENTINEL2_SI_MS_SATLAS),
         "swinb_rgb": (tg_swin.swin_v2_b, tg_swin.Swin_V2_B_Weights.SENTINEL2_SI_RGB_SATLAS),
         "swinb_ms": (tg_swin.swin_v2_b, tg_swin.Swin_V2_B_Weights.SENTINEL2_SI_MS_SATLAS)}


def published_state(key: str, seed: int) -> dict:
    return random_state(create(f"satlas_{key}").build(), seed=seed)


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_parity_with_torchgeo_builder(key, tmp_path, monkeypatch):
    state = published_state(key, 51)
    builder, weights = ENUMS[key]
    monkeypatch.setattr(type(weights), "get_state_dict", lambda self, *a, **k: state)  # no download
    lib = builder(weights=weights).eval()  # TorchGeo's stem swap and strict key asserts
    model = model_with(f"satlas_{key}", state, tmp_path)
    model.load()
    bands = VARIANTS[key][2]
    x = np.random.default_rng(8).normal(0, 0.5, (2, len(bands), 256, 256)).astype(np.float32)
    got = model.forward(ready(x, bands)).features
    with torch.inference_mode():
        t = torch.from_numpy(x)
        ref = lib.norm(lib.features(t)).permute(0, 3, 1, 2).numpy()
        lib.head = torch.nn.Identity()
        pooled_lib = lib(t).numpy()  # torchvision: norm -> permute -> avgpool -> flatten
    assert got.shape == ref.shape == (2, VARIANTS[key][1], 8, 8)
    assert np.abs(ref).max() > 1e-3 and np.abs(got - ref).max() <= 1e-5
    pooled = np.stack([model.reduce_cells(f, w, 8)[:, 0, 0] for f, w in zip(got, np.ones((2, 8, 8)))])
    assert np.abs(pooled - pooled_lib).max() <= 1e-5


def test_key_layout(tmp_path):
    state = published_state("swint_ms", 3)
    assert "head.weight" in state  # the published file keeps torchvision's classifier
    model_with("satlas_swint_ms", state, tmp_path).load()
    rgb_stem = dict(state, **{"features.0.0.weight": torch.zeros(96, 3, 4, 4)})
    with pytest.raises(WeightsError, match=r"features\.0\.0\.weight: \(96, 3, 4, 4\) != \(96, 9, 4, 4\)"):
        model_with("satlas_swint_ms", rgb_stem, tmp_path).load()
    with pytest.raises(WeightsError, match=r"torchvision SwinTransformer.*unexpected e\.g\. \['backbone\."):
        model_with("satlas_swint_ms", {f"backbone.{k}": v for k, v in state.items()}, tmp_path).load()


@pytest.mark.shared
@pytest.mark.parametrize("key", ["swint_rgb", "swint_ms"])
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch(key):
    dn12, lon, lat = patch_dn()
    bands12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    model = create(f"satlas_{key}")
    got = framework_input(model, composite(dn12, bands12, lon, lat, "sentinel-2-l2a"), mode="tile")
    bands = VARIANTS[key][2]
    raw = np.stack([dn12[bands12.index(b)] * (255.0 / 2000.0 if b in RGB else 1.0) for b in bands])  # TCI
    published = ENUMS[key][1].transforms(torch.from_numpy(raw[None].astype(np.float32))).numpy()
    assert got.shape == published.shape == (1, len(bands), 256, 256)
    assert np.abs(got - published).max() <= 1e-6
    assert bands == (RGB if key.endswith("rgb") else MS)


@pytest.mark.slow
def test_workflow_runs_satlas_on_demo_imagery(tmp_path):
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
    name = get_card("satlas_swint_ms").weights[0].name
    path, sha = write(published_state("swint_ms", 9), tmp_path / name)
    config = write_config(work, index, rois, models=("satlas_swint_ms",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"satlas_swint_ms": {"sensor": "s2", "weights": {name: path}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/satlas_swint_ms/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 768) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    values = open_grid(roi_grid_path(work, "satlas_swint_ms", sorted(gdf["roi_id"])[0]), sorted(gdf["roi_id"])[0])["embedding"].values
    assert values.shape[0] == 768 and np.isfinite(values).any()
