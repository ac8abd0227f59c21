"""Sentinel-1 variants of TerraFM and THOR (``terrafm_<size>_s1``, ``thor_<size>_s1``).

1. TerraFM: the oracle's S1 input (the original's ``conv2d_s1`` path), turned back into linear power
   through the declared dB z-score, goes through the Embedder as S1 stack values and reproduces the
   original's S1 grid (and the grid mean as pooled) (<= 1e-4). THOR: its oracle has no S1 output;
   the S1 variant loads the oracle's state dict in the published container, reads only THOR's S1
   convs (S2 convs zeroed: same output; S1:VV conv changed: different output), equals the network
   on the independently normalised input, and a file without the S1 convs is refused by key;
2. synthetic linear power through the framework equals the declared published transform (THOR's
   ``THOR_NORMALIZATION_PARAMS`` in dB; TerraFM: eoembed's default, SSL4EO-S12 dB statistics as
   TorchGeo publishes them) (<= 1e-6), invalid pixels 0 and flagged;
3. thor_tiny_s1 runs through snakemake on generated S1 COGs with random weights (pooled + grid).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eoembed.grid import grid_for
from eoembed.items import Composite
from eoembed.models.nets import thor
from eoembed.models.nets.common import StateDictError
from eoembed.models.registry import create, get_card
from eoembed.prep import InputPrep, batches, pieces_for
from eoembed.specs import OutputSpec, PointBuffer

#: thor_terratorch_ext THOR_NORMALIZATION_PARAMS "S1:IW-VV" / "S1:IW-VH" (dB), typed from the source
THOR_S1 = {"VV": (-12.9850, 5.0062), "VH": (-20.6958, 5.8688)}


def _terrafm_s1_stats() -> dict[str, tuple[float, float]]:
    """SSL4EO-S12 S1 dB statistics as TorchGeo publishes them (TerraFM publishes none)."""
    tg = pytest.importorskip("torchgeo.models.resnet")
    return {b: (float(m), float(s)) for b, m, s in zip(("VV", "VH"), tg._mean_s1, tg._std_s1)}


def s1_composite(linear: np.ndarray, valid: np.ndarray | None = None,
                 collection: str = "sentinel-1-rtc") -> Composite:
    """``(2, H, W)`` VV, VH linear power as one S1 frame on an H x H grid."""
    _, h, w = linear.shape
    grid = grid_for(PointBuffer(9.5, 45.5, h * 5.0), 10.0)
    assert (grid.height, grid.width) == (h, w)
    ok = np.ones((1, h, w), bool) if valid is None else valid[None]
    return Composite(linear[None].astype(np.float32), ok, [(dt.date(2022, 6, 1), dt.date(2022, 7, 1))],
                     ("VV", "VH"), grid, np.ones((h, w), bool), 0.0, "median", collection=collection)


def z_db(linear: np.ndarray, stats: dict[str, tuple[float, float]]) -> np.ndarray:
    """The published transform: ``(10 log10(x) - mean) / std`` per band (VV, VH)."""
    m = np.array([stats[b][0] for b in ("VV", "VH")])[:, None, None]
    s = np.array([stats[b][1] for b in ("VV", "VH")])[:, None, None]
    return (10 * np.log10(linear) - m) / s


def _write(obj, path: Path) -> tuple[str, str]:
    torch.save(obj, path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def _model(mid: str, obj, tmp_path: Path, config: dict | None = None):
    name = get_card(mid).weights[0].name
    path, sha = _write(obj, tmp_path / name)
    model = create(mid, weights_paths={name: path}, weights_pins={name: sha})
    if config is not None:
        model.config = config
    return model


# ----------------------------------------------------------------- 1. oracle weights through the Embedder


@pytest.mark.shared
@torch.no_grad()
def test_terrafm_s1_oracle_input_through_the_embedder(tmp_path: Path) -> None:
    from test_zoo_terrafm import _config
    from zoo_oracle import Oracle

    o = Oracle("terrafm")
    stats = _terrafm_s1_stats()
    x = o.inp["s1"].numpy().astype(np.float64)  # (2, 2, 32, 32): the original's normalised S1 input
    m = np.array([stats["VV"][0], stats["VH"][0]])[None, :, None, None]
    s = np.array([stats["VV"][1], stats["VH"][1]])[None, :, None, None]
    linear = 10 ** ((x * s + m) / 10)  # the declared transform inverted: S1 stack values
    model = _model("terrafm_base_s1", {k: v.clone() for k, v in o.sd.items()}, tmp_path, _config(o.meta))
    assert model.inputs()[0].space.size == 32
    pooled, grid = model.embed_outputs([s1_composite(linear[i]) for i in range(2)],
                                       [OutputSpec.pooled(), OutputSpec.grid()])
    want = o.out["s1_grid"].numpy()  # (2, 32, 4, 4): the original's conv2d_s1 path, final-normed tokens
    assert np.abs(want).max() > 0.1 and np.abs(want[0] - want[1]).max() > 0.1
    for i in range(2):
        gdiff = float(np.abs(grid[i] - want[i]).max())
        pdiff = float(np.abs(pooled[i] - want[i].mean(axis=(1, 2))).max())
        print(f"terrafm_base_s1 item {i}: grid max abs diff {gdiff:.2e}, pooled {pdiff:.2e}")
        assert grid[i].shape == want[i].shape and gdiff <= 1e-4 and pdiff <= 1e-4
    # the S2 variant of the same file refuses S1 stack values (its input is the 12 S2 bands)
    s2 = _model("terrafm_base", {k: v.clone() for k, v in o.sd.items()}, tmp_path, _config(o.meta))
    with pytest.raises(Exception, match=r"needs bands \['B01'"):
        s2.embed_outputs([s1_composite(linear[0])], [OutputSpec.pooled()])
    with pytest.raises(Exception, match=r"options\.stem='l2a' is invalid: allowed null \(an S1 variant"):
        create("terrafm_base_s1", {"stem": "l2a"})


def _thor_container(sd: dict, drop: tuple[str, ...] = (), scale: dict[str, float] | None = None) -> dict:
    out = {}
    for k, v in sd.items():
        if any(d in k for d in drop):
            continue
        factor = next((f for p, f in (scale or {}).items() if p in k), 1.0)
        out["encoder." + k] = v.clone() * factor
    return out | {"encoder.decoder_embed.weight": torch.zeros(2, 2)}  # a pretrain file's decoder part


@pytest.mark.shared
@torch.no_grad()
def test_thor_s1_reads_the_s1_convs_of_the_published_container(tmp_path: Path) -> None:
    from test_zoo_thor import _config
    from zoo_oracle import Oracle

    o = Oracle("thor")
    cfg = _config(o.meta)  # ground cover 480 m: 48 px of S1 at 10 m, 6 x 6 tokens
    assert {f"ind_patch_embed.patch_embed.S1:{p}.weight" for p in ("VV", "VH")} <= set(o.sd)
    rng = np.random.default_rng(5)
    linear = 10 ** (rng.normal(-15.0, 5.0, (2, 2, 48, 48)) / 10)
    comps = [s1_composite(linear[i], collection="sentinel-1-grd") for i in range(2)]

    def run(container: dict) -> tuple[np.ndarray, np.ndarray]:
        pooled, grid = _model("thor_tiny_s1", container, tmp_path, cfg).embed_outputs(
            comps, [OutputSpec.pooled(), OutputSpec.grid()])
        return np.stack(pooled), np.stack(grid)

    pooled, grid = run(_thor_container(o.sd))
    z = torch.as_tensor(np.stack([z_db(item, THOR_S1) for item in linear]), dtype=torch.float32)
    net = thor.load(cfg, o.sd).eval()
    want = net.forward_bands({"S1:IW-VV": z[:, [0]], "S1:IW-VH": z[:, [1]]})["grid"].numpy()
    assert want.shape == grid.shape == (2, 48, 6, 6) and np.abs(want).max() > 0.1
    diff = float(np.abs(grid - want).max())
    print(f"thor_tiny_s1: grid max abs diff {diff:.2e}")
    assert diff <= 1e-5 and float(np.abs(pooled - want.mean(axis=(2, 3))).max()) <= 1e-5
    # only THOR's S1 convs are read: S2 convs zeroed -> same output; the VV conv changed -> another
    assert np.abs(run(_thor_container(o.sd, scale={"patch_embed.S2:": 0.0}))[1] - grid).max() <= 1e-6
    assert np.abs(run(_thor_container(o.sd, scale={"patch_embed.S1:VV.weight": 2.0}))[1] - grid).max() > 1e-3
    # a file without the S1 convs is refused, naming the keys
    with pytest.raises(StateDictError, match=r"missing keys \['ind_patch_embed\.patch_embed\.S1:VH\.bias', "
                                             r"'ind_patch_embed\.patch_embed\.S1:VH\.weight'\]"):
        run(_thor_container(o.sd, drop=("patch_embed.S1:VH.",)))


# ----------------------------------------------------------------- 2. the declared transform


@pytest.mark.parametrize("mid", ["terrafm_base_s1", "thor_base_s1"])
def test_s1_batch_equals_the_declared_published_transform(mid: str) -> None:
    stats = THOR_S1 if mid.startswith("thor") else _terrafm_s1_stats()
    model = create(mid)
    spec = model.inputs()[0]
    assert spec.modality == "s1" and spec.bands == ("VV", "VH") and spec.transform == "db"
    size = spec.space.size
    rng = np.random.default_rng(11)
    linear = 10 ** (rng.normal(-15.0, 6.0, (2, size, size)) / 10)  # linear power, as the S1 collections
    valid = np.ones((size, size), bool)
    valid[3, 5] = False  # one invalid pixel
    pieces, _, used = pieces_for(0, {"s1": s1_composite(linear, valid)}, spec, InputPrep())
    assert used == "resize" and len(pieces) == 1  # ROI at the model's size: resize is the identity
    [(_, batch)] = list(batches(pieces, {"s1": spec}, 4))
    got = model.model_input(batch).numpy()[0]
    want = z_db(linear, stats)
    want[:, 3, 5] = 0.0  # invalid pixels hold 0 and are flagged
    assert got.shape == want.shape == (2, size, size)
    assert float(np.abs(got - want).max()) <= 1e-6
    assert batch.mask["s1"][0, 0, 3, 5] and batch.mask["s1"].sum() == 1
    assert 0.5 < want.std() < 2.0  # a real spread of z-scores, not a constant
    m, s = (np.array([stats[b][i] for b in ("VV", "VH")])[:, None, None] for i in (0, 1))
    assert np.abs((linear - m) / s - got).max() > 1.0  # the dB step matters: linear power differs grossly


# ----------------------------------------------------------------- 3. the workflow


def _random_thor(size: str) -> dict:
    from zoo_helpers import random_state

    cfg = {**thor.PUBLISHED[size], **thor.PUBLISHED_COMMON}
    net = thor.build(cfg)
    keep = {k for k in net.state_dict() if k == "encoder_slopes" or k.startswith("band_embed.")}
    sd = random_state(net, seed=3) | {k: net.state_dict()[k] for k in keep}  # ALiBi slopes, sin-cos groups
    return {"encoder." + k: v for k, v in sd.items()} | {"encoder.decoder_embed.weight": torch.zeros(2, 2)}


@pytest.mark.slow
def test_workflow_runs_thor_tiny_s1_on_generated_s1(tmp_path: Path) -> None:
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from workflow_helpers import SITES, add_s1, make_imagery, make_rois, snakemake, write_config
    from zoo_helpers import roi_grid_path

    sites = SITES[:2]
    sample = tmp_path / "sample"
    index = make_imagery(sample, sites=sites, dates=2)
    both = add_s1(sample, index, tmp_path / "s1", collection="sentinel-1-grd")
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    name = get_card("thor_tiny_s1").weights[0].name
    path, sha = _write(_random_thor("tiny"), tmp_path / name)
    config = write_config(work, both, rois, models=("thor_tiny_s1",), benchmark=False)
    cfg = yaml.safe_load(config.read_text())
    cfg["sensors"] = {"s1": {"collection": "sentinel-1-grd", "bands": ["VV", "VH"], "scale_m": 10}}
    cfg["models"] = {"thor_tiny_s1": {"sensor": "s1", "weights": {name: path}, "weights_sha256": {name: sha}}}
    cfg["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) == {"ok"}, manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/thor_tiny_s1/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    n = len(pd.read_csv(rois, sep="\t"))
    assert emb.shape == (n, 192) and np.isfinite(emb).all()
    assert len({e.tobytes() for e in emb}) == n, "two ROIs embedded identically"
    rid = sorted(gdf["roi_id"])[0]
    values = open_grid(roi_grid_path(work, "thor_tiny_s1", rid), rid)["embedding"].values
    assert values.shape[0] == 192 and np.isfinite(values).all() and values.shape[1] * values.shape[2] > 1
