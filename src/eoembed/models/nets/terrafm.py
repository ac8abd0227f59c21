"""TerraFM encoder (Danish et al., 2025; github.com/mbzuai-oryx/TerraFM ``terrafm.py``).

A DINO-style ViT (timm-compatible blocks, LayerNorm eps 1e-6) whose patch stem has one convolution
per input kind -- ``conv2d_s2_l2a``, ``conv2d_s2_l1c`` (12 S2 bands B1..B12 without B10) and
``conv2d_s1`` (VV, VH) -- each to ``3 * embed_dim`` channels plus a learned kind embedding, followed
by a shared ``TokenProjection``: ``proj3(proj2(LayerNorm_eps1e-5(proj1_nobias(x))))`` (no activations).

Routing quirk reproduced: the original ``forward`` never passes ``is_l2a``, so 2-channel input goes
to the S1 stem and EVERY 12-channel input (L2A included) goes through the L1C stem. That is the
default here (``stem=None``); ``stem="l2a"`` selects the L2A stem explicitly, which no public
TerraFM entry point does. Positional embeddings are interpolated DINO-style (bicubic,
``scale_factor=(n+0.1)/sqrt(N)``) for inputs other than ``img_size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eoembed.models.nets.common import layer_norm, load_strict, prepare_state_dict, tokens_to_grid, vit_blocks

#: 12 S2 bands of the S2 stems, in order, and the 2 S1 channels.
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
S1_BANDS = ("VV", "VH")
PUBLISHED = {
    "base": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    "large": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0),
}
_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
STEMS = ("s1", "s2_l1c", "s2_l2a")


class TokenProjection(nn.Module):
    """``3D -> D`` projection of the stem tokens (original key names)."""

    def __init__(self, attn_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj1 = nn.Linear(attn_dim, attn_dim, bias=False)
        self.norm_input = nn.LayerNorm(attn_dim)
        self.proj2 = nn.Linear(attn_dim, attn_dim)
        self.proj3 = nn.Linear(attn_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj3(self.proj2(self.norm_input(self.proj1(x))))


class PatchEmbed(nn.Module):
    """Per-kind convolutional stems + kind embeddings + shared token projection."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        attn_dim = 3 * embed_dim
        for kind in ("s2_l2a", "s2_l1c", "s1"):
            setattr(self, f"{kind}_embed", nn.Parameter(torch.zeros(1, attn_dim)))
        for kind, chans in (("s2_l2a", 12), ("s2_l1c", 12), ("s1", 2)):
            setattr(self, f"conv2d_{kind}", nn.Conv2d(chans, attn_dim, patch_size, stride=patch_size))
        self.projection = TokenProjection(attn_dim, embed_dim)

    def forward(self, x: Tensor, stem: str) -> Tensor:
        t = getattr(self, f"conv2d_{stem}")(x).flatten(2).transpose(1, 2) + getattr(self, f"{stem}_embed")
        return self.projection(t)


class TerraFM(nn.Module):
    """TerraFM ViT; ``forward_tokens`` gives the normed CLS (pooled) and the last-block grid."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + 1, embed_dim))
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = layer_norm()(embed_dim)

    def _pos(self, h: int, w: int) -> Tensor:
        n = self.pos_embed.shape[1] - 1
        if h * w == n and h == w:
            return self.pos_embed
        side = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        # DINO's interpolate_pos_encoding: +0.1 avoids floor errors of scale_factor
        grid = F.interpolate(grid, scale_factor=((w + 0.1) / side, (h + 0.1) / side), mode="bicubic")
        if grid.shape[-2:] != (w, h):
            raise ValueError(f"terrafm: positional grid {tuple(grid.shape[-2:])} != patches {(w, h)}")
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], 1)

    def forward_tokens(self, x: Tensor, stem: str | None = None) -> dict[str, Tensor]:
        """``x`` (B, 12, H, W) S2 or (B, 2, H, W) S1 -> ``grid`` (B, D, h, w; last block, final-normed),
        ``tokens`` (B, 1+h*w, D), ``cls`` = ``pooled`` (the original ``model(x)``)."""
        if x.ndim != 4 or x.shape[1] not in (2, 12):
            raise ValueError(f"terrafm input x has shape {tuple(x.shape)}: expected (B, 12 or 2, H, W)")
        if stem is None:
            stem = "s1" if x.shape[1] == 2 else "s2_l1c"
        want = 2 if stem == "s1" else 12
        if stem not in STEMS or x.shape[1] != want:
            raise ValueError(
                f"terrafm stem={stem!r} with {x.shape[1]} channels: allowed {STEMS} "
                "(s1 takes 2 channels, the S2 stems 12)"
            )
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.patch_embed(x, stem)
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], 1) + self._pos(h, w)
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)
        return {"grid": tokens_to_grid(t[:, 1:], h, w), "tokens": t, "cls": t[:, 0], "pooled": t[:, 0]}


def build(config: Mapping[str, Any]) -> TerraFM:
    """Network from a config dict (keys of :data:`PUBLISHED` entries)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown terrafm config keys {unknown}: allowed {sorted(_KEYS)}")
    return TerraFM(**config)


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> TerraFM:
    """Build and strictly load (the README loads ``TerraFM-B.pth`` with ``strict=False``; here every
    key must match, the head being ``Identity`` without keys)."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix), "terrafm")
