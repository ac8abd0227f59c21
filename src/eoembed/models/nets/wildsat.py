"""WildSAT image encoders (Daroya et al., 2025; github.com/cvl-umass/wildsat): the ViT-B/16 path
(checked against the original code's oracle) and the ResNet-50 / Swin-T paths.

``models/get_model.py`` builds ``SingleTaskModel(backbone, decoder)``: the backbone is torchvision's
``vit_b_16`` INCLUDING its 1000-way ImageNet head ``heads.head`` (WildSAT does not remove it), the
decoder a ``ThreeLinearModel`` of three bias-free linear maps on the 1000 logits:
``backbone1`` -> text space, ``backbone2`` -> SINR location space, ``backbone3`` -> image space
(the embedding rs-embed calls ``image_head``). No L2 normalisation on this path.

The network is torchvision's ``VisionTransformer`` itself (same class as the original), so the
checkpoint's ``satellite_state_dict`` loads under its own names after stripping ``module.``.

ResNet-50 / Swin-T (``get_model('resnet50' | 'swint', ...)``): torchvision's ``resnet50`` /
``swin_t`` with their 1000-way ImageNet layers (``fc`` / ``head``) kept, the same ``ThreeLinearModel``
on the logits; :class:`WildSATTorchvision` builds exactly that (configs :data:`PUBLISHED_CNN`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from eoembed.models.nets.common import check_input, load_strict, prepare_state_dict, tokens_to_grid

#: Published configuration: torchvision vit_b_16 + 256-d ThreeLinearModel (train.py defaults).
PUBLISHED = dict(
    image_size=224,
    patch_size=16,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    mlp_dim=3072,
    num_classes=1000,
    num_outputs=256,
)
#: Prefix of the keys in ``ckpt['satellite_state_dict']`` (DataParallel wrapper).
CHECKPOINT_PREFIX = "module."
_KEYS = (
    "image_size",
    "patch_size",
    "num_layers",
    "num_heads",
    "hidden_dim",
    "mlp_dim",
    "num_classes",
    "num_outputs",
)


class ThreeLinear(nn.Module):
    """The three bias-free projection branches (keys ``backbone{1,2,3}.0.weight``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        for i in (1, 2, 3):
            setattr(self, f"backbone{i}", nn.Sequential(nn.Linear(in_dim, out_dim, bias=False)))


class WildSATViT(nn.Module):
    """torchvision ViT (with ImageNet head) + WildSAT ThreeLinear projection heads."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        num_classes: int,
        num_outputs: int,
    ) -> None:
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer

        self.image_size, self.grid_size = image_size, image_size // patch_size
        self.backbone = VisionTransformer(
            image_size=image_size,
            patch_size=patch_size,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            mlp_dim=mlp_dim,
            num_classes=num_classes,
        )
        self.decoder = ThreeLinear(num_classes, num_outputs)

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """RGB in [0, 1] (per-image min-max scaled) -> ``grid`` (B, D, h, w) of the encoder's
        normed patch tokens, ``tokens`` (B, 1+h*w, D; CLS first), ``feats`` (ImageNet logits),
        ``image``/``text``/``sinr`` (B, num_outputs) branch embeddings; ``pooled`` = ``image``."""
        check_input(x, 3, self.image_size, "wildsat")
        vit = self.backbone
        t = vit._process_input(x)
        t = torch.cat([vit.class_token.expand(x.shape[0], -1, -1), t], 1)
        t = vit.encoder(t)
        feats = vit.heads(t[:, 0])
        dec = self.decoder
        image = dec.backbone3(feats)
        g = self.grid_size
        return {
            "grid": tokens_to_grid(t[:, 1:], g, g),
            "tokens": t,
            "feats": feats,
            "image": image,
            "text": dec.backbone1(feats),
            "sinr": dec.backbone2(feats),
            "pooled": image,
        }


#: ResNet-50 / Swin-T WildSAT paths: torchvision architecture name, ImageNet classes, head width
PUBLISHED_CNN = {
    "rn50": dict(arch="resnet50", image_size=224, num_classes=1000, num_outputs=256),
    "swint": dict(arch="swin_t", image_size=224, num_classes=1000, num_outputs=256),
}
_CNN_KEYS = ("arch", "image_size", "num_classes", "num_outputs")


class WildSATTorchvision(nn.Module):
    """torchvision ResNet-50 or Swin-T (with ImageNet head) + WildSAT ThreeLinear projection heads."""

    def __init__(self, arch: str, image_size: int, num_classes: int, num_outputs: int) -> None:
        super().__init__()
        import torchvision.models as tvm

        if arch not in ("resnet50", "swin_t"):
            raise ValueError(f"wildsat config arch={arch!r} is invalid: allowed 'resnet50', 'swin_t'")
        self.image_size = image_size
        self.backbone = getattr(tvm, arch)(weights=None, num_classes=num_classes)
        self.decoder = ThreeLinear(num_classes, num_outputs)

    def forward_tokens(self, x: Tensor) -> dict[str, Tensor]:
        """RGB in [0, 1] (per-image min-max scaled) -> ``feats`` (ImageNet logits) and the three
        branch embeddings; ``pooled`` = ``image`` (no token grid: the heads see one vector)."""
        check_input(x, 3, self.image_size, "wildsat")
        feats = self.backbone(x)
        dec = self.decoder
        image = dec.backbone3(feats)
        return {"feats": feats, "image": image, "text": dec.backbone1(feats), "sinr": dec.backbone2(feats),
                "pooled": image}


def build(config: Mapping[str, Any]) -> nn.Module:
    """Network from a config dict (keys of :data:`PUBLISHED`, or of :data:`PUBLISHED_CNN` with ``arch``)."""
    if "arch" in config:
        unknown = sorted(set(config) - set(_CNN_KEYS))
        if unknown:
            raise ValueError(f"unknown wildsat config keys {unknown}: allowed {sorted(_CNN_KEYS)}")
        return WildSATTorchvision(**config)
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown wildsat config keys {unknown}: allowed {sorted(_KEYS)}")
    return WildSATViT(**config)


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> nn.Module:
    """Build and strictly load; pass ``prefix=CHECKPOINT_PREFIX`` for ``ckpt['satellite_state_dict']``."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix), "wildsat")
