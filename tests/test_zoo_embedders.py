"""The research-model Embedders end to end: real Sentinel-2 DN -> eoembed's framework -> network.

For every S2 model of :mod:`eoembed.models.zoo`'s family:

1. preprocessing: the network input eoembed builds from a real shared S2 L2A patch (declared bands,
   ``BandNorm`` s, time tokens, the model's own ``model_input``) equals the published transform,
   computed here independently from the raw DN with the published constants (<= 1e-6);
2. weights + embedding: the oracle's seeded state dict (original key layout) written to a file in
   the published container is loaded by the Embedder through the sha256-checked path, and its
   pooled and grid outputs equal the network (loaded directly from the oracle state dict) run on
   the independently transformed input (<= 1e-5).

SatVision-TOA (MODIS) has no S2 input: its oracle input itself goes through the Embedder and must
reproduce the original's output. Skips without ../shared.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from test_zoo_agrifm import _config as agrifm_cfg
from test_zoo_anysat import _config as anysat_cfg
from test_zoo_fomo import _config as fomo_cfg
from test_zoo_satvision_toa import _config as satvision_cfg
from test_zoo_terrafm import _config as terrafm_cfg
from test_zoo_thor import _config as thor_cfg
from test_zoo_wildsat import _config as wildsat_cfg
from zoo_oracle import ZOO, Oracle

from eoembed.grid import grid_for
from eoembed.items import Composite
from eoembed.models.nets import agrifm, anysat, fomo, satmae, satmaepp, terrafm, thor, wildsat
from eoembed.models.registry import create, get_card
from eoembed.prep import InputPrep, batches, pieces_for
from eoembed.specs import OutputSpec, PointBuffer, TemporalSpec

PATCHES = ZOO.parents[1] / "imagery" / "s2_l2a_patches" / "images"
pytestmark = [pytest.mark.shared,
              pytest.mark.skipif(not PATCHES.is_dir() or not ZOO.is_dir(), reason="../shared/data absent")]
#: band order of the shared patches (B1..B12 without B10)
NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
RGB = ["B04", "B03", "B02"]
WINDOW = TemporalSpec.range("2021-01-01", "2022-01-01")


def _dn(size: int, frames: int = 1) -> np.ndarray:
    """(T, 12, size, size) raw DN: the top-left crop of the first ``frames`` shared patches."""
    out = []
    for f in sorted(PATCHES.glob("*.tif"))[:frames]:
        with rasterio.open(f) as src:
            assert src.count == 12
            out.append(src.read()[:, :size, :size].astype(np.float64))
    return np.stack(out)


def _composite(dn: np.ndarray, bands=tuple(NAMES), collection: str = "sentinel-2-l2a") -> Composite:
    t, _, h, w = dn.shape
    grid = grid_for(PointBuffer(9.5, 45.5, h * 5.0), 10.0)
    assert (grid.height, grid.width) == (h, w)
    return Composite(dn.astype(np.float32), np.ones((t, h, w), bool), WINDOW.frame_bounds(t), tuple(bands),
                     grid, np.ones((h, w), bool), 0.0, "median", collection=collection)


def _pick(dn: np.ndarray, bands: list[str]) -> np.ndarray:
    return dn[:, [NAMES.index(b) for b in bands]]


def _zscore(x: np.ndarray, mean, std) -> np.ndarray:
    return (x - np.asarray(mean)[None, :, None, None]) / np.asarray(std)[None, :, None, None]


def _fmow_sentinel(dn: np.ndarray) -> np.ndarray:
    idx = [satmae.FMOW_S2_13_BANDS.index(b.replace("B0", "B")) for b in S2_10]
    m, s = np.asarray(satmae.FMOW_S2_13_MEAN)[idx], np.asarray(satmae.FMOW_S2_13_STD)[idx]
    return _zscore(_pick(dn, S2_10), m - 2 * s, 4 * s)  # SentinelNormalize without clip/uint8


def _rgb_fmow(dn: np.ndarray) -> np.ndarray:  # 8-bit convention reflectance/0.3, ToTensor, Normalize
    return _zscore(_pick(dn, RGB) / 3000.0, (0.4182, 0.4215, 0.3991), (0.2877, 0.2754, 0.2764))


def _wildsat(dn: np.ndarray) -> np.ndarray:
    x = _pick(dn, RGB) / 3000.0
    x = x - x.min(axis=(1, 2, 3), keepdims=True)
    return x / np.maximum(x.max(axis=(1, 2, 3), keepdims=True), 1.0)


THOR_STATS = {"B02": (0.176620, 0.264520), "B03": (0.195923, 0.252949), "B04": (0.213948, 0.259180),
              "B05": (0.263378, 0.272771), "B06": (0.300818, 0.248175), "B07": (0.313144, 0.235432),
              "B08": (0.308133, 0.226434), "B8A": (0.320993, 0.223274), "B11": (0.221550, 0.171606),
              "B12": (0.175772, 0.156223)}
AGRIFM_MEAN = (4179.19, 4065.91, 3957.27, 5207.45, 4327.12, 4873.16, 5049.16, 5111.08, 3056.86, 2490.97)
AGRIFM_STD = (4041.52, 3691.00, 3629.33, 2973.52, 3569.73, 3085.92, 2937.56, 2806.04, 1808.30, 1694.20)

#: model id -> (frames, published transform (T, 12, H, W) DN -> (T, C, H, W) network input)
TRANSFORMS = {
    "satmae_rgb": (1, _rgb_fmow),
    "satmaepp_rgb": (1, _rgb_fmow),
    "satmae_group": (1, _fmow_sentinel),
    "satmaepp_s2": (1, _fmow_sentinel),
    "wildsat": (1, _wildsat),
    "terrafm_base": (1, lambda dn: dn / 10000.0),
    "fomo": (1, lambda dn: dn / 10000.0),
    "thor_base": (1, lambda dn: _zscore(_pick(dn, S2_10) / 1e4, *zip(*(THOR_STATS[b] for b in S2_10)))),
    "agrifm": (8, lambda dn: _zscore(_pick(dn, S2_10), AGRIFM_MEAN, AGRIFM_STD)),
    "anysat": (3, lambda dn: _pick(dn, S2_10) / 10000.0),
}


def _batch(model, comp: Composite):
    spec = model.inputs()[0]
    pieces, _, _ = pieces_for(0, {spec.modality: comp}, spec, model.input_prep)
    [(_, batch)] = list(batches(pieces, {spec.modality: spec}, 16))
    return batch


def _as_network_input(mid: str, x: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> the layout of ``model_input`` for one sample: (C, H, W) or (T, C, H, W)."""
    return x if mid in ("agrifm", "anysat") else x[0]


