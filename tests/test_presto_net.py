"""Tests for the self-written Presto encoder against the real checkpoint and reference vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eoembed.models.presto_net import (
    CHANNELS,
    DW_MISSING,
    PrestoEncoder,
    encode,
    encoder_from_state_dict,
    normalise_s2,
    pack_inputs,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHECKPOINT = SHARED_DATA / "weights" / "presto" / "default_model.pt"
REFERENCE = SHARED_DATA / "reference" / "presto_encoder_vectors.npz"
GROUPS = ("full", "s2only", "s2only_last3missing")
INPUT_NAMES = ("x", "mask", "dynamic_world", "latlons", "month")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not available: {path} is missing")
    return path


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return torch.load(_require(CHECKPOINT), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model(state_dict) -> PrestoEncoder:
    return encoder_from_state_dict(state_dict)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(_require(REFERENCE)) as data:
        return {k: data[k] for k in data.files}


def _inputs(reference: dict[str, np.ndarray], group: str) -> dict[str, np.ndarray]:
    return {name: reference[f"{group}__{name}"] for name in INPUT_NAMES}


def test_strict_load_uses_every_encoder_key(state_dict, model):
    encoder_keys = {k[len("encoder."):] for k in state_dict if k.startswith("encoder.")}
    assert len(encoder_keys) == 50
    assert set(model.state_dict()) == encoder_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_dict["encoder." + key]), key
    assert not model.training


def test_strict_load_rejects_missing_unexpected_and_reshaped(state_dict):
    without = {k: v for k, v in state_dict.items() if k != "encoder.blocks.1.attn.proj.bias"}
    with pytest.raises(ValueError, match="encoder.blocks.1.attn.proj.bias"):
        encoder_from_state_dict(without)

    extra = dict(state_dict, **{"encoder.extra.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="encoder.extra.weight"):
        encoder_from_state_dict(extra)

    reshaped = dict(state_dict)
    reshaped["encoder.dw_embed.weight"] = torch.zeros(11, 128)
    with pytest.raises(ValueError, match="encoder.dw_embed.weight"):
        encoder_from_state_dict(reshaped)

    with pytest.raises(ValueError):
        encoder_from_state_dict({k: v for k, v in state_dict.items() if k.startswith("decoder.")})


@pytest.mark.parametrize("group", GROUPS)
def test_reproduces_reference_embeddings(model, reference, group):
    got = encode(model, **_inputs(reference, group))
    expected = reference[f"{group}__embedding"]
    diff = float(np.abs(got - expected).max())
    print(f"presto {group}: max abs diff {diff:.3g}")
    assert got.shape == expected.shape == (expected.shape[0], 128)
    assert diff <= 1e-4


def test_mixed_masked_counts_match_one_at_a_time(model, reference):
    parts = [_inputs(reference, g) for g in GROUPS]
    batch = {name: np.concatenate([p[name] for p in parts]) for name in INPUT_NAMES}
    # extra variety: a few more masked timesteps / a partially masked group for some pixels
    batch["mask"][1, 4:7, 2:12] = 1
    batch["x"][1, 4:7, 2:12] = 0
    batch["mask"][7, 0, 14] = 1  # masks the single SRTM token (first timestep only counts)
    batch["dynamic_world"][8, :5] = DW_MISSING
    order = np.random.default_rng(0).permutation(len(batch["x"]))
    batch = {name: value[order] for name, value in batch.items()}

    counts = model.token_missing(torch.as_tensor(batch["mask"]),
                                 torch.as_tensor(batch["dynamic_world"])).sum(dim=1)
    assert len(torch.unique(counts)) >= 4

    grouped = encode(model, **batch, batch_size=3)
    with torch.no_grad():
        single = np.concatenate([
            model(*(torch.as_tensor(batch[name][i:i + 1]) for name in
                    ("x", "dynamic_world", "latlons", "mask", "month"))).numpy()
            for i in range(len(order))])
        padded = model(*(torch.as_tensor(batch[name]) for name in
                         ("x", "dynamic_world", "latlons", "mask", "month"))).numpy()
    assert np.abs(grouped - single).max() <= 1e-5
    assert np.abs(padded - single).max() <= 1e-5
    # rows come back in input order: compare with the reference vectors directly
    expected = np.concatenate([reference[f"{g}__embedding"] for g in GROUPS])[order]
    untouched = ~np.isin(order, [1, 7, 8])
    assert np.abs(grouped[untouched] - expected[untouched]).max() <= 1e-4


def test_pack_inputs_masks_nan_and_unsupplied_channels():
    bands = ["B02", "B03", "B04", "B08", "B09"]  # no red-edge, B8A or SWIR; B09 is ignored
    s2 = np.array([
        [[100, 200, 300, 2000, 7], [np.nan, 210, 310, 2100, 7], [120, 220, 320, 2200, 7]],
        [[500, 600, 700, 900, 7], [510, 610, 710, 910, 7], [0, 0, 0, 0, 7]],
    ], dtype=np.float64)
    packed = pack_inputs(s2, bands, months=np.array([11, 0, 1]),
                         latlons=np.array([[50.0, 4.0], [-10.0, 120.0]]))
    x, mask = packed["x"], packed["mask"]
    assert x.shape == mask.shape == (2, 3, 17)
    col = {name: i for i, name in enumerate(CHANNELS)}

    supplied = [col[b] for b in ("B2", "B3", "B4", "B8")]
    never = [c for c in range(17) if c not in supplied + [col["NDVI"]]]
    assert (mask[:, :, never] == 1).all()
    assert (x[:, :, never] == 0).all()
    expected_valid = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    for c in supplied + [col["NDVI"]]:
        np.testing.assert_array_equal(mask[:, :, c], (~expected_valid).astype(np.float32))
    assert (x[0, 1] == 0).all()

    np.testing.assert_allclose(x[0, 0, col["B4"]], 0.03, rtol=1e-6)
    np.testing.assert_allclose(x[1, 2, supplied], 0.0)
    red, nir = s2[..., 2], s2[..., 3]
    ndvi = np.zeros((2, 3))
    for i in range(2):
        for t in range(3):
            if expected_valid[i, t] and red[i, t] + nir[i, t] > 0:
                ndvi[i, t] = (nir[i, t] - red[i, t]) / (nir[i, t] + red[i, t])
    np.testing.assert_allclose(x[:, :, col["NDVI"]], ndvi, rtol=1e-6, atol=1e-7)
    assert packed["dynamic_world"].dtype == np.int64
    assert (packed["dynamic_world"] == DW_MISSING).all()
    np.testing.assert_array_equal(packed["month"], [11, 11])
    np.testing.assert_allclose(normalise_s2(np.array([10000, 2500])), [1.0, 0.25])


def test_pack_inputs_optional_sources_and_errors():
    s2 = np.full((1, 2, 2), 1000.0)
    packed = pack_inputs(s2, ["B2", "B8A"], months=np.array([[3, 4]]),
                         latlons=np.array([[0.0, 0.0]]),
                         s1=np.array([[[-10.0, -20.0], [np.nan, -15.0]]]),
                         era5=np.array([[[300.0, 0.003], [290.0, 0.0]]]),
                         srtm=np.array([[400.0, 5.0]]),
                         dynamic_world=np.array([[2, 9]]))
    x, mask = packed["x"], packed["mask"]
    np.testing.assert_allclose(x[0, :, 0:2], [[0.6, 0.2], [0.0, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(mask[0, :, 0:2], [[0, 0], [1, 0]])
    np.testing.assert_allclose(x[0, :, 12:14], [[(300 - 272.15) / 35, 0.1],
                                                [(290 - 272.15) / 35, 0.0]], rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 14:16], [[0.2, 0.1], [0.2, 0.1]], rtol=1e-6)
    assert (mask[0, :, 12:16] == 0).all()
    np.testing.assert_array_equal(mask[0, 0, 2:12], [0, 1, 1, 1, 1, 1, 1, 0, 1, 1])
    assert (mask[0, :, 16] == 1).all()  # no B4/B8 -> no NDVI
    np.testing.assert_array_equal(packed["dynamic_world"], [[2, 9]])
    np.testing.assert_array_equal(packed["month"], [3])
    with pytest.raises(ValueError):
        pack_inputs(s2, ["B2", "B8A"], months=np.array([3, 5]), latlons=np.array([[0.0, 0.0]]))


def test_pack_inputs_feeds_encoder(model):
    rng = np.random.default_rng(1)
    s2 = rng.uniform(0, 4000, size=(4, 12, 10))
    s2[0, 3] = np.nan
    s2[2, :6] = np.nan
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    packed = pack_inputs(s2, bands, months=np.arange(12), latlons=rng.uniform(-60, 60, (4, 2)))
    emb = encode(model, **packed)
    assert emb.shape == (4, 128) and np.isfinite(emb).all()
