"""FoMo-Net_1 against the original code's oracle (S2 12 bands and S1, one token group per band)."""

from __future__ import annotations

import pytest
import torch
from zoo_oracle import Oracle, assert_close

from eoembed.models.nets.common import StateDictError
from eoembed.models.nets.fomo import S1_KEYS, S2_KEYS, load

pytestmark = pytest.mark.shared


def _config(meta: dict) -> dict:
    kw = dict(meta["shrunk_kwargs"])
    kw.pop("channels")
    return kw


def test_spectral_ids_match_the_oracle_inputs() -> None:
    o = Oracle("fomo")
    s2 = [S2_KEYS[b] for b in ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")]
    assert s2 == o.inp["s2_keys"].tolist()
    assert [S1_KEYS["VV"], S1_KEYS["VH"]] == o.inp["s1_keys"].tolist()
    names = o.meta["configs_used"]["modality_channels"]
    assert all(names[str(v)] == f"sentinel-2-{k.lower()}" for k, v in S2_KEYS.items())


@torch.no_grad()
@pytest.mark.parametrize("name", ["s2", "s1"])
def test_matches_oracle(name: str) -> None:
    o = Oracle("fomo")
    res = load(_config(o.meta), o.sd).forward_tokens(o.inp[name], o.inp[f"{name}_keys"].tolist())
    assert_close(f"fomo {name} tokens", res["tokens"], o.out[f"{name}_tokens"])
    assert_close(f"fomo {name} pooled_mean", res["pooled"], o.out[f"{name}_pooled_mean"])
    assert_close(f"fomo {name} grid_mean_over_bands", res["grid"], o.out[f"{name}_grid_mean_over_bands"])
    assert_close(f"fomo {name} head_logits", res["head_logits"], o.out[f"{name}_head_logits"])


def test_wrong_state_dicts_and_inputs_rejected() -> None:
    o = Oracle("fomo")
    cfg = _config(o.meta)
    with pytest.raises(
        StateDictError, match=r"spectral_embedding: got \(1, 37, 32\), expected \(1, 38, 32\)"
    ):
        load(cfg, dict(o.sd, spectral_embedding=torch.zeros(1, 37, 32)))
    with pytest.raises(StateDictError, match=r"missing keys \['cls_token'\]"):
        load(cfg, {k: v for k, v in o.sd.items() if k != "cls_token"})
    with pytest.raises(
        StateDictError, match=r"unexpected keys \['transformer\.layers\.0\.0\.to_qkv\.bias'\]"
    ):
        load(cfg, dict(o.sd, **{"transformer.layers.0.0.to_qkv.bias": torch.zeros(96)}))
    model = load(cfg, o.sd)
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\) for keys \[4, 5, 6\]"):
        model.forward_tokens(o.inp["s1"], [4, 5, 6])
    with pytest.raises(ValueError, match=r"keys \[37\] invalid"):
        model.forward_tokens(o.inp["s1"], [4, 37])