@pytest.mark.parametrize("mid", sorted(TRANSFORMS))
def test_framework_batch_equals_published_transform(mid: str) -> None:
    frames, transform = TRANSFORMS[mid]
    prep = InputPrep("pad") if mid == "thor_base" else None  # 288 px > the 256 px patches: pad, compare valid
    model = create(mid, input_prep=prep)
    spec = model.inputs()[0]
    size = min(spec.space.size if spec.space.kind == "fixed" else 64, 256)
    dn = _dn(size, frames)
    batch = _batch(model, _composite(dn))
    got = model.model_input(batch)
    if mid == "anysat":
        mids = [a + (b - a) / 2 for a, b in WINDOW.frame_bounds(frames)]
        assert got["s2_dates"].tolist() == [[d.timetuple().tm_yday - 1 for d in mids]]
        got = got["s2"]
    got = got.cpu().numpy()[0][..., :size, :size]
    want = _as_network_input(mid, transform(dn))
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    print(f"{mid}: max abs diff {diff:.2e} over {want.size} values ({want.min():.2f}..{want.max():.2f})")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if mid != "wildsat":  # a real spread of values, not a constant
        assert want.std() > 0.05


# ---------------------------------------------------------------- oracle weights through the Embedder


def _satmae_cfg(name: str) -> dict:
    keys = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
            "channel_embed", "channel_groups")
    return {k: v for k, v in Oracle(name).meta["constructor_kwargs_shrunk"].items() if k in keys}


def _wild_container(sd):
    return {"satellite_state_dict": {wildsat.CHECKPOINT_PREFIX + k: v for k, v in sd.items()}}


