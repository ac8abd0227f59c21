"""Scale-MAE ViT-L/16 (Reed et al. 2023): GSD-aware position embeddings, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.scale_mae.scalemae_large_patch16`` (a timm ViT-L/16 whose 2-D
sin-cos position embedding is scaled by the ground sampling distance ``res`` in metres).
Weights: TorchGeo's ``ScaleMAELarge16_Weights.FMOW_RGB`` (fMoW RGB pretraining; plain state dict
with timm key names). TorchGeo loads it non-strictly; eoembed requires every patch-embedding and
block tensor and tolerates only the classifier, the final norm (``norm`` or ``fc_norm``) and the
unused learned ``pos_embed`` being absent. **Licence CC-BY-NC-4.0: non-commercial use only.**

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb` and TorchGeo's published
``Normalize(0, 255) -> Normalize(ImageNet mean, std)`` (the stretch replaces the 8-bit scaling),
one frame, gaps filled with the band mean, 224 px by resize. ``res`` = the batch's pixel size after
resize (``ReadyBatch.gsd_m``), so a 2 km ROI resized to 224 px is embedded at ~8.9 m.
Tokens: patch tokens after the final norm (14 x 14 of 1024 d); pooled = their mean.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

#: torchgeo.models.scale_mae._mean / _std (applied after / 255)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIONAL_KEYS = {"head.weight", "head.bias", "norm.weight", "norm.bias", "fc_norm.weight", "fc_norm.bias",
                 "pos_embed"}
WEIGHTS = WeightsFile(
    name="vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth",
    url="https://hf.co/isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae/resolve/"
        "9dc7f569424baeb780698352cf6e87638c882123/vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth",
    sha256="", licence="CC-BY-NC-4.0")

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(IMAGENET_MEAN, IMAGENET_STD), gsd_m=10.0, gsd_tolerance=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=16, default_prep="resize"), missing="fill_mean",
    metadata=("gsd",),
    norm_source="torchgeo 0.8.1 _scale_mae_transforms: Normalize(0, 255), Normalize(ImageNet mean/std); "
                + STRETCH_NOTE)


class ScaleMAE(Embedder):
    """Scale-MAE ViT-L/16 encoder (fMoW RGB weights, non-commercial)."""

    card: ClassVar[ModelCard] = ModelCard(
        id="scalemae_large", family="scalemae", kind="on_the_fly",
        description="Scale-MAE ViT-L/16 (fMoW RGB, GSD-aware) on Sentinel-2 true colour, TorchGeo weights",
        inputs=(S2_RGB,), dims=1024, outputs=("pooled", "grid"), weights=(WEIGHTS,), verified="library",
        licence="CC-BY-NC-4.0 (non-commercial)",
        citation="Reed, C. J., Gupta, R., Li, S., Brockman, S., Funk, C., Clipp, B., Keutzer, K., Candido, S., "
                 "Uyttendaele, M., Darrell, T. (2023). Scale-MAE: A Scale-Aware Masked Autoencoder for Multiscale "
                 "Geospatial Representation Learning. ICCV 2023.",
        url="https://github.com/bair-climate-initiative/scale-mae", mem_mb=8000, runtime_min=60,
        notes="NON-COMMERCIAL weights (CC-BY-NC-4.0). Pretrained on fMoW RGB (0.3-10 m aerial/satellite "
              "photographs), not Sentinel-2. " + STRETCH_NOTE + " GSD handed to the model = pixel size after "
              "resize. Pooled = mean of patch tokens. Pin the sha256 in models.<id>.weights_sha256 (TorchGeo's "
              "file name carries its prefix 98ed9821).")
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 4}

    @staticmethod
    def build():
        """TorchGeo's Scale-MAE ViT-L/16, untrained, without a classifier."""
        from torchgeo.models.scale_mae import scalemae_large_patch16

        return scalemae_large_patch16(weights=None, num_classes=0)

    def _load(self) -> None:
        self.net = load_published(self, self.build, OPTIONAL_KEYS)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, 224, 224)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        self.net.res = float(batch.gsd_m)
        with torch.inference_mode():
            tokens = self.net.forward_features(x)[:, self.net.num_prefix_tokens:]
        return TokenGrid.from_vit(None, tokens, "patch")
