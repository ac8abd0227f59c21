"""SatMAE encoders (fMoW-RGB MAE and grouped-channel) against the original code's oracles."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.satmae import MAE_UNUSED, load_group, load_rgb

pytestmark = pytest.mark.shared

RGB_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio")
GROUP_KEYS = RGB_KEYS + ("channel_embed", "channel_groups")


def _config(meta: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in meta["constructor_kwargs_shrunk"].items() if k in keys}


@torch.no_grad()
def test_rgb_matches_oracle() -> None:
    o = Oracle("satmae_rgb")
    model = load_rgb(_config(o.meta, RGB_KEYS), o.sd)
    res = model.forward_tokens(o.inp["x"])
    assert_close("satmae_rgb tokens", res["tokens"], o.out["tokens"])
    assert_close("satmae_rgb cls", res["cls"], o.out["cls"])
    assert_close("satmae_rgb mean_patch", res["pooled"], o.out["mean_patch"])
    # grid is the raster-order patch sequence: row 1, column 2 is patch 1*4+2
    assert_close("satmae_rgb grid", res["grid"][:, :, 1, 2], o.out["tokens"][:, 1 + 6])
    # the original shuffles tokens even at mask ratio 0: undoing its permutation gives our order
    shuffled, restore = o.out["latent_shuffled"], o.out["ids_restore"]
    unshuffled = torch.gather(shuffled[:, 1:], 1, restore[..., None].expand(-1, -1, shuffled.shape[-1]))
    assert_close("satmae_rgb unshuffled latent", res["tokens"][:, 1:], unshuffled)


@torch.no_grad()
def test_group_matches_oracle() -> None:
    o = Oracle("satmae_group")
    cfg = _config(o.meta, GROUP_KEYS)
    res = load_group(cfg, o.sd).forward_tokens(o.inp["x"])
    assert_close("satmae_group cls", res["cls"], o.out["cls"])
    assert_close("satmae_group tokens", res["tokens"], o.out["tokens"])
    assert_close("satmae_group mean_patch", res["pooled"], o.out["mean_patch"])
    # group-major: group 2, patch (3, 1) is sequence index 1 + 2*16 + 13
    assert_close("satmae_group group_grid", res["group_grid"][:, 2, :, 3, 1], o.out["tokens"][:, 1 + 32 + 13])
    # fine-tune path: global_pool=True has fc_norm instead of norm
    sd = {k: v for k, v in o.sd.items() if not k.startswith("norm.")}
    sd |= o.group("extra_sd_global_pool/")
    pooled = load_group(cfg | {"global_pool": True}, sd).forward_tokens(o.inp["x"])["pooled"]
    assert_close("satmae_group global_pool_fc_norm", pooled, o.out["global_pool_fc_norm"])


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("satmae_rgb")
    cfg = _config(o.meta, RGB_KEYS)
    bad_shape = dict(o.sd, **{"blocks.0.attn.qkv.weight": torch.zeros(90, 32)})
    with pytest.raises(
        StateDictError, match=r"blocks\.0\.attn\.qkv\.weight: got \(90, 32\), expected \(96, 32\)"
    ):
        load_rgb(cfg, bad_shape)
    renamed = {k.replace("blocks.1.", "layers.1."): v for k, v in o.sd.items()}
    with pytest.raises(
        StateDictError, match=r"missing keys \['blocks\.1\.attn\.proj\.bias'.*unexpected keys"
    ):
        load_rgb(cfg, renamed)
    # a wrapper prefix is stripped only when named, and then every key must carry it
    wrapped = {"module." + k: v for k, v in o.sd.items()}
    with pytest.raises(StateDictError, match="missing keys"):
        load_rgb(cfg, wrapped)
    assert load_rgb(cfg, wrapped, prefix="module.").pos_embed.shape == (1, 17, 32)
    with pytest.raises(StateDictError, match=r"prefix 'module\.'.*unexpected keys \['cls_token'\]"):
        load_rgb(cfg, dict(wrapped, cls_token=o.sd["cls_token"]), prefix="module.")
    # the decoder is dropped only as a whole named part: the grouped loader without ignore rejects it
    g = Oracle("satmaepp_s2")
    gcfg = {k: v for k, v in g.meta["constructor_kwargs_shrunk"].items() if k in GROUP_KEYS}
    with pytest.raises(StateDictError, match="unexpected keys.*decoder_embed.weight"):
        load_group(gcfg | {"cls_embed": False}, g.sd)
    assert MAE_UNUSED == ("decoder_", "mask_token")


def test_bad_input_named() -> None:
    o = Oracle("satmae_rgb")
    model = load_rgb(_config(o.meta, RGB_KEYS), o.sd)
    with pytest.raises(ValueError, match=r"img_size \(64, 64\)"):
        model.forward_tokens(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        model.forward_tokens(torch.zeros(1, 4, 64, 64))
