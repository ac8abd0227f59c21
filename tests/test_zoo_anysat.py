"""AnySat (non-flash release path) against the original code's oracle: S2 series, 20 m and 10 m patches."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.anysat import load, rpe_buckets
from eoembed.models.nets.common import StateDictError

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    s = meta["shrunk_config_summary"]
    return {"embed_dim": s["embed_dim"], "depth": s["depth"], "num_heads": s["num_heads"]}


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle("anysat")


@torch.no_grad()
def test_matches_oracle(oracle: Oracle) -> None:
    o = oracle
    model = load(_config(o.meta), o.sd)
    x = {"s2": o.inp["s2"], "s2_dates": o.inp["s2_dates"]}
    res = model.forward_tokens(x, patch_size=20, output="dense")
    assert_close("anysat tile_ps20", res["tile"], o.out["tile_ps20"])
    assert_close("anysat patch_ps20", res["patch"], o.out["patch_ps20"])
    assert_close("anysat all_ps20", res["tokens"], o.out["all_ps20"])
    assert_close("anysat dense_ps20", res["dense"], o.out["dense_ps20"])
    assert_close("anysat grid_ps20", res["grid"].permute(0, 2, 3, 1), o.out["patch_ps20"])
    res10 = model.forward_tokens(x, patch_size=10)
    assert_close("anysat tile_ps10", res10["tile"], o.out["tile_ps10"])
    assert_close("anysat patch_ps10", res10["patch"], o.out["patch_ps10"])


def test_rpe_buckets_by_hand() -> None:
    """iRPE piecewise index (alpha 1.9, beta 3.8, gamma 15.2) worked out by hand, offset by int(beta)=3;
    the cls row/column takes the extra bucket 7. Rounded distance d > alpha maps to
    round(1.9 + ln(d/1.9)/ln 8 * 1.9): d=2 -> 2, d=3 -> 2, d=6 -> 3."""
    b = rpe_buckets(3)
    assert b.shape == (10, 10)
    assert (b[0] == 7).all() and (b[:, 0] == 7).all()
    assert [int(b[1, j]) for j in (1, 2, 3, 5, 9)] == [3, 4, 5, 4, 5]  # d = 0, 1, 2, sqrt2->1, sqrt8->3
    assert int(rpe_buckets(5)[1, 25]) == 6  # (0,0)->(4,4): sqrt 32 -> 6


def test_wrong_state_dicts_and_inputs_rejected(oracle: Oracle) -> None:
    o = oracle
    cfg = _config(o.meta)
    # a checkpoint without the VHR projectors is not the released AnyModule layout
    partial = {k: v for k, v in o.sd.items() if not k.startswith("projector_aerial.")}
    with pytest.raises(StateDictError, match=r"missing keys \['projector_aerial\.mlp\.0\.bias'"):
        load(cfg, partial)
    with pytest.raises(StateDictError, match=r"unexpected keys \['projector_s1\.patch_embed\.in_norm\.bias'"):
        load(
            cfg,
            o.sd
            | {
                "projector_s1.patch_embed.in_norm.bias": torch.zeros(32),
                "projector_s1.patch_embed.in_norm.weight": torch.ones(32),
            },
        )
    model = load(cfg, o.sd)
    x = {"s2": o.inp["s2"], "s2_dates": o.inp["s2_dates"]}
    with pytest.raises(ValueError, match="patch_size=25"):
        model.forward_tokens(x, patch_size=25)
    with pytest.raises(ValueError, match=r"modalities \['aerial'\] unsupported"):
        model.forward_tokens({"aerial": o.inp["s2"]}, patch_size=20)
    with pytest.raises(ValueError, match="needs 's2_dates'"):
        model.forward_tokens({"s2": o.inp["s2"]}, patch_size=20)


def test_irpe_bias_comes_from_head_zero_only() -> None:
    """Upstream's pure-PyTorch gather keeps head 0: other heads' queries do not change the bias."""
    from eoembed.models.nets.anysat import IRPE

    rpe = IRPE(head_dim=8)
    torch.nn.init.normal_(rpe.lookup_table_weight)
    q = torch.randn(2, 4, 10, 8)
    q2 = q.clone()
    q2[:, 1:] = torch.randn(2, 3, 10, 8)
    assert torch.equal(rpe(q, 3), rpe(q2, 3))
    assert not torch.allclose(rpe(q, 3), rpe(q * 2, 3))
