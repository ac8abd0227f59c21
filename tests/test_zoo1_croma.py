"""CROMA (TorchGeo 0.8.1): parity, key layout, preprocessing, workflow.

1. parity: eoembed's croma_base and TorchGeo's ``croma_base`` (both modalities), the latter loaded by
   TorchGeo's own ``load_weights`` from the same seeded container file, give the same joint patch
   tokens (grid, row-major patches) and joint_GAP (their mean) for the same S1 + S2 input; the
   output depends on both inputs;
2. key layout: the published container of five state dicts loads; a flat state dict, a part with
   missing keys and a base container for croma_large are refused; croma_large's parts are checked
   against TorchGeo's builder on meta tensors; validation wants an S2 sensor and an S1 sensor;
3. preprocessing: a real S2 patch through the framework equals CROMA's normalisation with the
   SSL4EO-S12 statistics TorchGeo publishes (after TorchGeo's published Identity transform); S1:
   synthetic linear power through the framework equals CROMA's README ``normalize`` of the dB values
   when the batch's own statistics are SSL4EO-S12's;
4. workflow: croma_base runs through snakemake on generated S2 + S1 imagery with random weights.
"""

from __future__ import annotations

import datetime as dt
import types

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
tg_croma = pytest.importorskip("torchgeo.models.croma")
tg_resnet = pytest.importorskip("torchgeo.models.resnet")

from eoembed.errors import WeightsError  # noqa: E402
from eoembed.grid import grid_for  # noqa: E402
from eoembed.items import Composite  # noqa: E402
from eoembed.models.croma import LAYOUT, PARTS  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.ssl4eo import L1C_BANDS, L2A_BANDS, check_keys  # noqa: E402
from eoembed.prep import InputPrep, ReadyBatch, batches, pieces_for  # noqa: E402
from eoembed.specs import PointBuffer  # noqa: E402
from zoo_helpers import composite, model_with, patch_dn, random_state, write  # noqa: E402


def container(net, seed: int) -> dict:
    """A seeded random CROMA container: ``{part: state dict of that sub-module}``."""
    flat = random_state(net, seed=seed, drop=("attn_bias",))
    return {p: {k[len(p) + 1:]: v for k, v in flat.items() if k.startswith(p + ".")} for p in PARTS}


@pytest.fixture(scope="module")
def base_container():
    return container(tg_croma.croma_base(weights=None), 31)


def two_modal_batch(sar: np.ndarray, optical: np.ndarray) -> ReadyBatch:
    b = sar.shape[0]
    return ReadyBatch(x={"s2": optical[:, None], "s1": sar[:, None]},
                      mask={m: np.zeros((b, 1, 120, 120), bool) for m in ("s2", "s1")},
                      channels={"s2": L2A_BANDS, "s1": ("VV", "VH")}, months=np.zeros((b, 1), np.int64),
                      doy=np.zeros((b, 1), np.int64), latlon=np.zeros((b, 2)), pixel_latlon=None, gsd_m=10.0)


def test_parity_with_torchgeo_croma(base_container, tmp_path):
    name = get_card("croma_base").weights[0].name
    path, sha = write(base_container, tmp_path / name)
    lib = tg_croma.croma_base(weights=None).eval()
    # TorchGeo's own loader reads the file we wrote (it only needs get_state_dict)
    tg_croma.load_weights(lib, types.SimpleNamespace(get_state_dict=lambda progress: torch.load(path)))
    rng = np.random.default_rng(3)
    sar = rng.uniform(0, 1, (2, 2, 120, 120)).astype(np.float32)
    optical = rng.uniform(0, 1, (2, 12, 120, 120)).astype(np.float32)
    with torch.inference_mode():
        ref = lib(x_sar=torch.from_numpy(sar), x_optical=torch.from_numpy(optical))
    tokens = ref["joint_encodings"].numpy()  # (2, 225, 768), patch index = row * 15 + col
    want = np.stack([[tokens[b, r * 15 + c] for r in range(15) for c in range(15)] for b in range(2)])
    want = want.reshape(2, 15, 15, 768).transpose(0, 3, 1, 2)
    model = create("croma_base", weights_paths={name: path}, weights_pins={name: sha})
    model.load()
    got = model.forward(two_modal_batch(sar, optical))
    assert got.features.shape == (2, 768, 15, 15) and (got.weight == 1).all()
    assert np.abs(want).max() > 1e-3
    assert np.abs(got.features - want).max() <= 1e-5
    # the framework's mean pooling of the (all-valid) tokens is CROMA's joint_GAP
    assert np.abs(got.features.mean(axis=(2, 3)) - ref["joint_GAP"].numpy()).max() <= 1e-5
    # the joint tokens depend on both sensors
    other_sar = model.forward(two_modal_batch(sar[::-1].copy(), optical)).features
    other_opt = model.forward(two_modal_batch(sar, optical[::-1].copy())).features
    assert np.abs(other_sar[::-1] - want).max() > 1e-3 and np.abs(other_opt[::-1] - want).max() > 1e-3


