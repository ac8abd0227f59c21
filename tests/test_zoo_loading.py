"""Strict original-key loading of every zoo network, without shared data (tiny configs, random weights).

Each network's own ``state_dict()`` must load back; a renamed key, a wrong shape or an unlisted extra
key must be rejected with a StateDictError that names the key; the explicit prefix handling too.
"""

from __future__ import annotations

import pytest
import torch

from eoembed.models.nets import agrifm, anysat, fomo, satmae, satmaepp, satvision_toa, terrafm, thor, wildsat
from eoembed.models.nets.common import StateDictError, prepare_state_dict, subtree

THOR_GROUPS = (
    ("S2:Red", "S2:Green", "S2:Blue", "S2:NIR"),
    ("S2:RE1", "S2:RE2", "S2:RE3", "S2:RE4", "S2:SWIR1", "S2:SWIR2"),
)

CASES = {
    "satmae_rgb": (
        satmae.build_rgb,
        satmae.load_rgb,
        dict(img_size=32, patch_size=16, in_chans=3, embed_dim=16, depth=1, num_heads=2),
    ),
    "satmae_group": (
        satmae.build_group,
        satmae.load_group,
        dict(
            img_size=16,
            patch_size=8,
            in_chans=10,
            embed_dim=24,
            channel_embed=8,
            depth=1,
            num_heads=2,
            channel_groups=satmae.FMOW_S2_GROUPS,
        ),
    ),
    "satmaepp_s2": (
        lambda c: satmaepp.build("s2", c),
        lambda c, sd: satmaepp.load("s2", c, sd),
        dict(
            img_size=16,
            patch_size=8,
            in_chans=10,
            embed_dim=24,
            channel_embed=8,
            depth=1,
            num_heads=2,
            channel_groups=satmae.FMOW_S2_GROUPS,
        ),
    ),
    "wildsat": (
        wildsat.build,
        wildsat.load,
        dict(
            image_size=32,
            patch_size=16,
            num_layers=1,
            num_heads=2,
            hidden_dim=16,
            mlp_dim=32,
            num_classes=10,
            num_outputs=8,
        ),
    ),
    "terrafm": (
        terrafm.build,
        terrafm.load,
        dict(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2),
    ),
    "fomo": (
        fomo.build,
        fomo.load,
        dict(image_size=32, patch_size=16, dim=16, depth=1, heads=2, dim_head=8, mlp_dim=32, num_classes=4),
    ),
    "thor": (
        thor.build,
        thor.load,
        dict(
            embed_dim=24,
            depth=1,
            num_heads=3,
            band_embed_dim=8,
            ground_cover=160,
            groups=THOR_GROUPS,
            channels=thor.CHANNELS,
        ),
    ),
    "satvision_toa": (
        satvision_toa.build,
        satvision_toa.load,
        dict(
            img_size=32,
            patch_size=4,
            in_chans=14,
            embed_dim=8,
            depths=(2, 2),
            num_heads=(1, 2),
            window_size=4,
            extra_norm_period=2,
        ),
    ),
    "agrifm": (
        agrifm.build,
        agrifm.load,
        dict(
            patch_size=(2, 2, 2),
            in_chans=10,
            embed_dim=8,
            depths=(2, 2),
            num_heads=(1, 2),
            window_size=(2, 3, 3),
        ),
    ),
    "anysat": (anysat.build, anysat.load, dict(embed_dim=32, depth=1, num_heads=2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_own_state_dict_round_trips_and_bad_ones_fail(name: str) -> None:
    build, load, cfg = CASES[name]
    sd = {k: v.clone() for k, v in build(cfg).state_dict().items()}
    assert set(load(cfg, sd).state_dict()) == set(sd)
    key = sorted(k for k, v in sd.items() if v.ndim >= 1 and v.is_floating_point())[-1]
    renamed = {(k + "_x" if k == key else k): v for k, v in sd.items()}
    with pytest.raises(
        StateDictError, match=rf"missing keys \[{key!r}\].*unexpected keys \[{key + '_x'!r}\]"
    ):
        load(cfg, renamed)
    grown = dict(sd, **{key: torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])})
    with pytest.raises(StateDictError, match=rf"{key}: got \({sd[key].shape[0] + 1}"):
        load(cfg, grown)


def test_prefix_and_subtree_are_explicit() -> None:
    sd = {"module.a": torch.zeros(1), "module.decoder_x": torch.zeros(1)}
    assert list(prepare_state_dict(sd, prefix="module.", ignore=("decoder_",))) == ["a"]
    with pytest.raises(StateDictError, match=r"prefix 'encoder\.'.*unexpected keys \['module\.a'"):
        prepare_state_dict(sd, prefix="encoder.")
    assert list(subtree({"encoder.w": torch.zeros(1), "decoder.w": torch.zeros(1)}, "encoder.")) == ["w"]


def test_unknown_config_keys_named() -> None:
    with pytest.raises(ValueError, match=r"unknown terrafm config keys \['in_chans'\]"):
        terrafm.build(dict(CASES["terrafm"][2], in_chans=12))
    with pytest.raises(ValueError, match=r"channel_groups=.*must partition channels 0..9"):
        satmae.build_group(dict(CASES["satmae_group"][2], channel_groups=((0, 1), (2, 3))))


@torch.no_grad()
def test_tiny_networks_give_token_grids() -> None:
    """forward_tokens returns (B, D, h, w) grids on inputs of the documented layout."""
    torch.manual_seed(0)
    grid = (
        satvision_toa.build(CASES["satvision_toa"][2])
        .eval()
        .forward_tokens(torch.rand(1, 14, 32, 32))["grid"]
    )
    assert grid.shape == (1, 16, 4, 4)
    out = agrifm.build(CASES["agrifm"][2]).eval().forward_tokens(torch.randn(1, 4, 10, 12, 12))
    assert out["grid"].shape == (1, 16 * 1, 3, 3)  # T 4 -> 2 -> 1 frame, 12 px -> 6 -> 3
    t = thor.build(CASES["thor"][2]).eval().forward_tokens(torch.randn(1, 10, 16, 16))
    assert t["grid"].shape == (1, 24, 2, 2) and t["tokens"].shape == (1, 4 + 1, 24)


def test_fmow_sentinel_tables_are_consistent() -> None:
    kept = [satmae.FMOW_S2_13_BANDS.index(b) for b in satmae.FMOW_S2_BANDS]
    assert [i for i in range(13) if i not in kept] == [0, 9, 10]  # B1, B9, B10 dropped
    assert len(satmae.FMOW_S2_13_MEAN) == len(satmae.FMOW_S2_13_STD) == 13
    assert sorted(c for g in satmae.FMOW_S2_GROUPS for c in g) == list(range(10))
