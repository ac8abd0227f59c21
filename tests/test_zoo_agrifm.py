"""AgriFM Video-Swin encoder against the original code's oracle (clipped windows, frame averaging)."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.agrifm import PUBLISHED, build, load, revise_keys
from eoembed.models.nets.common import StateDictError

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    pe, bb = (
        meta["constructor_kwargs_shrunk"]["patch_emd_cfg"],
        meta["constructor_kwargs_shrunk"]["backbone_cfg"],
    )
    cfg = {k: bb[k] for k in PUBLISHED if k in bb}
    return cfg | {"in_chans": pe["in_chans"], "embed_dim": pe["embed_dim"], "patch_size": pe["patch_size"]}


@torch.no_grad()
def test_matches_oracle() -> None:
    o = Oracle("agrifm")
    res = load(_config(o.meta), o.sd).forward_tokens(o.inp["x"])
    assert_close("agrifm encoder_features", res["grid"], o.out["encoder_features"])
    assert_close("agrifm pooled_mean", res["pooled"], o.out["pooled_mean"])
    for i, feat in enumerate(res["features_list"]):
        assert_close(f"agrifm features_list_{i}", feat, o.out[f"features_list_{i}"])


def test_relative_position_index_is_the_original_table() -> None:
    o = Oracle("agrifm")
    built = build(_config(o.meta)).state_dict()
    for k in (k for k in o.sd if k.endswith("relative_position_index")):
        assert torch.equal(built[k], o.sd[k]), k


@torch.no_grad()
def test_single_frame_is_averaged_with_a_zero_frame() -> None:
    """Upstream pads an odd frame count with zeros before averaging frame pairs; reproduced."""
    o = Oracle("agrifm")
    merge = load(_config(o.meta), o.sd).backbone.layers[0].downsample
    x = torch.randn(1, 1, 4, 4, 8)
    padded = torch.cat([x, torch.zeros_like(x)], 1)
    assert torch.allclose(merge(x), merge(padded), atol=1e-6)
    assert merge(x).shape == (1, 1, 2, 2, 16)


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("agrifm")
    cfg = _config(o.meta)
    released = {"module." + k.replace("patch_emd", "S2_patch_emd"): v for k, v in o.sd.items()}
    with pytest.raises(StateDictError, match=r"missing keys \['patch_emd\.proj\.bias'"):
        load(cfg, {k[len("module.") :]: v for k, v in released.items()})
    assert load(cfg, revise_keys(released)).in_chans == 10
    # the (4,4,4) stem third-party loaders report does not fit the configured (4,2,2) patch
    with pytest.raises(StateDictError, match=r"patch_emd\.proj\.weight: got \(8, 10, 4, 4, 4\)"):
        load(cfg, dict(o.sd, **{"patch_emd.proj.weight": torch.zeros(8, 10, 4, 4, 4)}))
    with pytest.raises(ValueError, match=r"expected \(B, T, 10, H, W\)"):
        build(cfg).forward_tokens(torch.zeros(1, 10, 8, 16, 16))