def test_key_layout(base_container, tmp_path):
    model_with("croma_base", base_container, tmp_path).load()  # the published container
    flat = {f"{p}.{k}": v for p, sd in base_container.items() for k, v in sd.items()}
    with pytest.raises(WeightsError, match=r"parts \['s1_encoder', .*'joint_encoder'\] are missing; "
                                           r"its top-level keys are e\.g\. \['joint_encoder\.layers"):
        model_with("croma_base", flat, tmp_path).load()
    cut = dict(base_container, joint_encoder={k: v for k, v in base_container["joint_encoder"].items()
                                              if not k.startswith("layers.5.")})
    with pytest.raises(WeightsError, match=r"part 'joint_encoder' does not have the published key layout.*"
                                           r"missing e\.g\. \['layers\.5\."):
        model_with("croma_base", cut, tmp_path).load()
    nested = dict(base_container, s2_encoder={"model": base_container["s2_encoder"]})
    with pytest.raises(WeightsError, match=r"\['s2_encoder'\] is not a plain state dict"):
        model_with("croma_base", nested, tmp_path).load()
    # croma_large: TorchGeo's large parts pass eoembed's check, base's parts do not
    with torch.device("meta"):
        expected = create("croma_large").build()  # eoembed's network for croma_large
        torchgeo_large = tg_croma.croma_large(weights=None)
    for part in PARTS:
        check_keys(getattr(expected, part).state_dict(), getattr(torchgeo_large, part).state_dict(), set(),
                   f"croma_large {part}", LAYOUT)
    n_missing = len(torchgeo_large.s2_encoder.state_dict()) - len(base_container["s2_encoder"])  # layers 12..23
    with pytest.raises(WeightsError, match=rf"{n_missing} missing e\.g\. \['transformer\.layers\.12\..*"
                                           r"linear_input\.bias: \(768,\) != \(1024,\)"):
        check_keys(expected.s2_encoder.state_dict(), base_container["s2_encoder"], set(), "croma_large", LAYOUT)


def test_validation_takes_an_s2_sensor_and_an_s1_sensor():
    from eoembed.validate import model_problems

    s2 = {"bands": list(L1C_BANDS), "scale_m": 10, "collection": "sentinel-2-l1c"}  # L1C: B10 is not used
    s1 = {"collection": "sentinel-1-rtc", "bands": ["VV", "VH"], "scale_m": 10}
    cfg = {"sensors": {"s2": s2, "s1": s1}, "models": {"croma_base": {"sensor": "s2", "sensors": {"s1": "s1"}}}}
    assert model_problems(cfg) == []
    cfg["sensors"]["s1"] = dict(s1, bands=["VV"])
    assert model_problems(cfg) == ["model 'croma_base', sensor 's1': bands=['VV'] lacks ['VH']; the model needs "
                                   "['VV', 'VH']"]
    cfg["models"]["croma_base"]["sensors"] = {}
    assert model_problems(cfg) == ["models.croma_base.sensors.s1=None: the model's 's1' input needs a sensor; "
                                   "defined: ['s1', 's2']"]
    cfg["models"]["croma_base"] = {"sensor": "s1", "sensors": {"s1": "s2"}}  # swapped: both refused by name
    problems = model_problems(cfg)
    assert len(problems) == 2 and "sensor 's1': collection='sentinel-1-rtc' is not accepted" in problems[0]
    assert "sensor 's2': collection='sentinel-2-l1c' is not accepted" in problems[1]


def framework_batch(model, comps: dict[str, Composite]) -> ReadyBatch:
    specs = {s.modality: s for s in model.inputs()}
    pieces, _, used = pieces_for(0, comps, model.inputs()[0], InputPrep())
    assert used == "resize" and len(pieces) == 1
    (_, batch), = list(batches(pieces, specs, 4))
    return batch


def s1_composite(linear: np.ndarray, grid) -> Composite:
    h, w = linear.shape[1:]
    return Composite(linear[None].astype(np.float32), np.ones((1, h, w), bool),
                     [(dt.date(2022, 6, 1), dt.date(2022, 7, 1))], ("VV", "VH"), grid, np.ones((h, w), bool),
                     0.0, "median", collection="sentinel-1-grd")


def readme_normalize(x: "torch.Tensor") -> "torch.Tensor":
    """CROMA README ``normalize`` (float path): per channel, mean +/- 2 std of the batch, clip [0, 1]."""
    out = []
    for c in range(x.shape[1]):
        lo = x[:, c].mean() - 2 * x[:, c].std()
        hi = x[:, c].mean() + 2 * x[:, c].std()
        out.append(torch.clip((x[:, c] - lo) / (hi - lo), 0, 1))
    return torch.stack(out, dim=1)


