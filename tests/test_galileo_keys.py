"""Galileo tiny and base: the encoders eoembed builds have exactly the keys and shapes of the
original encoders (``../shared/data/reference/zoo/galileo_{tiny,base}_keys.json``, listed from the
original code), the loader accepts a state dict of that layout and rejects a wrong one by name.
(No output oracle exists for these sizes: their cards stay ``verified: unverified``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eoembed.models.galileo_net import ARCH, GalileoEncoder, encoder_from_state_dict
from eoembed.models.registry import get_card

ZOO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference" / "zoo"
pytestmark = pytest.mark.shared


def _keys(size: str) -> dict[str, list[int]]:
    path = ZOO / f"galileo_{size}_keys.json"
    if not path.exists():
        pytest.skip(f"key list not available: {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize("size", ["tiny", "base"])
def test_built_encoder_has_the_original_keys_and_shapes(size: str) -> None:
    want = _keys(size)
    with torch.device("meta"):
        got = {k: list(v.shape) for k, v in GalileoEncoder(**ARCH[size]).state_dict().items()}
    assert sorted(set(want) - set(got)) == [] and sorted(set(got) - set(want)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert want["blocks.0.attn.q.weight"] == [get_card(f"galileo_{size}").dims] * 2


def test_loader_accepts_the_original_layout_and_rejects_wrong_ones() -> None:
    want = _keys("tiny")
    sd = {k: torch.full(v, 0.01) for k, v in want.items()}
    model = encoder_from_state_dict(sd, size="tiny")
    assert float(model.blocks[11].mlp.fc2.bias.detach()[0]) == pytest.approx(0.01)
    # published files sometimes carry '.backbone' in the names: removed before matching
    wrapped = {k.replace("blocks.", "blocks.backbone.", 1) if k.startswith("blocks.") else k: v
               for k, v in sd.items()}
    wrapped["blocks.backbone.3.attn.k.bias"] = torch.full((192,), 0.5)
    assert float(encoder_from_state_dict(wrapped, size="tiny").blocks[3].attn.k.bias.detach()[7]) == 0.5
    with pytest.raises(ValueError, match=r"missing keys \['norm\.bias'\]"):
        encoder_from_state_dict({k: v for k, v in sd.items() if k != "norm.bias"}, size="tiny")
    with pytest.raises(ValueError, match=r"unexpected keys \['blocks\.12\.norm1\.weight'\]"):
        encoder_from_state_dict(sd | {"blocks.12.norm1.weight": torch.zeros(192)}, size="tiny")
    with pytest.raises(ValueError, match=r"month_embed\.weight: got \(12, 32\), expected \(12, 48\)"):
        encoder_from_state_dict(sd | {"month_embed.weight": torch.zeros(12, 32)}, size="tiny")
    # tiny weights are not a base encoder: every shape mismatch is reported
    with pytest.raises(ValueError,
                       match=r"Galileo-base.*attn\.q\.weight: got \(192, 192\), expected \(768, 768\)"):
        encoder_from_state_dict(sd, size="base")
