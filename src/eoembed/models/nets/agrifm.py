"""AgriFM encoder (Li et al., 2025; github.com/flyakon/AgriFM ``models/video_swin_transformer.py``):
``PretrainingSwinTransformer3DEncoder`` = ``patch_emd`` (SwinPatchEmbed3D) + ``backbone`` (a modified
Video-Swin ``SwinTransformer3D``). Written here: timm has no 3-D Swin with this key layout.

Reproduced quirks of the original:

* Input ``(B, T, C, H, W)`` is permuted to ``(B, C, T, H, W)``, zero-padded to multiples of the patch
  and embedded by one Conv3d (no patch norm).
* Windows are clipped per axis to the feature size (shift 0 on clipped axes) and, for clipped windows,
  ``WindowAttention3D`` SLICES ``relative_position_index[:N, :N]`` of the configured (8,7,7) table
  instead of recomputing it -- reproduced as is. Features are zero-padded to window multiples AFTER
  ``norm1``; the shift mask uses the original's slice recipe (a zero shift makes its last slice
  cover the whole axis).
* PatchMerging halves T as well (``downsample_steps``) and, with ``mean_frame_down``, AVERAGES frame
  pairs; an odd T is zero-padded first, so a single remaining frame is averaged with a zero frame
  (halving it), exactly as upstream does.
* Outputs use ``feature_fusion='cat'``: ``(B, C, D, H, W)`` reshaped to ``(B, C*D, H, W)`` (channel
  major). The embedding is the final-normed last stage (``encoder_features``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eoembed.models.nets.common import load_strict, prepare_state_dict

#: S2 bands in channel order and the repo's normalisation (configs/cropland_mapping.py, raw L2A DN).
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
S2_MEAN = (4179.19, 4065.91, 3957.27, 5207.45, 4327.12, 4873.16, 5049.16, 5111.08, 3056.86, 2490.97)
S2_STD = (4041.52, 3691.00, 3629.33, 2973.52, 3569.73, 3085.92, 2937.56, 2806.04, 1808.30, 1694.20)
PUBLISHED = dict(
    patch_size=(4, 2, 2),
    in_chans=10,
    embed_dim=128,
    depths=(2, 2, 18, 2),
    num_heads=(4, 8, 16, 32),
    window_size=(8, 7, 7),
    mlp_ratio=4.0,
    downsample_steps=((2, 2, 2),) * 4,
    mean_frame_down=True,
)
_KEYS = tuple(PUBLISHED)


def _clip(
    size: Sequence[int], window: Sequence[int], shift: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    w, s = list(window), list(shift)
    for i, n in enumerate(size):
        if n <= window[i]:
            w[i], s[i] = n, 0
    return tuple(w), tuple(s)


def _partition(x: Tensor, w: Sequence[int]) -> Tensor:
    b, d, h, wd, c = x.shape
    x = x.view(b, d // w[0], w[0], h // w[1], w[1], wd // w[2], w[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, w[0] * w[1] * w[2], c)


def _reverse(x: Tensor, w: Sequence[int], b: int, d: int, h: int, wd: int) -> Tensor:
    x = x.view(b, d // w[0], h // w[1], wd // w[2], w[0], w[1], w[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, wd, -1)


def _shift_mask(dims: Sequence[int], w: Sequence[int], s: Sequence[int]) -> Tensor:
    img = torch.zeros(1, *dims, 1)
    cuts = [(slice(-w[i]), slice(-w[i], -s[i]), slice(-s[i], None)) for i in range(3)]
    cnt = 0
    for a in cuts[0]:
        for b in cuts[1]:
            for c in cuts[2]:
                img[:, a, b, c, :] = cnt
                cnt += 1
    win = _partition(img, w).squeeze(-1)
    diff = win[:, None, :] - win[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window: Sequence[int], num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        wd, wh, ww = window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        c = torch.stack(torch.meshgrid(*(torch.arange(n) for n in window), indexing="ij")).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + torch.tensor([wd - 1, wh - 1, ww - 1])
        index = rel[..., 0] * (2 * wh - 1) * (2 * ww - 1) + rel[..., 1] * (2 * ww - 1) + rel[..., 2]
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        # upstream quirk: a clipped window reuses the top-left N x N block of the full index table
        rpb = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)]
        attn = attn + rpb.reshape(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.num_heads, n, n) + mask[None, :, None]).view(
                -1, self.num_heads, n, n
            )
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block3D(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, window: Sequence[int], shift: Sequence[int], mlp_ratio: float
    ) -> None:
        super().__init__()
        self.window, self.shift = tuple(window), tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        b, d, h, w, c = x.shape
        win, shift = _clip((d, h, w), self.window, self.shift)
        y = self.norm1(x)
        pads = [(win[i] - n % win[i]) % win[i] for i, n in enumerate((d, h, w))]
        y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        dp, hp, wp = y.shape[1:4]
        mask = None
        if any(shift):
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
            mask = _shift_mask((dp, hp, wp), win, shift).to(y)
        y = _reverse(self.attn(_partition(y, win), mask), win, b, dp, hp, wp)
        if any(shift):
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, step: Sequence[int], mean_frame_down: bool) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)
        self.step, self.mean_frame_down = tuple(step), mean_frame_down

    def forward(self, x: Tensor) -> Tensor:
        _, d, h, w, _ = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        sd, sh, sw = self.step
        mean = sd >= 2 and self.mean_frame_down
        if mean and d % sd:
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, sd - d % sd))
        oh, ow = (0 if sh == 1 else 1), (0 if sw == 1 else 1)
        offsets = ((0, 0), (oh, 0), (0, ow), (oh, ow))
        parts = [x[:, ::sd, a::sh, c::sw] for a, c in offsets]
        if mean:
            for i in range(1, sd):
                parts = [p + x[:, i::sd, a::sh, c::sw] for p, (a, c) in zip(parts, offsets, strict=True)]
            parts = [p / sd for p in parts]
        return self.reduction(self.norm(torch.cat(parts, -1)))


class Stage(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: Sequence[int],
        mlp_ratio: float,
        step: Sequence[int] | None,
        mean_frame_down: bool,
    ) -> None:
        super().__init__()
        shift = tuple(i // 2 for i in window)
        self.blocks = nn.ModuleList(
            Block3D(dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else shift, mlp_ratio)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, step, mean_frame_down) if step is not None else None


class PatchEmbed3D(nn.Module):
    def __init__(self, patch_size: Sequence[int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 1, 3, 4)
        pads = [(p - n % p) % p for p, n in zip(self.patch_size, x.shape[2:], strict=True)]
        return self.proj(F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0])))


class Backbone(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: Sequence[int],
        mlp_ratio: float,
        downsample_steps: Sequence[Sequence[int]],
        mean_frame_down: bool,
    ) -> None:
        super().__init__()
        n = len(depths)
        self.layers = nn.ModuleList(
            Stage(
                embed_dim * 2**i,
                depths[i],
                num_heads[i],
                window_size,
                mlp_ratio,
                downsample_steps[i] if i < n - 1 else None,
                mean_frame_down,
            )
            for i in range(n)
        )
        self.norm = nn.LayerNorm(embed_dim * 2 ** (n - 1))


def _cat(x: Tensor) -> Tensor:
    b, c, d, h, w = x.shape
    return x.reshape(b, c * d, h, w)


class AgriFMEncoder(nn.Module):
    """``patch_emd`` + ``backbone`` as in PretrainingSwinTransformer3DEncoder."""

    def __init__(
        self,
        patch_size: Sequence[int],
        in_chans: int,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: Sequence[int],
        mlp_ratio: float = 4.0,
        downsample_steps: Sequence[Sequence[int]] = ((2, 2, 2),) * 4,
        mean_frame_down: bool = True,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.patch_emd = PatchEmbed3D(patch_size, in_chans, embed_dim)
        self.backbone = Backbone(
            embed_dim, depths, num_heads, window_size, mlp_ratio, downsample_steps, mean_frame_down
        )

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """``x`` (B, T, C, H, W) normalised S2 time series -> ``grid`` = ``encoder_features``
        (B, C*D, h, w; final-normed last stage, 'cat' fusion), ``pooled`` (spatial mean) and
        ``features_list`` (patch embedding, then each stage after its merging, 'cat' fused)."""
        if x.ndim != 5 or x.shape[2] != self.in_chans:
            raise ValueError(
                f"agrifm input x has shape {tuple(x.shape)}: expected (B, T, {self.in_chans}, H, W)"
            )
        t = self.patch_emd(x)
        feats = [_cat(t)]
        h = t.permute(0, 2, 3, 4, 1)
        for stage in self.backbone.layers:
            for blk in stage.blocks:
                h = blk(h)
            if stage.downsample is not None:
                h = stage.downsample(h)
            feats.append(_cat(h.permute(0, 4, 1, 2, 3)))
        grid = _cat(self.backbone.norm(h).permute(0, 4, 1, 2, 3))
        return {"grid": grid, "pooled": grid.mean((2, 3)), "features_list": feats[:-1]}


def build(config: Mapping[str, Any]) -> AgriFMEncoder:
    """Network from a config dict (keys of :data:`PUBLISHED`)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown agrifm config keys {unknown}: allowed {sorted(_KEYS)}")
    return AgriFMEncoder(**config)


def revise_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The original loader's ``revise_keys`` for S2: strip a leading ``module.``, then rename
    ``S2_patch_emd`` to ``patch_emd``."""
    out = {}
    for k, v in state_dict.items():
        k = k[len("module.") :] if k.startswith("module.") else k
        out[k.replace("S2_patch_emd", "patch_emd")] = v
    return out


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> AgriFMEncoder:
    """Build and strictly load (keys ``patch_emd.*`` / ``backbone.*``; use :func:`revise_keys` first
    for a file saved with ``module.`` / ``S2_patch_emd``)."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix), "agrifm")