def _anysat_ref(net, x, frames):
    mids = [a + (b - a) / 2 for a, b in WINDOW.frame_bounds(frames)]
    dates = torch.tensor([[d.timetuple().tm_yday - 1 for d in mids]])
    return net.forward_tokens({"s2": x[None], "s2_dates": dates}, patch_size=20)["grid"]


def _grid(net, x, t):
    return net.forward_tokens(x[0][None])["grid"]


def _no_pp_head(sd):  # the SatMAE pretrain file: SatMAE++'s multi-scale head is not in it
    return {"model": {k: v for k, v in sd.items() if not k.startswith(("proj_up_", "up_block"))}}


def _thor_container(sd):
    return {"encoder." + k: v for k, v in sd.items()} | {"encoder.decoder_embed.weight": torch.zeros(2, 2)}


def _agrifm_container(sd):
    return {"module." + k.replace("patch_emd", "S2_patch_emd"): v for k, v in sd.items()}


FOMO_KEYS = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18]  # sentinel-2-b1..b9, b11, b12
#: model id -> (oracle, config(oracle), container(sd) -> file object, direct loader(cfg, sd),
#: reference(net, x, T))
EMBED = {
    "satmae_rgb": ("satmae_rgb", lambda o: _satmae_cfg("satmae_rgb"),
                   lambda sd: {"model": sd, "epoch": torch.tensor(1)}, satmae.load_rgb, _grid),
    "satmaepp_rgb": ("satmaepp_rgb", lambda o: _satmae_cfg("satmaepp_rgb"), lambda sd: {"model": sd},
                     lambda c, sd: satmaepp.load("rgb", c, sd), _grid),
    # the SatMAE pretrain file has the MAE group layout of the satmaepp_s2 oracle, minus SatMAE++'s head
    "satmae_group": ("satmaepp_s2", lambda o: _satmae_cfg("satmaepp_s2"), _no_pp_head,
                     lambda c, sd: satmaepp.load("s2", c, sd), _grid),
    "satmaepp_s2": ("satmaepp_s2", lambda o: _satmae_cfg("satmaepp_s2"), lambda sd: {"model": sd},
                    lambda c, sd: satmaepp.load("s2", c, sd), _grid),
    "wildsat": ("wildsat", lambda o: wildsat_cfg(o.meta), _wild_container, wildsat.load,
                lambda n, x, t: n.forward_tokens(x[0][None])["image"][:, :, None, None]),
    "terrafm_base": ("terrafm", lambda o: terrafm_cfg(o.meta), dict, terrafm.load, _grid),
    "fomo": ("fomo", lambda o: fomo_cfg(o.meta), dict, fomo.load,
             lambda n, x, t: n.forward_tokens(x[0][None], FOMO_KEYS)["grid"]),
    "thor_base": ("thor", lambda o: thor_cfg(o.meta), _thor_container, thor.load, _grid),
    "agrifm": ("agrifm", lambda o: agrifm_cfg(o.meta), _agrifm_container, agrifm.load,
               lambda n, x, t: n.forward_tokens(x[None])["grid"]),
    "anysat": ("anysat", lambda o: anysat_cfg(o.meta), lambda sd: {"state_dict": sd}, anysat.load,
               _anysat_ref),
}


