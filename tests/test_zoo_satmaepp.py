"""SatMAE++ encoders (fMoW-RGB and Sentinel-2 grouped) against the original code's oracles."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.satmaepp import load

pytestmark = pytest.mark.shared

KEYS = (
    "img_size",
    "patch_size",
    "in_chans",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "channel_embed",
    "channel_groups",
)


def _config(meta: dict) -> dict:
    return {k: v for k, v in meta["constructor_kwargs_shrunk"].items() if k in KEYS}


@torch.no_grad()
def test_rgb_matches_oracle() -> None:
    o = Oracle("satmaepp_rgb")
    res = load("rgb", _config(o.meta), o.sd).forward_tokens(o.inp["x"])
    assert_close("satmaepp_rgb tokens", res["tokens"], o.out["tokens"])
    assert_close("satmaepp_rgb cls", res["cls"], o.out["cls"])
    assert_close("satmaepp_rgb mean_patch", res["pooled"], o.out["mean_patch"])
    assert_close("satmaepp_rgb grid", res["grid"].flatten(2).transpose(1, 2), o.out["tokens"][:, 1:])


@torch.no_grad()
def test_s2_matches_oracle() -> None:
    o = Oracle("satmaepp_s2")
    model = load("s2", _config(o.meta), o.sd)
    assert not hasattr(model, "channel_cls_embed")
    res = model.forward_tokens(o.inp["x"])
    assert_close("satmaepp_s2 tokens", res["tokens"], o.out["tokens"])
    assert_close("satmaepp_s2 cls", res["cls"], o.out["cls"])
    assert_close("satmaepp_s2 mean_patch", res["pooled"], o.out["mean_patch"])
    assert_close("satmaepp_s2 grid_group_mean", res["grid"], o.out["grid_group_mean"])


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("satmaepp_s2")
    cfg = _config(o.meta)
    # a SatMAE fine-tune layout (channel_cls_embed present) is not the SatMAE++ MAE encoder
    with pytest.raises(StateDictError, match=r"unexpected keys \['channel_cls_embed'\]"):
        load("s2", cfg, dict(o.sd, channel_cls_embed=torch.zeros(1, 1, 16)))
    with pytest.raises(StateDictError, match=r"patch_embed\.2\.proj\.weight: got \(48, 3, 8, 8\)"):
        load("s2", cfg, dict(o.sd, **{"patch_embed.2.proj.weight": torch.zeros(48, 3, 8, 8)}))
    with pytest.raises(StateDictError, match=r"missing keys \['norm\.bias', 'norm\.weight'\]"):
        load("s2", cfg, {k: v for k, v in o.sd.items() if not k.startswith("norm.")})
    with pytest.raises(ValueError, match="variant='s1'"):
        load("s1", cfg, o.sd)
