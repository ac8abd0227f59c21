"""TerraFM against the original code's oracle (S2 through the L1C stem, S1, 48 px pos interpolation)."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.terrafm import load

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    kw = dict(meta["shrunk_kwargs"])
    kw.pop("qkv_bias")
    kw["img_size"] = kw["img_size"][0]
    return kw


@torch.no_grad()
@pytest.mark.parametrize("name", ["s2", "s1", "s2_48px"])
def test_matches_oracle(name: str) -> None:
    o = Oracle("terrafm")
    res = load(_config(o.meta), o.sd).forward_tokens(o.inp[name])
    assert_close(f"terrafm {name} cls", res["pooled"], o.out[f"{name}_cls"])
    assert_close(f"terrafm {name} grid", res["grid"], o.out[f"{name}_grid"])
    assert_close(f"terrafm {name} tokens", res["tokens"], o.out[f"{name}_tokens_final_norm"])


@torch.no_grad()
def test_l2a_stem_is_the_l2a_conv() -> None:
    """Swapping the L1C and L2A stem weights and asking for the L2A stem reproduces the default path."""
    o = Oracle("terrafm")
    swap = {
        "conv2d_s2_l1c": "conv2d_s2_l2a",
        "conv2d_s2_l2a": "conv2d_s2_l1c",
        "s2_l1c_embed": "s2_l2a_embed",
        "s2_l2a_embed": "s2_l1c_embed",
    }
    sd = {}
    for k, v in o.sd.items():
        for a, b in swap.items():
            if f"patch_embed.{a}" in k:
                k = k.replace(a, b)
                break
        sd[k] = v
    model = load(_config(o.meta), sd)
    assert_close("terrafm l2a stem", model.forward_tokens(o.inp["s2"], stem="s2_l2a")["cls"], o.out["s2_cls"])
    default = model.forward_tokens(o.inp["s2"])["cls"]
    assert float((default - o.out["s2_cls"]).abs().max()) > 1e-2  # default is the (now swapped) L1C stem
    with pytest.raises(ValueError, match="stem='s1' with 12 channels"):
        model.forward_tokens(o.inp["s2"], stem="s1")


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("terrafm")
    cfg = _config(o.meta)
    biased = dict(o.sd, **{"patch_embed.projection.proj1.bias": torch.zeros(96)})
    with pytest.raises(StateDictError, match=r"unexpected keys \['patch_embed\.projection\.proj1\.bias'\]"):
        load(cfg, biased)
    with pytest.raises(StateDictError, match=r"missing keys \['patch_embed\.s1_embed'\]"):
        load(cfg, {k: v for k, v in o.sd.items() if k != "patch_embed.s1_embed"})
    with pytest.raises(StateDictError, match=r"pos_embed: got \(1, 197, 32\), expected \(1, 17, 32\)"):
        load(cfg, dict(o.sd, pos_embed=torch.zeros(1, 197, 32)))
