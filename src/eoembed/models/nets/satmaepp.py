"""SatMAE++ encoders (Noman et al., CVPR 2024; github.com/techmn/satmae_pp).

SatMAE++ keeps SatMAE's encoders and adds a multi-scale reconstruction head (``proj_up_*``,
``up_block*``) that the embedding never uses:

* ``rgb`` -- ``models_mae.MaskedAutoencoderViT.forward_encoder``: the SatMAE MAE ViT
  (:class:`~eoembed.models.nets.satmae.MAEViTEncoder`), tokens un-shuffled (see satmae.py).
* ``s2`` -- ``models_mae_group_channels.MaskedAutoencoderGroupChannelViT.forward_encoder``:
  the grouped-channel ViT with ``cls_embed=False`` (the CLS token gets no pos/channel
  embedding and there is no ``channel_cls_embed``); tokens group-major, grid = mean over groups
  (rs-embed's ``satmaepp_s2`` grid default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from eoembed.models.nets.common import load_strict, prepare_state_dict
from eoembed.models.nets.satmae import (
    FMOW_S2_GROUPS,
    MAE_UNUSED,
    GroupChannelViT,
    MAEViTEncoder,
    build_group,
    build_rgb,
)

#: Checkpoint parts the SatMAE++ encoders do not use (MAE decoder + multi-scale up-sampling head).
UNUSED = MAE_UNUSED + ("proj_up_", "up_block")

PUBLISHED = {
    "rgb": dict(img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16),
    "s2": dict(
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


def build(variant: str, config: Mapping[str, Any]) -> MAEViTEncoder | GroupChannelViT:
    """The ``rgb`` or ``s2`` encoder from a config dict (keys as in :data:`PUBLISHED`)."""
    if variant == "rgb":
        return build_rgb({"name": "satmaepp_rgb", **config})
    if variant == "s2":
        return build_group({"name": "satmaepp_s2", **config, "cls_embed": False, "global_pool": False})
    raise ValueError(f"satmaepp variant={variant!r} is invalid: allowed 'rgb', 's2'")


def load(
    variant: str, config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = ""
) -> MAEViTEncoder | GroupChannelViT:
    """Build ``variant`` and strictly load a pretrain ``ckpt['model']`` (decoder/up-sampling head dropped)."""
    model = build(variant, config)
    return load_strict(model, prepare_state_dict(state_dict, prefix=prefix, ignore=UNUSED), model.name)
