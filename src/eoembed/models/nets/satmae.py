"""SatMAE encoders (Cong et al., NeurIPS 2022; github.com/sustainlab-group/SatMAE).

Two networks, both timm ViT blocks (timm Block/PatchEmbed keep the original key names):

* :class:`MAEViTEncoder` -- ``models_mae.MaskedAutoencoderViT.forward_encoder`` (fMoW-RGB,
  ViT-L/16 at 224 px). The original runs ``random_masking`` even at mask ratio 0, which permutes
  the patch tokens; attention is permutation-equivariant, so this encoder skips the shuffle and
  returns tokens in raster order (= the original's output un-shuffled with ``ids_restore``).
* :class:`GroupChannelViT` -- ``models_vit_group_channels.GroupChannelsVisionTransformer``
  (fMoW-Sentinel, 10 bands in 3 groups, ViT-L patch 8 at 96 px): one patch embedding per band
  group, each token gets ``cat(pos_embed, channel_embed[g])``; tokens are ordered group-major.
  ``cls_embed=False`` reproduces the pretrain MAE encoder (``MaskedAutoencoderGroupChannelViT``),
  whose CLS token gets no positional/channel embedding and which has no ``channel_cls_embed``.

The pos/channel embeddings are fixed sin-cos tables in the original but are stored in every
checkpoint, so they are loaded, not regenerated. SatMAE++ (``satmaepp.py``) reuses both networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from eoembed.models.nets.common import (
    check_input,
    layer_norm,
    load_strict,
    prepare_state_dict,
    tokens_to_grid,
    vit_blocks,
)

#: Checkpoint parts of the MAE pretrain files that the encoder does not use.
MAE_UNUSED = ("decoder_", "mask_token")
#: fMoW-Sentinel band order of the grouped model (B1, B9, B10 dropped) and its groups.
FMOW_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
FMOW_S2_GROUPS = ((0, 1, 2, 6), (3, 4, 5, 7), (8, 9))
#: fMoW-Sentinel 13-band statistics (B1..B12 with B8A and B10; raw L1C DN) of SatMAE/SatMAE++
#: ``SentinelIndividualImageDataset``. ``SentinelNormalize`` maps each band with
#: ``clip((x - (mean - 2 std)) / (4 std) * 255, 0, 255)`` to uint8, then ToTensor (/255); bands
#: 0, 9, 10 (B1, B9, B10) are dropped AFTER normalising, leaving :data:`FMOW_S2_BANDS`.
FMOW_S2_13_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
FMOW_S2_13_MEAN = (
    1370.19151926,
    1184.3824625,
    1120.77120066,
    1136.26026392,
    1263.73947144,
    1645.40315151,
    1846.87040806,
    1762.59530783,
    1972.62420416,
    582.72633433,
    14.77112979,
    1732.16362238,
    1247.91870117,
)
FMOW_S2_13_STD = (
    633.15169573,
    650.2842772,
    712.12507725,
    965.23119807,
    948.9819932,
    1108.06650639,
    1258.36394548,
    1233.1492281,
    1364.38688993,
    472.37967789,
    14.3114637,
    1310.36996126,
    1087.6020813,
)
#: fMoW-RGB normalisation of the repo (after ToTensor, RGB order).
FMOW_RGB_MEAN = (0.4182, 0.4215, 0.3991)
FMOW_RGB_STD = (0.2877, 0.2754, 0.2764)

#: Published configurations (from the oracles' json ``published_config``).
PUBLISHED = {
    "rgb": dict(img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16),
    "group": dict(
        img_size=96,
        patch_size=8,
        in_chans=10,
        embed_dim=1024,
        channel_embed=256,
        depth=24,
        num_heads=16,
        channel_groups=FMOW_S2_GROUPS,
    ),
}


def _patch_embed(img_size: int, patch_size: int, in_chans: int, dim: int) -> nn.Module:
    from timm.layers import PatchEmbed

    return PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=dim)


class MAEViTEncoder(nn.Module):
    """Plain MAE ViT encoder: ``norm(blocks([cls + pos[0]; patch_embed(x) + pos[1:]]))``."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        name: str = "satmae",
    ) -> None:
        super().__init__()
        self.name, self.img_size, self.in_chans = name, img_size, in_chans
        self.grid_size = img_size // patch_size
        self.patch_embed = _patch_embed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size**2 + 1, embed_dim), requires_grad=False)
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = layer_norm()(embed_dim)

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``grid`` (B, D, h, w), ``tokens`` (B, 1+h*w, D; CLS first, raster order),
        ``cls`` (B, D) and ``pooled`` = mean of the patch tokens (rs-embed's pooled SatMAE vector)."""
        check_input(x, self.in_chans, self.img_size, self.name)
        t = self.patch_embed(x) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        t = torch.cat([cls, t], 1)
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)
        g = self.grid_size
        return {
            "grid": tokens_to_grid(t[:, 1:], g, g),
            "tokens": t,
            "cls": t[:, 0],
            "pooled": t[:, 1:].mean(1),
        }