def test_s1_transform_is_croma_normalize_of_db_with_ssl4eo_statistics():
    model = create("croma_base")
    rng = np.random.default_rng(7)
    mean, std = tg_resnet._mean_s1, tg_resnet._std_s1  # SSL4EO-S12 S1, dB
    z = rng.normal(0, 1, (2, 120, 120))
    z = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), ddof=1, keepdims=True)
    db = z * np.array(std)[:, None, None] + np.array(mean)[:, None, None]  # batch statistics = SSL4EO's
    linear = 10 ** (db / 10)
    grid = grid_for(PointBuffer(5.6, 52.5, 600.0), 10.0)
    s2 = Composite(np.full((1, 12, 120, 120), 1000, np.float32), np.ones((1, 120, 120), bool),
                   [(dt.date(2022, 6, 1), dt.date(2022, 7, 1))], L2A_BANDS, grid, np.ones((120, 120), bool),
                   0.0, "median", collection="sentinel-2-l2a")
    batch = framework_batch(model, {"s2": s2, "s1": s1_composite(linear, grid)})
    sar, _ = model.network_input(batch)
    expected = readme_normalize(torch.from_numpy(db[None])).numpy()
    assert sar.shape == expected.shape == (1, 2, 120, 120)
    assert np.abs(sar - expected).max() <= 1e-6
    assert 0 < (sar == 0).mean() < 0.1 and 0 < (sar == 1).mean() < 0.1  # the clip acts on both sides
    # linear power is not what CROMA saw: without the dB transform the values would differ grossly
    assert np.abs(readme_normalize(torch.from_numpy(linear[None])).numpy() - sar).max() > 0.3


@pytest.mark.shared
def test_s2_preprocessing_equals_croma_normalisation_on_a_real_patch():
    dn12, lon, lat = patch_dn()
    model = create("croma_base")
    keep = [L1C_BANDS.index(b) for b in L2A_BANDS]  # TorchGeo's 13 L1C statistics without B10
    m = torch.tensor(tg_resnet._mean_s2)[keep][None, :, None, None]
    s = torch.tensor(tg_resnet._std_s2)[keep][None, :, None, None]

    def published(dn: np.ndarray) -> np.ndarray:
        x = tg_croma.CROMABase_Weights.CROMA_VIT.transforms(torch.from_numpy(dn[None].copy()).double())
        return torch.clip((x - (m - 2 * s)) / (4 * s), 0, 1).numpy()

    def network_s2(dn: np.ndarray) -> np.ndarray:
        comp = composite(dn, L2A_BANDS, lon, lat, "sentinel-2-l2a")
        linear = np.full((2, *dn.shape[1:]), 0.05)
        return model.network_input(framework_batch(model, {"s2": comp, "s1": s1_composite(linear, comp.grid)}))[1]

    crop = dn12[:, 68:188, 68:188]  # a 120 px ROI: resize is the identity
    got, want = network_s2(crop), published(crop)
    assert got.shape == want.shape == (1, 12, 120, 120)
    assert np.abs(got - want).max() <= 1e-6
    assert 0.01 < np.std(got) and (got > 0).mean() > 0.5
    from torchvision.transforms import v2  # a 256 px ROI is resized whole (bilinear, anti-aliased)

    whole = network_s2(dn12)
    assert np.abs(whole - published(v2.Resize((120, 120))(torch.from_numpy(dn12.copy())).numpy())).max() <= 1e-5


@pytest.mark.slow
def test_workflow_runs_croma_on_generated_s1_and_s2(base_container, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from workflow_helpers import SITES, add_s1, make_imagery, make_rois, snakemake, write_config
    from zoo_helpers import roi_grid_path

    sites = SITES[:2]
    sample = tmp_path / "sample"
    index = make_imagery(sample, sites=sites, dates=2)
    both = add_s1(sample, index, tmp_path / "s1")  # one S1 scene per S2 scene, linear power, same grid

    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    name = get_card("croma_base").weights[0].name
    path, sha = write(base_container, tmp_path / name)
    config = write_config(work, both, rois, models=("croma_base",), benchmark=False)
    cfg = yaml.safe_load(config.read_text())
    cfg["sensors"]["s1"] = {"collection": "sentinel-1-grd", "bands": ["VV", "VH"], "scale_m": 10}
    cfg["models"] = {"croma_base": {"sensor": "s2", "sensors": {"s1": "s1"}, "options": {"batch_size": 4},
                                    "weights": {name: path}, "weights_sha256": {name: sha}}}
    cfg["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) <= {"ok", "partial"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/croma_base/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 768) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    rid = sorted(gdf["roi_id"])[0]
    values = open_grid(roi_grid_path(work, "croma_base", rid), rid)["embedding"].values
    assert values.shape[0] == 768 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
