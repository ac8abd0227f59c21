"""WildSAT ViT-B/16 path (torchvision ViT + ThreeLinear heads) against the original code's oracle."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.wildsat import CHECKPOINT_PREFIX, load

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    kw = meta["constructor_kwargs_shrunk"]
    return {**kw["vit_kwargs_shrunk"], "num_outputs": kw["get_model"]["num_outputs"]}


@torch.no_grad()
def test_matches_oracle() -> None:
    o = Oracle("wildsat")
    # the real checkpoint wraps every key in DataParallel's 'module.'
    sd = {CHECKPOINT_PREFIX + k: v for k, v in o.sd.items()}
    res = load(_config(o.meta), sd, prefix=CHECKPOINT_PREFIX).forward_tokens(o.inp["x"])
    assert_close("wildsat img_embedding", res["image"], o.out["img_embedding"])
    assert_close("wildsat text_embedding", res["text"], o.out["text_embedding"])
    assert_close("wildsat sinr_embedding", res["sinr"], o.out["sinr_embedding"])
    assert_close("wildsat backbone_feats", res["feats"], o.out["backbone_feats"])
    assert_close("wildsat encoder_tokens", res["tokens"], o.out["encoder_tokens"])
    assert_close("wildsat grid", res["grid"].flatten(2).transpose(1, 2), o.out["encoder_tokens"][:, 1:])


def test_wrong_state_dicts_rejected() -> None:
    o = Oracle("wildsat")
    cfg = _config(o.meta)
    # ImageNet head removed (as other ViT embedders do) -> WildSAT's heads would have no input
    no_head = {k: v for k, v in o.sd.items() if not k.startswith("backbone.heads.")}
    with pytest.raises(StateDictError, match=r"missing keys \['backbone\.heads\.head\.bias'"):
        load(cfg, no_head)
    biased = dict(o.sd, **{"decoder.backbone3.0.bias": torch.zeros(24)})
    with pytest.raises(StateDictError, match=r"unexpected keys \['decoder\.backbone3\.0\.bias'\]"):
        load(cfg, biased)
    with pytest.raises(StateDictError, match=r"pos_embedding: got \(1, 17, 32\), expected \(1, 5, 32\)"):
        load(cfg, dict(o.sd, **{"backbone.encoder.pos_embedding": torch.zeros(1, 17, 32)}))
