"""FoMo-Net_1 encoder (Bountos et al.; github.com/RolnickLab/FoMo-Bench ``model_zoo/multimodal_mae.py``).

``MultiSpectralViT`` with ``single_embedding_layer=True``: every band is its own token group. Each
band is cut into ``p x p`` patches (row-major) embedded by one shared stem ``LayerNorm(p*p) ->
Linear -> LayerNorm(dim)`` (``to_patch_embedding.1/2/3``; index 0 is the einops Rearrange), plus
the band's spectral embedding ``spectral_embedding[key]`` (key = index of the band in the 37
``modality_channels`` of ``fomo_pretraining_datasets.json``) and ``pos_embedding[1:n+1]``. Bands are
concatenated band-major; NO cls token is prepended (``cls_token`` and ``pos_embedding[0]`` exist in
the checkpoint but are unused). vit-pytorch style pre-norm transformer, final LayerNorm (eps 1e-5).
``mlp_head`` (a classifier, not an embedding) is kept so the released file loads strictly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eoembed.models.nets.common import load_strict, prepare_state_dict

#: Spectral ids of ``fomo_pretraining_datasets.json`` ``modality_channels`` used for S2 and S1.
S2_KEYS = {
    "B1": 6,
    "B2": 7,
    "B3": 8,
    "B4": 9,
    "B5": 10,
    "B6": 11,
    "B7": 12,
    "B8": 13,
    "B8A": 14,
    "B9": 15,
    "B10": 16,
    "B11": 17,
    "B12": 18,
}
S1_KEYS = {"VV": 4, "VH": 5}
NUM_SPECTRAL_IDS = 37
PUBLISHED = dict(
    image_size=64, patch_size=16, dim=768, depth=12, heads=12, dim_head=64, mlp_dim=2048, num_classes=1000
)
_KEYS = tuple(PUBLISHED)


class Attention(nn.Module):
    """vit-pytorch attention: ``norm``, bias-free ``to_qkv``, ``to_out.0`` (absent if it is identity)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = (
            nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
            if not (heads == 1 and dim_head == dim)
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (
            t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(self.norm(x)).chunk(3, -1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    """``net`` = LayerNorm, Linear, GELU, Dropout, Linear, Dropout (keys ``net.0/1/4``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(0.0),
            nn.Linear(hidden, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head), FeedForward(dim, mlp_dim)]) for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class FoMoNet(nn.Module):
    """FoMo-Net_1 (single shared embedding layer, one token group per band)."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.image_size, self.patch_size = image_size, patch_size
        self.grid_size = image_size // patch_size
        n, pp = self.grid_size**2, patch_size * patch_size
        self.pos_embedding = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.spectral_embedding = nn.Parameter(torch.zeros(1, NUM_SPECTRAL_IDS + 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.to_patch_embedding = nn.Sequential(
            nn.Identity(), nn.LayerNorm(pp), nn.Linear(pp, dim), nn.LayerNorm(dim)
        )
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim)
        self.mlp_head = nn.Linear(dim, num_classes)

    def forward_tokens(self, x: Tensor, keys: Sequence[int]) -> dict[str, Tensor]:
        """``x`` (B, C, H, W) with spectral ids ``keys`` (len C) -> ``band_grid`` (B, C, D, h, w),
        ``grid`` = mean over bands (B, D, h, w), ``tokens`` (B, C*h*w, D; band-major),
        ``pooled`` = token mean, ``head_logits`` = ``mlp_head(pooled)`` (the ``pool=True`` output)."""
        keys = [int(k) for k in keys]
        if x.ndim != 4 or x.shape[1] != len(keys):
            raise ValueError(
                f"fomo input x has shape {tuple(x.shape)}: expected (B, {len(keys)}, H, W) for keys {keys}"
            )
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"fomo input x has spatial size {tuple(x.shape[-2:])}: "
                f"the network was built for image_size {self.image_size}"
            )
        bad = [k for k in keys if not 0 <= k < NUM_SPECTRAL_IDS]
        if bad:
            raise ValueError(f"fomo keys {bad} invalid: allowed spectral ids 0..{NUM_SPECTRAL_IDS - 1}")
        b, c = x.shape[:2]
        p, g = self.patch_size, self.grid_size
        patches = x.reshape(b, c, g, p, g, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * g, p * p)
        t = self.to_patch_embedding(patches)
        t = t + self.spectral_embedding[0, keys][None, :, None] + self.pos_embedding[0, 1 : g * g + 1]
        t = self.transformer(t.reshape(b, c * g * g, -1))
        pooled = t.mean(1)
        band_grid = t.reshape(b, c, g, g, -1).permute(0, 1, 4, 2, 3)
        return {
            "band_grid": band_grid,
            "grid": band_grid.mean(1),
            "tokens": t,
            "pooled": pooled,
            "head_logits": self.mlp_head(pooled),
        }


def build(config: Mapping[str, Any]) -> FoMoNet:
    """Network from a config dict (keys of :data:`PUBLISHED`)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown fomo config keys {unknown}: allowed {sorted(_KEYS)}")
    return FoMoNet(**config)


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> FoMoNet:
    """Build and strictly load (the released file loads strictly in the original too)."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix), "fomo")
