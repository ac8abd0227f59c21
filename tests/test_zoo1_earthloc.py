"""EarthLoc (TorchGeo 0.8.1): the four zoo tests.

1. parity: TorchGeo's own ``earthloc(weights=EarthLoc_Weights.SENTINEL2_RESNET50)`` (its download
   replaced by the seeded random state dict: the only thing mocked) and eoembed's embedder give the
   same 4096-d descriptor;
2. key layout: the published state dict loads; one with a ``model.`` prefix or a backbone of
   another width is refused;
3. preprocessing: a real 256 px patch through the framework (resize to 320, then the declared
   normalisation) equals TorchGeo's published ``Normalize(0, 255) -> Normalize(ImageNet) ->
   Resize(320)`` of the stretched patch (DN / 3000 x 255);
4. workflow: earthloc runs through snakemake on the demo imagery (random weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_earthloc = pytest.importorskip("torchgeo.models.earthloc")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.rgb import FULL_SCALE_DN, RGB_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402

WEIGHTS = tg_earthloc.EarthLoc_Weights.SENTINEL2_RESNET50


@pytest.fixture(scope="module")
def state():
    return random_state(create("earthloc").build(), seed=61, he=True)


def test_parity_with_torchgeo_builder(state, tmp_path, monkeypatch):
    monkeypatch.setattr(type(WEIGHTS), "get_state_dict", lambda self, *a, **k: state)  # no download
    lib = tg_earthloc.earthloc(weights=WEIGHTS).eval()
    model = model_with("earthloc", state, tmp_path)
    model.load()
    x = np.random.default_rng(9).normal(0, 1, (2, 3, 320, 320)).astype(np.float32)
    got = model.forward(ready(x, RGB_BANDS)).features
    with torch.inference_mode():
        ref = lib(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 4096, 1, 1)
    assert np.abs(got[:, :, 0, 0] - ref).max() <= 1e-5
    assert np.linalg.norm(ref, axis=1) == pytest.approx(1.0, abs=1e-5)  # EarthLoc's unit descriptor
    assert np.abs(ref[0] - ref[1]).max() > 1e-4


def test_key_layout(state, tmp_path):
    model_with("earthloc", state, tmp_path).load()
    with pytest.raises(WeightsError, match=r"EarthLoc key names.*unexpected e\.g\. \['model\.aggregator"):
        model_with("earthloc", {f"model.{k}": v for k, v in state.items()}, tmp_path).load()
    narrow = dict(state, **{"fc.weight": torch.zeros(2048, 4096), "fc.bias": torch.zeros(2048)})
    with pytest.raises(WeightsError, match=r"fc\.bias: \(2048,\) != \(4096,\)"):
        model_with("earthloc", narrow, tmp_path).load()


@pytest.mark.shared
def test_preprocessing_equals_torchgeo_transform_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    got = framework_input(create("earthloc"), composite(dn12, bands, lon, lat, "sentinel-2-l2a"))
    eight_bit = np.stack([dn12[bands.index(b)] for b in RGB_BANDS]) / FULL_SCALE_DN * 255.0
    published = WEIGHTS.transforms(torch.from_numpy(eight_bit[None].astype(np.float32))).numpy()
    assert got.shape == published.shape == (1, 3, 320, 320)
    # resize 256 -> 320: eoembed resamples DN (bilinear, mask-weighted), TorchGeo normalised values;
    # both float32, so they agree to rounding of the resampling, not to 1e-6
    assert np.abs(got - published).max() <= 3e-5
    # the normalisation itself is exact: the same pixels without a resize (framework normalise vs the
    # transform's two Normalize steps)
    from eoembed.prep import normalise

    spec = create("earthloc").inputs()[0]
    x, _ = normalise(composite(dn12, bands, lon, lat, "sentinel-2-l2a"), spec)
    steps = WEIGHTS.transforms[:2](torch.from_numpy(eight_bit[None].astype(np.float32))).numpy()
    assert np.abs(x - steps).max() <= 1e-6


@pytest.mark.slow
def test_workflow_runs_earthloc_on_demo_imagery(state, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    name = get_card("earthloc").weights[0].name
    path, sha = write(state, tmp_path / name)
    config = write_config(work, index, rois, models=("earthloc",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"earthloc": {"sensor": "s2", "weights": {name: path}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/earthloc/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 4096) and np.isfinite(emb).all()
    assert np.linalg.norm(emb, axis=1) == pytest.approx(1.0, abs=1e-4)  # one tile per ROI: unit vectors
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    assert all(p.stat().st_size > 0 for p in (work / "results/export/earthloc/grid").glob("*.nc"))
    assert list((work / "results/export/earthloc/grid").glob("*.nc"))
