"""SatVision-TOA encoder (NASA NCCS; github.com/nasa-nccs-hpda/pytorch-caney ``models/mim.py`` +
``models/encoders/swinv2.py``): the SwinV2 of SimMIM pre-training on 14-channel MODIS TOA at 128 px.

Written here because timm's SwinV2 differs in key layout (timm puts ``downsample`` at the start of a
stage; here it ends the stage as ``layers.i.downsample``) and has no ``norm3`` extra norms. The
network: patch conv + LayerNorm; 4 stages of res-post-norm blocks (``x + norm1(attn(x))``,
``x + norm2(mlp(x))``) with scaled cosine window attention (``logit_scale`` clamped at log 100,
continuous position bias ``16*sigmoid(cpb_mlp(log-spaced coords))``, q/v biases only), shifted
windows on odd blocks (no shift and a clipped window when the stage is not larger than the window),
``norm3`` after every ``extra_norm_period``-th block of a stage (the pre-training encoder is built
with NORM_PERIOD; pytorch-caney's downstream ``satvision.py`` wrapper omits it and would drop the
norm3 weights with ``strict=False`` -- here they are required); PatchMerging after stages 1-3;
final LayerNorm; embedding = mean of the last-stage tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eoembed.models.nets.common import check_input, load_strict, prepare_state_dict, tokens_to_grid

#: MODIS bands in channel order, as the released model expects them (reflectance bands at
#: indices 0,1,2,3,4,6; emissive at 5,7..13), each scaled to [0, 1].
MODIS_BANDS = (1, 2, 3, 26, 6, 20, 7, 27, 28, 29, 31, 32, 33, 34)
PUBLISHED = dict(
    img_size=128,
    patch_size=4,
    in_chans=14,
    embed_dim=512,
    depths=(2, 2, 42, 2),
    num_heads=(16, 32, 64, 128),
    window_size=8,
    mlp_ratio=4.0,
    extra_norm_period=6,
    extra_norm_stage=False,
)
#: Parts of the MiM encoder's state dict the embedding does not use.
UNUSED = ("mask_token",)
_KEYS = tuple(PUBLISHED)


def _windows(x: Tensor, w: int) -> Tensor:
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def _unwindows(x: Tensor, w: int, h: int, wd: int) -> Tensor:
    b = x.shape[0] // ((h // w) * (wd // w))
    return x.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, -1)


class WindowAttention(nn.Module):
    """SwinV2 scaled cosine attention with continuous position bias (original key names)."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False)
        )
        r = torch.arange(-(window - 1), window, dtype=torch.float32)
        table = (
            torch.stack(torch.meshgrid(r, r, indexing="ij")).permute(1, 2, 0)[None] / max(window - 1, 1) * 8
        )
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
        self.register_buffer("relative_coords_table", table)
        c = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = (
            F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        )
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        rpb = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(rpb)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.num_heads, n, n) + mask[None, :, None]).view(
                b, self.num_heads, n, n
            )
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinV2Block(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: int,
        num_heads: int,
        window: int,
        shift: int,
        mlp_ratio: float,
        extra_norm: bool,
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim) if extra_norm else nn.Identity()
        mask = None
        if shift:
            img = torch.zeros(1, resolution, resolution, 1)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
                img[:, hs, ws] = i
            win = _windows(img, window).squeeze(-1)
            diff = win[:, None, :] - win[:, :, None]
            mask = diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        r, w, s = self.resolution, self.window, self.shift
        h = x.view(b, r, r, c)
        if s:
            h = torch.roll(h, shifts=(-s, -s), dims=(1, 2))
        h = _unwindows(self.attn(_windows(h, w), self.attn_mask), w, r, r)
        if s:
            h = torch.roll(h, shifts=(s, s), dims=(1, 2))
        x = x + self.norm1(h.reshape(b, n, c))
        x = x + self.norm2(self.mlp(x))
        return self.norm3(x)


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: Tensor, r: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, r, r, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.norm(self.reduction(x.view(b, -1, 4 * c)))


class Stage(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        extra_norm_period: int,
        extra_norm_stage: bool,
        downsample: bool,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        extra = [
            (extra_norm_period and (i + 1) % extra_norm_period == 0) or (extra_norm_stage and i + 1 == depth)
            for i in range(depth)
        ]
        self.blocks = nn.ModuleList(
            SwinV2Block(
                dim,
                resolution,
                num_heads,
                window,
                0 if i % 2 == 0 else window // 2,
                mlp_ratio,
                bool(extra[i]),
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)


class SatVisionTOA(nn.Module):
    """The SimMIM SwinV2 encoder; ``forward_tokens`` gives the pooled vector and last-stage grid."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: int,
        mlp_ratio: float = 4.0,
        extra_norm_period: int = 0,
        extra_norm_stage: bool = False,
    ) -> None:
        super().__init__()
        self.img_size, self.in_chans = img_size, in_chans
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        res, n = img_size // patch_size, len(depths)
        self.layers = nn.ModuleList(
            Stage(
                embed_dim * 2**i,
                res // 2**i,
                depths[i],
                num_heads[i],
                window_size,
                mlp_ratio,
                extra_norm_period,
                extra_norm_stage,
                i < n - 1,
            )
            for i in range(n)
        )
        self.norm = nn.LayerNorm(embed_dim * 2 ** (n - 1))

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """MODIS TOA (B, 14, 128, 128) in [0, 1] -> ``grid`` (B, C, 4, 4; final-normed last stage),
        ``tokens`` (B, 16, C), ``pooled`` (token mean), ``last_stage_map`` (no final norm)."""
        check_input(x, self.in_chans, self.img_size, "satvision_toa")
        t = self.patch_embed.norm(self.patch_embed.proj(x).flatten(2).transpose(1, 2))
        for stage in self.layers:
            for blk in stage.blocks:
                t = blk(t)
            last, r = t, stage.resolution
            if stage.downsample is not None:
                t = stage.downsample(t, stage.resolution)
        t = self.norm(last)
        return {
            "grid": tokens_to_grid(t, r, r),
            "tokens": t,
            "pooled": t.mean(1),
            "last_stage_map": tokens_to_grid(last, r, r),
        }


def build(config: Mapping[str, Any]) -> SatVisionTOA:
    """Network from a config dict (keys of :data:`PUBLISHED`)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown satvision_toa config keys {unknown}: allowed {sorted(_KEYS)}")
    return SatVisionTOA(**config)


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> SatVisionTOA:
    """Build and strictly load the encoder state dict (``mask_token`` dropped). For the DeepSpeed
    file use ``subtree(ckpt['module'], 'encoder.')`` first."""
    return load_strict(
        build(config), prepare_state_dict(state_dict, prefix=prefix, ignore=UNUSED), "satvision_toa"
    )
