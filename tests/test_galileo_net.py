"""Tests for the self-written Galileo encoder against the published nano checkpoint and oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eoembed.models.galileo_net import (
    ARCH,
    INPUT_KEYS,
    SPACE_TIME_BANDS,
    SPACE_TIME_GROUPS,
    GalileoEncoder,
    encode_pooled,
    encoder_from_state_dict,
    load_normalization,
    pack_inputs,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = SHARED / "weights" / "galileo_nano" / "encoder.pt"
NORM_JSON = SHARED / "weights" / "galileo_nano" / "normalization.json"
REFERENCE = SHARED / "reference" / "galileo_nano_encoder_vectors.npz"
GROUP_INDEX = {name: i for i, name in enumerate(SPACE_TIME_GROUPS)}


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared Galileo data not available: {path}")
    return path


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return torch.load(_require(WEIGHTS), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def nano(state_dict: dict[str, torch.Tensor]) -> GalileoEncoder:
    torch.set_num_threads(1)
    return encoder_from_state_dict(state_dict, "nano")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(_require(REFERENCE)) as data:
        return {k: data[k] for k in data.files}


def _torch_inputs(ref: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(ref[k]).long() if k == "months" else torch.as_tensor(ref[k]).float()
            for k in INPUT_KEYS}


@pytest.mark.shared
def test_strict_load_real_checkpoint(state_dict: dict[str, torch.Tensor], nano: GalileoEncoder) -> None:
    assert set(nano.state_dict()) == set(state_dict)
    assert sum(v.numel() for v in state_dict.values()) == 1_037_856
    for key, value in state_dict.items():
        assert torch.equal(nano.state_dict()[key], value), key


@pytest.mark.shared
def test_tampered_state_dict_rejected(state_dict: dict[str, torch.Tensor]) -> None:
    missing = dict(state_dict)
    missing.pop("blocks.2.attn.k.weight")
    with pytest.raises(ValueError, match=r"blocks\.2\.attn\.k\.weight"):
        encoder_from_state_dict(missing, "nano")
    reshaped = dict(state_dict)
    reshaped["space_time_embed.S2_RGB.proj.weight"] = torch.zeros(128, 3, 4, 4)
    with pytest.raises(ValueError, match=r"space_time_embed\.S2_RGB\.proj\.weight"):
        encoder_from_state_dict(reshaped, "nano")
    extra = dict(state_dict, **{"decoder.mask_token": torch.zeros(128)})
    with pytest.raises(ValueError, match=r"decoder\.mask_token"):
        encoder_from_state_dict(extra, "nano")
    with pytest.raises(ValueError, match="shape mismatches"):
        encoder_from_state_dict(state_dict, "tiny")


@pytest.mark.shared
@pytest.mark.parametrize("patch_size", [2, 4, 8])
def test_pooled_matches_reference(
    nano: GalileoEncoder, reference: dict[str, np.ndarray], patch_size: int
) -> None:
    inputs = {k: reference[k] for k in INPUT_KEYS}
    pooled = encode_pooled(nano, inputs, patch_size, batch_size=4)
    diff = float(np.abs(pooled - reference[f"pooled_patch{patch_size}"]).max())
    print(f"Galileo nano pooled, patch {patch_size}: max abs diff {diff:.3e}")
    assert pooled.shape == (4, 128)
    assert diff <= 1e-4


@pytest.mark.shared
@pytest.mark.parametrize("patch_size", [2, 4, 8])
def test_token_grid_shape_and_mean(
    nano: GalileoEncoder, reference: dict[str, np.ndarray], patch_size: int
) -> None:
    inputs = _torch_inputs(reference)
    with torch.no_grad():
        grid = nano.token_grid(**inputs, patch_size=patch_size)
        pooled = nano.pooled(**inputs, patch_size=patch_size)
    side = 8 // patch_size
    assert grid.shape == (4, side, side, 128)
    # pooled == mean of the grid holds when only space-time tokens are unmasked and every
    # patch location has the same number of unmasked tokens -- true for this oracle.
    s_t_m = reference["s_t_m"][:, ::patch_size, ::patch_size]
    assert reference["sp_m"].min() == 1 and reference["t_m"].min() == 1 and reference["st_m"].min() == 1
    assert (s_t_m == s_t_m[:, :1, :1]).all()
    diff = (grid.mean(dim=(1, 2)) - pooled).abs().max().item()
    print(f"patch {patch_size}: |mean(token_grid) - pooled| = {diff:.3e}")
    assert diff <= 1e-5


@pytest.mark.shared
def test_masked_values_do_not_matter(nano: GalileoEncoder, reference: dict[str, np.ndarray]) -> None:
    inputs = _torch_inputs(reference)
    altered = dict(inputs)
    altered["s_t_x"] = inputs["s_t_x"].clone()
    altered["s_t_x"][..., SPACE_TIME_GROUPS["S1"]] = 1e3  # S1 is masked in the oracle
    altered["sp_x"] = torch.full_like(inputs["sp_x"], -7.0)
    with torch.no_grad():
        a, b = nano.pooled(**inputs, patch_size=4), nano.pooled(**altered, patch_size=4)
    assert torch.equal(a, b)


def _fake_norm(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    raw = {"total_n": 1, "sampled_n": 1}
    for n in (13, 16, 6, 18):
        raw[str(n)] = {"mean": rng.uniform(1, 100, n).tolist(), "std": rng.uniform(1, 10, n).tolist()}
    path = tmp_path / "normalization.json"
    path.write_text(json.dumps(raw))
    return {"raw": raw, "norm": load_normalization(path)}


def test_load_normalization_published_formula(tmp_path: Path) -> None:
    fake = _fake_norm(tmp_path)
    st, mean, std = fake["norm"]["space_time"], fake["raw"]["13"]["mean"], fake["raw"]["13"]["std"]
    assert st["bands"] == SPACE_TIME_BANDS
    for i in range(12):  # S1 and S2: (x - (mean - 2 std)) / (4 std)
        assert st["shift"][i] == pytest.approx(mean[i] - 2 * std[i])
        assert st["div"][i] == pytest.approx(4 * std[i])
    assert (st["shift"][12], st["div"][12]) == (0.0, 1.0)  # NDVI left raw
    assert fake["norm"]["space"]["div"][2] == 1.0  # Dynamic World keeps its fixed constant


def test_pack_inputs_masks_and_ndvi(tmp_path: Path) -> None:
    norm = _fake_norm(tmp_path)["norm"]
    b, h, w, t = 2, 4, 4, 3
    rng = np.random.default_rng(1)
    bands = ["B02", "B03", "B04", "B08"]
    s2 = rng.uniform(100, 5000, (b, h, w, t, len(bands)))
    s2[0, 0, 0, 0] = [500.0, 600.0, 1000.0, 3000.0]  # NDVI = 2000 / 4000 = 0.5
    s2[0, 0, 1, 0, 2:] = 0.0  # B4 + B8 == 0 -> NDVI 0
    s2[1, 2, 3, 1, 0] = np.nan  # missing B2 -> RGB group masked there
    out = pack_inputs(s2, bands, np.array([0, 5, 11]), norm)
    x, m = out["s_t_x"], out["s_t_m"]
    ndvi = SPACE_TIME_BANDS.index("NDVI")
    assert x[0, 0, 0, 0, ndvi] == pytest.approx(0.5)
    assert x[0, 0, 1, 0, ndvi] == 0.0
    red, nir = s2[1, 1, 1, 2, 2], s2[1, 1, 1, 2, 3]
    assert x[1, 1, 1, 2, ndvi] == pytest.approx((nir - red) / (nir + red), rel=1e-6)
    i_b2 = SPACE_TIME_BANDS.index("B2")
    shift, div = norm["space_time"]["shift"][i_b2], norm["space_time"]["div"][i_b2]
    assert x[1, 0, 0, 0, i_b2] == pytest.approx((s2[1, 0, 0, 0, 0] - shift) / div, rel=1e-5)
    # unsupplied groups are masked everywhere, supplied ones only where data is missing
    for name in ("S1", "S2_Red_Edge", "S2_NIR_20m", "S2_SWIR"):
        assert m[..., GROUP_INDEX[name]].min() == 1, name
    rgb = m[..., GROUP_INDEX["S2_RGB"]]
    assert rgb[1, 2, 3, 1] == 1 and rgb.sum() == 1
    assert m[..., GROUP_INDEX["S2_NIR_10m"]].max() == 0 and m[..., GROUP_INDEX["NDVI"]].max() == 0
    assert x[1, 2, 3, 1, i_b2] == 0.0 and np.isfinite(x).all()
    for key in ("sp_m", "t_m", "st_m"):
        assert out[key].min() == 1
    for key in ("sp_x", "t_x", "st_x"):
        assert not out[key].any()
    assert out["months"].shape == (b, t) and out["months"][1].tolist() == [0, 5, 11]
    with pytest.raises(ValueError):
        pack_inputs(s2, ["B02", "B03", "B04", "red"], np.zeros(t), norm)


@pytest.mark.shared
def test_nan_pixel_masks_its_whole_patch(nano: GalileoEncoder) -> None:
    norm = load_normalization(_require(NORM_JSON))
    rng = np.random.default_rng(2)
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    s2 = rng.uniform(200, 4000, (1, 8, 8, 2, len(bands)))
    with_nan, with_garbage = s2.copy(), s2.copy()
    with_nan[0, 5, 6, 1, 0] = np.nan  # one pixel of patch (1, 1) at p = 4
    with_garbage[0, 4:8, 4:8, 1, :2] = rng.uniform(0, 10000, (4, 4, 2))  # B2, B3 only
    a = pack_inputs(with_nan, bands, np.array([3, 4]), norm)
    b = pack_inputs(with_garbage, bands, np.array([3, 4]), norm)
    b["s_t_m"][0, 4:8, 4:8, 1, GROUP_INDEX["S2_RGB"]] = 1  # same token masked explicitly
    ea, eb = encode_pooled(nano, a, 4), encode_pooled(nano, b, 4)
    assert np.isfinite(ea).all()
    np.testing.assert_allclose(ea, eb, atol=1e-6)


def test_other_sizes_build() -> None:
    torch.manual_seed(0)
    tiny = GalileoEncoder(**ARCH["tiny"]).eval()
    inputs = {
        "s_t_x": torch.randn(1, 4, 4, 2, 13), "sp_x": torch.zeros(1, 4, 4, 16), "t_x": torch.zeros(1, 2, 6),
        "st_x": torch.zeros(1, 18), "s_t_m": torch.zeros(1, 4, 4, 2, 7), "sp_m": torch.ones(1, 4, 4, 3),
        "t_m": torch.ones(1, 2, 3), "st_m": torch.ones(1, 4), "months": torch.tensor([[0, 6]]),
    }
    with torch.no_grad():
        assert tiny.pooled(**inputs, patch_size=2).shape == (1, 192)
        assert tiny.token_grid(**inputs, patch_size=2).shape == (1, 2, 2, 192)
    with torch.device("meta"):
        base = GalileoEncoder(**ARCH["base"])
    assert base.pos_embed.shape == (24, 192) and len(base.blocks) == 12
    assert set(base.state_dict()) == set(tiny.state_dict())