def _write(tmp_path: Path, name: str, obj) -> tuple[Path, str]:
    path = tmp_path / name
    torch.save(obj, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _name(mid: str) -> str:
    return get_card(mid).weights[0].name


def _embed(mid: str, cfg: dict, path: Path, sha: str, comp):
    name = _name(mid)
    model = create(mid, weights_paths={name: str(path)}, weights_pins={name: sha})
    model.config = cfg
    pooled, grid = model.embed_outputs([comp], [OutputSpec.pooled(), OutputSpec.grid()])
    return model, pooled[0], grid[0]


@pytest.mark.parametrize("mid", sorted(EMBED))
@torch.no_grad()
def test_embedder_with_oracle_weights_in_published_container(mid: str, tmp_path: Path) -> None:
    oracle, config, container, load, reference = EMBED[mid]
    o = Oracle(oracle)
    cfg = config(o)
    sd = {k: v.clone() for k, v in o.sd.items()}
    path, sha = _write(tmp_path, "weights.pt", container(sd))
    frames, transform = TRANSFORMS[mid]
    probe = create(mid)
    probe.config = cfg
    spec = probe.inputs()[0]
    size = spec.space.size if spec.space.kind == "fixed" else 2 * spec.space.token_px
    dn = _dn(size, frames)
    model, pooled, grid = _embed(mid, cfg, path, sha, _composite(dn))
    net = load(cfg, o.sd)  # the network straight from the oracle's state dict
    want = reference(net.eval(), torch.as_tensor(transform(dn), dtype=torch.float32), frames)[0].numpy()
    assert grid.shape == want.shape, (grid.shape, want.shape)
    gdiff = float(np.abs(grid - want).max())
    pdiff = float(np.abs(pooled - want.mean(axis=(1, 2))).max())
    print(f"{mid}: grid {want.shape} max abs diff {gdiff:.2e}; pooled {pdiff:.2e}")
    assert gdiff <= 1e-5 and pdiff <= 1e-5
    assert model.weights_sha256 == {_name(mid): sha}
    # a different file under the same pin is refused before unpickling
    torch.save({"tampered": torch.zeros(1)}, path)
    with pytest.raises(Exception, match="sha256"):
        _embed(mid, cfg, path, sha, _composite(dn))


#: pytorch-caney transforms/modis_toa_scale.py (commit c037d17): band -> (min K, max K) of the emissive channels
CANEY_EMISSIVE = {"B20": (223.1222, 352.7182), "B27": (178.9174, 261.2920), "B28": (204.3739, 282.5529),
                  "B29": (204.7677, 319.0373), "B31": (194.8686, 295.0209), "B32": (202.1759, 324.0677),
                  "B33": (201.3823, 321.5254), "B34": (203.3537, 285.9848)}


@torch.no_grad()
def test_satvision_toa_oracle_input_through_the_embedder(tmp_path: Path) -> None:
    """MODIS TOA as the modis-toa collection holds it (reflectance x 10000, kelvin) whose published
    scaling is the oracle's [0, 1] input: the Embedder reproduces the original's pooled output and
    token map through the framework's declared normalisation."""
    o = Oracle("satvision_toa")
    ckpt = {"module": {"encoder." + k: v for k, v in o.sd.items()} | {"decoder.0.weight": torch.zeros(3, 3)}}
    path, sha = _write(tmp_path, "mp_rank_00_model_states.pt", ckpt)
    x = o.inp["x"].numpy().astype(np.float64)  # (2, 14, 128, 128)
    model = create("satvision_toa", weights_paths={"mp_rank_00_model_states.pt": str(path)},
                   weights_pins={"mp_rank_00_model_states.pt": sha})
    model.config = satvision_cfg(o.meta)
    bands = model.inputs()[0].bands
    assert [int(b[1:]) for b in bands] == [1, 2, 3, 26, 6, 20, 7, 27, 28, 29, 31, 32, 33, 34]
    # the oracle's [0, 1] input back in modis-toa stack units (reflectance x 10000; kelvin), from
    # pytorch-caney's published MinMaxEmissiveScaleReflectance constants: the framework's declared
    # normalisation must turn them into exactly the oracle's input
    stack = x.copy()
    for i, b in enumerate(bands):
        lo_hi = CANEY_EMISSIVE.get(b)
        stack[:, i] = x[:, i] * (lo_hi[1] - lo_hi[0]) + lo_hi[0] if lo_hi else x[:, i] * 10000.0
    comps = [_composite(stack[i][None], bands, collection="modis-toa") for i in range(2)]
    pooled, grid = model.embed_outputs(comps, [OutputSpec.pooled(), OutputSpec.grid()])
    want = o.out["pooled"].numpy()
    diff = max(float(np.abs(pooled[i] - want[i]).max()) for i in range(2))
    tokens = o.out["tokens"].numpy()  # (2, 16, C) row-major 4 x 4
    gdiff = max(float(np.abs(grid[i].reshape(grid[i].shape[0], -1).T - tokens[i]).max()) for i in range(2))
    print(f"satvision_toa: pooled max abs diff {diff:.2e}, grid {gdiff:.2e}")
    assert diff <= 1e-4 and gdiff <= 1e-4