class GroupChannelViT(nn.Module):
    """Grouped-channel ViT (SatMAE multispectral); ``global_pool`` selects the fine-tune head path."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        channel_embed: int,
        depth: int,
        num_heads: int,
        channel_groups: Sequence[Sequence[int]],
        mlp_ratio: float = 4.0,
        cls_embed: bool = True,
        global_pool: bool = False,
        name: str = "satmae_group",
    ) -> None:
        super().__init__()
        self.name, self.img_size, self.in_chans = name, img_size, in_chans
        self.groups = [list(g) for g in channel_groups]
        if sorted(c for g in self.groups for c in g) != list(range(in_chans)):
            raise ValueError(f"channel_groups={channel_groups!r} must partition channels 0..{in_chans - 1}")
        self.grid_size = img_size // patch_size
        self.cls_embed, self.global_pool = cls_embed, global_pool
        self.patch_embed = nn.ModuleList(
            _patch_embed(img_size, patch_size, len(g), embed_dim) for g in self.groups
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        pos_dim = embed_dim - channel_embed
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size**2 + 1, pos_dim))
        self.channel_embed = nn.Parameter(torch.zeros(1, len(self.groups), channel_embed))
        if cls_embed:
            self.channel_cls_embed = nn.Parameter(torch.zeros(1, 1, channel_embed))
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio)
        if global_pool:
            self.fc_norm = layer_norm()(embed_dim)
        else:
            self.norm = layer_norm()(embed_dim)

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """Return ``group_grid`` (B, G, D, h, w), ``grid`` = its mean over groups (B, D, h, w),
        ``tokens`` (B, 1+G*h*w, D; CLS then group-major), ``cls`` and ``pooled``.

        ``global_pool=False``: tokens are final-normed, ``pooled`` = mean of all patch tokens.
        ``global_pool=True``: tokens are NOT normed (the original deletes ``norm``) and
        ``pooled`` = ``fc_norm(mean of patch tokens)`` as in the fine-tuned classifier.
        """
        check_input(x, self.in_chans, self.img_size, self.name)
        b, n = x.shape[0], self.grid_size**2
        pos = self.pos_embed[:, 1:]
        parts = []
        for g, (group, embed) in enumerate(zip(self.groups, self.patch_embed, strict=True)):
            ch = self.channel_embed[:, g : g + 1].expand(-1, n, -1)
            parts.append(embed(x[:, group]) + torch.cat([pos, ch], -1))
        cls = self.cls_token
        if self.cls_embed:
            cls = cls + torch.cat([self.pos_embed[:, :1], self.channel_cls_embed], -1)
        t = torch.cat([cls.expand(b, -1, -1), *parts], 1)
        for blk in self.blocks:
            t = blk(t)
        if self.global_pool:
            pooled = self.fc_norm(t[:, 1:].mean(1))
        else:
            t = self.norm(t)
            pooled = t[:, 1:].mean(1)
        s = self.grid_size
        group_grid = torch.stack(
            [tokens_to_grid(t[:, 1 + i * n : 1 + (i + 1) * n], s, s) for i in range(len(self.groups))], 1
        )
        return {
            "group_grid": group_grid,
            "grid": group_grid.mean(1),
            "tokens": t,
            "cls": t[:, 0],
            "pooled": pooled,
        }


def _kwargs(config: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}: allowed {sorted(allowed)}")
    return dict(config)


_MAE_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio", "name")
_GROUP_KEYS = _MAE_KEYS + ("channel_embed", "channel_groups", "cls_embed", "global_pool")


def build_rgb(config: Mapping[str, Any]) -> MAEViTEncoder:
    """SatMAE fMoW-RGB encoder from a config dict (keys of :data:`PUBLISHED` ``["rgb"]``)."""
    return MAEViTEncoder(**_kwargs(config, _MAE_KEYS))


def build_group(config: Mapping[str, Any]) -> GroupChannelViT:
    """SatMAE grouped-channel ViT from a config dict (keys of :data:`PUBLISHED` ``["group"]``)."""
    return GroupChannelViT(**_kwargs(config, _GROUP_KEYS))


def load_rgb(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> MAEViTEncoder:
    """Build and strictly load the fMoW-RGB encoder from a pretrain ``ckpt['model']`` (decoder dropped)."""
    model = build_rgb(config)
    return load_strict(model, prepare_state_dict(state_dict, prefix=prefix, ignore=MAE_UNUSED), model.name)


def load_group(
    config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "", ignore: Sequence[str] = ()
) -> GroupChannelViT:
    """Build and strictly load the grouped-channel ViT.

    ``ignore`` lists checkpoint parts to drop (e.g. ``("head.",)`` for a fine-tune checkpoint,
    or :data:`MAE_UNUSED` for the pretrain MAE file together with ``cls_embed=False``).
    """
    model = build_group(config)
    return load_strict(model, prepare_state_dict(state_dict, prefix=prefix, ignore=ignore), model.name)
