"""ConvNeXt V2 atto ... base (Woo et al. 2023) on Sentinel-2 true colour, via timm.

Architecture: timm's ``convnextv2_<size>``; weights: timm's Hugging Face export of the official
FCMAE-pretrained, ImageNet-1k fine-tuned checkpoints (``convnextv2_<size>.fcmae_ft_in1k``,
``model.safetensors``, timm key names, the 1000-class ``head.fc`` included and ignored here).
**Licence CC-BY-NC-4.0 (timm's pretrained config): non-commercial use only.**

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb` and timm's data config
(ImageNet mean/std), one frame, gaps filled with the band mean, 224 px by resize. timm's eval
transform is ``Resize(256, bicubic) -> CenterCrop(224)`` (crop_pct 0.875): eoembed resizes the whole
ROI instead (identical for the central 224 px of a 256 px scene; see the SSL4EO module).

Tokens (option ``tokens``): ``"pooled"`` (default) = timm's own embedding (global average pool,
then ``head.norm``; ``forward`` with ``num_classes=0``), one token per 224 px input; ``"map"`` = the
last stage's 7 x 7 feature map (stride 32, before ``head.norm``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZES = {"atto": 320, "femto": 384, "pico": 512, "nano": 640, "tiny": 768, "base": 1024}
OPTIONAL_KEYS = {"head.fc.weight", "head.fc.bias"}
TOKENS = ("pooled", "map")

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(IMAGENET_MEAN, IMAGENET_STD), gsd_m=10.0, gsd_tolerance=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=224, default_prep="resize"), missing="fill_mean",
    norm_source="timm pretrained_cfg convnextv2_*.fcmae_ft_in1k: ImageNet mean/std, Resize(256) + "
                "CenterCrop(224); " + STRETCH_NOTE)


def _card(size: str) -> ModelCard:
    arch = f"convnextv2_{size}.fcmae_ft_in1k"
    return ModelCard(
        id=f"convnextv2_{size}", family="convnextv2", kind="on_the_fly",
        description=f"ConvNeXt V2-{size} (FCMAE, ImageNet-1k fine-tuned) on Sentinel-2 true colour, via timm",
        inputs=(S2_RGB,), dims=SIZES[size], outputs=("pooled", "grid"),
        weights=(WeightsFile(name=f"{arch}.safetensors",
                             url=f"https://huggingface.co/timm/{arch}/resolve/main/model.safetensors",
                             sha256="", licence="CC-BY-NC-4.0"),),
        verified="library", variant=size, licence="CC-BY-NC-4.0 (non-commercial)",
        citation="Woo, S., Debnath, S., Hu, R., Chen, X., Liu, Z., Kweon, I. S., Xie, S. (2023). ConvNeXt V2: "
                 "Co-designing and Scaling ConvNets with Masked Autoencoders. CVPR 2023.",
        url="https://github.com/facebookresearch/ConvNeXt-V2", mem_mb=2000 if SIZES[size] < 768 else 4000,
        runtime_min=30,
        notes="NON-COMMERCIAL weights (CC-BY-NC-4.0). Trained on photographs. " + STRETCH_NOTE + " No centre "
              "crop (timm crops 224 of 256). Pin the sha256 in models.<id>.weights_sha256.")


class ConvNeXtV2(Embedder):
    """ConvNeXt V2 (timm) on true-colour Sentinel-2; ``variant`` atto ... base."""

    cards: ClassVar[dict[str, ModelCard]] = {s: _card(s) for s in SIZES}
    card: ClassVar[ModelCard] = cards["atto"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 16, "tokens": "pooled"}

    token_choices: ClassVar[tuple[str, ...]] = TOKENS

    def inputs(self) -> tuple[InputSpec, ...]:
        token = 224 if self.options["tokens"] == "pooled" else 32
        return (replace(S2_RGB, space=SpacePolicy("fixed", size=224, token_px=token, default_prep="resize")),)

    def build(self):
        """timm's ConvNeXt V2 of this size, untrained, without the classifier."""
        import timm

        return timm.create_model(f"convnextv2_{self.card.variant}", pretrained=False, num_classes=0)

    def _load(self) -> None:
        self.net = load_published(self, self.build, OPTIONAL_KEYS)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, 224, 224)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            fmap = self.net.forward_features(x)
            out = self.net.forward_head(fmap)[:, :, None, None] if self.options["tokens"] == "pooled" else fmap
        f = out.float().cpu().numpy()
        return TokenGrid(f, np.ones((f.shape[0], f.shape[2], f.shape[3]), np.float32))
