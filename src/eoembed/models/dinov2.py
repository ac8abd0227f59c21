"""DINOv2 ViT-S/14 and ViT-B/14 (Oquab et al. 2023) on Sentinel-2 true colour, via timm.

Architecture: timm's ``vit_small_patch14_dinov2`` / ``vit_base_patch14_dinov2`` (the ``.lvd142m``
pretrained configs: 518 px position grid, layer scale, no registers), built with
``dynamic_img_size=True`` so timm interpolates the position embedding to the 224 px input
(16 x 16 patch tokens). Weights: timm's Hugging Face export of the official checkpoints
(``model.safetensors``, timm key names; the official ``dinov2_vit*14_pretrain.pth`` is the same
tensors under Meta's names, which timm converts on its own loading path, not this one).

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb` and timm's data config
for these weights (ImageNet mean/std), one frame, gaps filled with the band mean, 224 px by resize.
Tokens: patch tokens after the final norm; pooled = their mean (not the CLS token).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

#: timm's IMAGENET_DEFAULT_MEAN / _STD (the data config of the .lvd142m weights).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = {"small": ("vit_small_patch14_dinov2", 384), "base": ("vit_base_patch14_dinov2", 768)}

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(IMAGENET_MEAN, IMAGENET_STD), gsd_m=10.0, gsd_tolerance=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=14, default_prep="resize"), missing="fill_mean",
    norm_source="timm resolve_data_config(vit_*_patch14_dinov2.lvd142m): ImageNet mean/std; " + STRETCH_NOTE)


def _card(size: str) -> ModelCard:
    arch, dims = ARCHS[size]
    url = f"https://huggingface.co/timm/{arch}.lvd142m/resolve/main/model.safetensors"
    return ModelCard(
        id=f"dinov2_{size}", family="dinov2", kind="on_the_fly",
        description=f"DINOv2 ViT-{size[0].upper()}/14 (natural images, LVD-142M) on Sentinel-2 true colour, via timm",
        inputs=(S2_RGB,), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name=f"{arch}.lvd142m.safetensors", url=url, sha256="", licence="Apache-2.0"),),
        verified="library", variant=size, licence="Apache-2.0",
        citation="Oquab, M. et al. (2023). DINOv2: Learning Robust Visual Features without Supervision. "
                 "arXiv:2304.07193",
        url="https://github.com/facebookresearch/dinov2", mem_mb=3000 if size == "small" else 5000, runtime_min=30,
        notes=STRETCH_NOTE + " Trained on photographs, not satellite imagery. Position embedding (518 px grid) "
              "interpolated by timm to 224 px. Pooled = mean of patch tokens. The publisher gives no sha256 "
              "here: pin it in models.<id>.weights_sha256. Any GSD is accepted (gsd_tolerance 10).")


class DINOv2(Embedder):
    """DINOv2 backbone (timm) on true-colour Sentinel-2; ``variant`` small / base."""

    cards: ClassVar[dict[str, ModelCard]] = {s: _card(s) for s in ARCHS}
    card: ClassVar[ModelCard] = cards["small"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 16}

    def build(self):
        """timm's DINOv2 network for these weights (518 px grid, dynamic input size, no head)."""
        import timm

        return timm.create_model(ARCHS[self.card.variant][0], pretrained=False, num_classes=0, img_size=518,
                                 dynamic_img_size=True)

    def _load(self) -> None:
        self.net = load_published(self, self.build)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, H, W)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            tokens = self.net.forward_features(x)[:, self.net.num_prefix_tokens:]
        return TokenGrid.from_vit(None, tokens, "patch")
