"""THOR 1.0 encoder (ALiBi, patch-size embedding, PI-resized per-band convs) against the original's oracle."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.thor import CHANNELS, GROUPS, UNUSED, alibi_slopes, load

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    kw, ip = meta["shrunk_kwargs"], meta["input_params_shrunk"]
    return dict(
        embed_dim=kw["embed_dim"],
        depth=kw["depth"],
        num_heads=kw["num_heads"],
        band_embed_dim=kw["band_embed_dim"],
        mlp_ratio=kw["mlp_ratio"],
        ground_cover=ip["ground_covers"][0],
        patch_size=ip["flexivit_patch_size_seqs"][0],
        ref_patch_size=ip["flexivit_ref_patch_size"],
        groups=ip["groups"],
        channels=ip["channels"],
    )


def test_published_tables_match_the_oracle_json() -> None:
    o = Oracle("thor")
    ip = o.meta["input_params_shrunk"]
    assert [list(g) for g in GROUPS[:5]] == ip["groups"]  # the oracle keeps the first five groups
    assert CHANNELS == ip["channels"]
    assert alibi_slopes(3) == pytest.approx(o.sd["encoder_slopes"].tolist(), abs=1e-7)


@torch.no_grad()
def test_matches_oracle() -> None:
    o = Oracle("thor")
    model = load(_config(o.meta), o.sd)
    pre = model.preprocess(o.inp["x"])
    for name, band in o.group("in/preprocessed/").items():
        assert_close(f"thor preprocessed {name}", pre[name], band, tol=1e-6)
    res = model.forward_tokens(o.inp["x"])
    assert_close("thor tokens_last_block", res["tokens"], o.out["tokens_last_block"])
    assert_close("thor pooled_mean", res["pooled"], o.out["pooled_mean"])
    assert_close("thor grid_mean", res["grid"], o.out["grid_mean"])
    assert_close("thor tokens_final_norm", res["tokens_final_norm"], o.out["tokens_final_norm"])
    assert [tuple(g.shape[-2:]) for g in res["group_grids"]] == [(6, 6), (3, 3)]


@torch.no_grad()
def test_band_order_does_not_matter_but_names_do() -> None:
    o = Oracle("thor")
    model = load(_config(o.meta), o.sd)
    bands = dict(reversed(list(o.group("in/preprocessed/").items())))
    assert_close("thor reordered dict", model.forward_bands(bands)["tokens"], o.out["tokens_last_block"])
    with pytest.raises(ValueError, match=r"band 'S2:B4' unknown"):
        model.forward_tokens(o.inp["x"][:, :1], bands=["S2:B4"])
    with pytest.raises(ValueError, match=r"S2:RE1 has shape \(2, 1, 48, 48\): expected 24 px"):
        model.forward_bands({"S2:RE1": o.inp["x"][:, :1]})


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("thor")
    cfg = _config(o.meta)
    # the released layout: 'encoder.' prefix and MAE decoder parts, dropped only when named
    wrapped = {"encoder." + k: v for k, v in o.sd.items()} | {
        "encoder.decoder_embed.weight": torch.zeros(4, 4)
    }
    with pytest.raises(StateDictError, match=r"unexpected keys \['decoder_embed\.weight'\]"):
        load(cfg, wrapped, prefix="encoder.")
    assert load(cfg, wrapped, prefix="encoder.", ignore=UNUSED).encoder_slopes.shape == (3,)
    # all ten groups expected by the published configuration -> the five-group file lacks S3 convs
    with pytest.raises(StateDictError, match=r"missing keys \['band_embed\.group5'.*S3:Oa01_reflectance"):
        load(cfg | {"groups": GROUPS, "channels": CHANNELS}, o.sd)
    bad = dict(o.sd, **{"ind_patch_embed.patch_embed.S2:Red.weight": torch.zeros(48, 1, 8, 8)})
    with pytest.raises(
        StateDictError, match=r"S2:Red\.weight: got \(48, 1, 8, 8\), expected \(48, 1, 16, 16\)"
    ):
        load(cfg, bad)
