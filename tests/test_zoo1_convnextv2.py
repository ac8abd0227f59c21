"""ConvNeXt V2 atto ... base (timm, non-commercial weights): the four zoo tests.

1. parity: eoembed's embedder and timm's own ``convnextv2_<size>.fcmae_ft_in1k`` model
   (``num_classes=0``), loaded with the same seeded random state dict, give the same embedding
   (``tokens='pooled'``) and the same last-stage feature map (``tokens='map'``);
2. key layout: timm's published safetensors (with the 1000-class ``head.fc``) loads; a prefixed
   checkpoint or one of another size is refused, naming keys and shapes;
3. preprocessing: a real 256 px patch's central 224 px through the framework equals timm's eval
   transform (Resize(256) + CenterCrop(224) + ImageNet normalisation) of the whole stretched patch;
4. workflow: convnextv2_atto runs through snakemake on the demo imagery (random weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models.convnextv2 import SIZES  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.rgb import FULL_SCALE_DN, RGB_BANDS  # noqa: E402
from zoo_helpers import composite, framework_input, model_with, patch_dn, random_state, ready, write  # noqa: E402


def published_net(size: str):
    """timm's model for the published weights, with its 1000-class head (as the file has it)."""
    return timm.create_model(f"convnextv2_{size}.fcmae_ft_in1k", pretrained=False).eval()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_parity_with_timm(size, tmp_path):
    state = random_state(published_net(size), seed=41)
    lib = timm.create_model(f"convnextv2_{size}.fcmae_ft_in1k", pretrained=False, num_classes=0).eval()
    lib.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.fc.")}, strict=True)
    name = get_card(f"convnextv2_{size}").weights[0].name
    path, sha = write(state, tmp_path / name)
    x = np.random.default_rng(6).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        fmap = lib.forward_features(torch.from_numpy(x))
        want = {"pooled": lib(torch.from_numpy(x))[:, :, None, None].numpy(), "map": fmap.numpy()}
    assert want["pooled"].shape == (2, SIZES[size], 1, 1) and want["map"].shape == (2, SIZES[size], 7, 7)
    for tokens in ("pooled", "map"):
        model = create(f"convnextv2_{size}", {"tokens": tokens}, weights_paths={name: path}, weights_pins={name: sha})
        model.load()
        got = model.forward(ready(x, RGB_BANDS)).features
        assert np.abs(want[tokens]).max() > 1e-3
        assert np.abs(got - want[tokens]).max() <= 1e-5 * max(1.0, float(np.abs(want[tokens]).max()))


def test_key_layout(tmp_path):
    state = random_state(published_net("atto"), seed=2)
    assert {"head.fc.weight", "head.norm.weight"} <= set(state)  # the published file's classifier
    model_with("convnextv2_atto", state, tmp_path).load()
    with pytest.raises(WeightsError, match=r"unexpected e\.g\. \['model\.head"):
        model_with("convnextv2_atto", {f"model.{k}": v for k, v in state.items()}, tmp_path).load()
    femto = random_state(published_net("femto"), seed=2)
    with pytest.raises(WeightsError, match=r"shape mismatches \['head\.norm\.bias: \(384,\) != \(320,\)"):
        model_with("convnextv2_atto", femto, tmp_path).load()


@pytest.mark.shared
def test_preprocessing_equals_timm_eval_transform_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    got = framework_input(create("convnextv2_tiny"), composite(dn12[:, 16:240, 16:240], bands, lon, lat,
                                                                 "sentinel-2-l2a"))
    rgb = (np.stack([dn12[bands.index(b)] for b in RGB_BANDS]) / FULL_SCALE_DN).astype(np.float32)
    cfg = timm.data.resolve_data_config({}, model=published_net("tiny"))
    assert cfg["crop_pct"] == 0.875 and cfg["input_size"] == (3, 224, 224)
    published = timm.data.create_transform(**cfg)(torch.from_numpy(rgb)).numpy()  # Resize 256, crop 224
    assert got.shape == (1, *published.shape) == (1, 3, 224, 224)
    assert np.abs(got[0] - published).max() <= 1e-6


@pytest.mark.slow
def test_workflow_runs_convnextv2_on_demo_imagery(tmp_path):
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
    name = get_card("convnextv2_atto").weights[0].name
    path, sha = write(random_state(published_net("atto"), seed=9), tmp_path / name)
    config = write_config(work, index, rois, models=("convnextv2_atto",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    doc["models"] = {"convnextv2_atto": {"sensor": "s2", "options": {"tokens": "map"},
                                         "weights": {name: path}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/convnextv2_atto/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 320) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    values = open_grid(roi_grid_path(work, "convnextv2_atto", sorted(gdf["roi_id"])[0]), sorted(gdf["roi_id"])[0])["embedding"].values
    assert values.shape[0] == 320 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
