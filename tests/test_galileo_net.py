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


def test_card_normalisation_is_the_published_one() -> None:
    """The Galileo card's declared constants are normalization.json's, with the training formula."""
    from eoembed.models.galileo import S2_INPUT

    norm = load_normalization(_require(NORM_JSON))["space_time"]
    for band, bn in zip(S2_INPUT.bands, S2_INPUT.norm):
        i = SPACE_TIME_BANDS.index("B" + str(int(band[1:])) if band[1:].isdigit() else band)
        assert bn.shift == pytest.approx(norm["shift"][i], rel=1e-12)
        assert bn.div == pytest.approx(norm["div"][i], rel=1e-12)
    ndvi = S2_INPUT.derived[0]
    assert ndvi.stage == "raw" and (ndvi.norm.shift, ndvi.norm.div) == (0.0, 1.0)


def _comp(data: np.ndarray, valid: np.ndarray):
    import datetime as dt

    from eoembed.collections import S2_BANDS
    from eoembed.grid import grid_for
    from eoembed.items import Composite
    from eoembed.specs import PointBuffer

    t, _, h, w = data.shape
    bounds = [(dt.date(2022, 3 + i, 1), dt.date(2022, 4 + i, 1)) for i in range(t)]
    return Composite(data.astype(np.float32), valid, bounds, S2_BANDS, grid_for(PointBuffer(5.0, 52.0, h * 5), 10),
                     np.ones((h, w), bool), 0.0, "median")


@pytest.mark.shared
def test_invalid_pixel_masks_its_whole_patch() -> None:
    """One invalid pixel hides its whole patch token: garbage anywhere in that patch changes nothing."""
    from eoembed.models.registry import create
    from eoembed.specs import OutputSpec

    model = create("galileo_nano", {"patch_size": 4}, weights_paths={"encoder.pt": str(_require(WEIGHTS))})
    rng = np.random.default_rng(2)
    data = rng.uniform(200, 4000, (2, 12, 8, 8))
    valid = np.ones((2, 8, 8), bool)
    valid[1, 5, 6] = False  # one pixel of patch (1, 1) in frame 1
    garbage = data.copy()
    garbage[1, :, 4:8, 4:8] = rng.uniform(0, 10000, (12, 4, 4))
    a = model.embed_batch([_comp(data, valid)], OutputSpec.pooled())[0]
    b = model.embed_batch([_comp(garbage, valid)], OutputSpec.pooled())[0]
    c = model.embed_batch([_comp(garbage, np.ones_like(valid))], OutputSpec.pooled())[0]
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a - c).max() > 1e-3  # the garbage does matter once the patch is not masked


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
