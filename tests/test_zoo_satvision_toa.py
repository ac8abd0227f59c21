"""SatVision-TOA SwinV2 encoder against the original code's oracle (extra norms, clipped windows)."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError, subtree
from eoembed.models.nets.satvision_toa import PUBLISHED, build, load

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    return {k: v for k, v in meta["constructor_kwargs_shrunk"].items() if k in PUBLISHED}


@torch.no_grad()
def test_matches_oracle() -> None:
    o = Oracle("satvision_toa")
    # the released DeepSpeed file nests the encoder under 'encoder.' next to the SimMIM decoder
    ckpt = {"encoder." + k: v for k, v in o.sd.items()} | {"decoder.0.weight": torch.zeros(3, 3)}
    res = load(_config(o.meta), subtree(ckpt, "encoder.")).forward_tokens(o.inp["x"])
    assert_close("satvision_toa pooled", res["pooled"], o.out["pooled"])
    assert_close("satvision_toa tokens", res["tokens"], o.out["tokens"])
    assert_close("satvision_toa last_stage_map", res["last_stage_map"], o.out["last_stage_map"])
    assert_close("satvision_toa grid", res["grid"].flatten(2).transpose(1, 2), o.out["tokens"])


def test_buffers_are_rebuilt_identically() -> None:
    """Coordinate tables, indices and shift masks computed here equal the ones the original saved."""
    o = Oracle("satvision_toa")
    built = build(_config(o.meta)).state_dict()
    buffers = [
        k for k in o.sd if k.endswith(("relative_coords_table", "relative_position_index", "attn_mask"))
    ]
    assert len(buffers) == 2 * 12 + 2  # two tables per block; a mask only on the shifted block of stages 1-2
    for k in buffers:
        assert torch.allclose(built[k].float(), o.sd[k].float(), atol=1e-6), k


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("satvision_toa")
    cfg = _config(o.meta)
    # the downstream wrapper's layout (no extra norms) is not the pre-training encoder's
    with pytest.raises(StateDictError, match=r"unexpected keys \['layers\.2\.blocks\.5\.norm3\.bias'"):
        load(cfg | {"extra_norm_period": 0}, o.sd)
    with pytest.raises(StateDictError, match=r"missing keys \['layers\.0\.blocks\.1\.attn_mask'\]"):
        load(cfg, {k: v for k, v in o.sd.items() if k != "layers.0.blocks.1.attn_mask"})
    with pytest.raises(StateDictError, match=r"patch_embed\.proj\.weight: got \(8, 3, 4, 4\)"):
        load(cfg, dict(o.sd, **{"patch_embed.proj.weight": torch.zeros(8, 3, 4, 4)}))
    with pytest.raises(StateDictError, match=r"sub-module 'encoder\.'"):
        subtree(o.sd, "encoder.")
