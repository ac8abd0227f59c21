"""DINOv3 ViT-L/16 distilled on SAT-493M (Simeoni et al. 2025) on Sentinel-2 true colour, via timm.

Architecture: timm's ``vit_large_patch16_dinov3`` (the ``.sat493m`` pretrained config): 24 blocks of
1024, 16 px patches, RoPE position encoding (no absolute position embedding, so any multiple of 16 px
works), 1 class + 4 register tokens, layer scale. Weights: timm's Hugging Face export
``timm/vit_large_patch16_dinov3.sat493m`` (``model.safetensors``, timm key names; Meta's original
``dinov3_vitl16_pretrain_sat493m-*.pth`` holds the same tensors under Meta's names, which timm converts
on its own loading path, not this one).

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb`, then timm's data config for
these weights: the SAT-493M mean/std ``(0.430, 0.411, 0.296)`` / ``(0.213, 0.156, 0.143)``, 256 px
(``input_size``, ``crop_pct`` 1.0), one frame, gaps filled with the band mean, reached by resize.
Tokens: the 16 x 16 patch tokens after the final norm (prefix tokens dropped); pooled = their mean
(DINOv3 itself reports the class token for global tasks).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

ARCH, TAG = "vit_large_patch16_dinov3", "sat493m"
#: timm's pretrained config of ``vit_large_patch16_dinov3.sat493m`` (the SAT-493M normalisation).
SAT_MEAN = (0.430, 0.411, 0.296)
SAT_STD = (0.213, 0.156, 0.143)
INPUT_PX = 256

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(SAT_MEAN, SAT_STD), gsd_m=10.0, gsd_tolerance=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=INPUT_PX, token_px=16, default_prep="resize"), missing="fill_mean",
    norm_source=f"timm resolve_data_config({ARCH}.{TAG}): SAT-493M mean/std, 256 px; " + STRETCH_NOTE)

LICENCE = ("DINOv3 License (Meta's own terms, not an open-source licence: commercial use allowed, but its "
           "acceptable-use terms forbid e.g. military/warfare, nuclear, espionage and ITAR-controlled uses, "
           "require trade-control compliance, and redistribution must carry the licence; Hugging Face access "
           "may be gated: read https://ai.meta.com/resources/models-and-libraries/dinov3-license/)")

CARD = ModelCard(
    id="dinov3_sat_vitl16", family="dinov3", kind="on_the_fly",
    description="DINOv3 ViT-L/16 distilled on SAT-493M (Maxar RGB) on Sentinel-2 true colour, via timm",
    inputs=(S2_RGB,), dims=1024, outputs=("pooled", "grid"),
    weights=(WeightsFile(name=f"{ARCH}.{TAG}.safetensors",
                         url=f"https://huggingface.co/timm/{ARCH}.{TAG}/resolve/main/model.safetensors",
                         sha256="", licence=LICENCE),),
    verified="library", variant="vitl16_sat493m", licence=LICENCE,
    citation="Simeoni, O. et al. (2025). DINOv3. arXiv:2508.10104",
    url="https://github.com/facebookresearch/dinov3", mem_mb=6000, runtime_min=60,
    notes=STRETCH_NOTE + " Trained on SAT-493M: Maxar RGB at about 0.6 m, 8-bit; Sentinel-2 at 10 m is a "
          "domain shift whatever the scaling, and whether reflectance / 0.3 matches the 8-bit look of those "
          "tiles is not verified. 256 px input as timm's data config (RoPE would take other multiples of "
          "16 px). Pooled = mean of patch tokens, not the class token. Not open source: see the licence. "
          "The publisher gives no sha256 here: pin it in models.<id>.weights_sha256.")


class DINOv3Sat(Embedder):
    """DINOv3 ViT-L/16 SAT-493M backbone (timm) on true-colour Sentinel-2."""

    card: ClassVar[ModelCard] = CARD
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    @staticmethod
    def build(device: Any = None):
        """timm's DINOv3 ViT-L/16 for these weights (no head, dynamic input size); ``device="meta"``
        gives the key layout without allocating or initialising ~300M parameters."""
        import timm
        import torch

        with torch.device(device or "cpu"):
            return timm.create_model(ARCH, pretrained=False, num_classes=0, dynamic_img_size=True)

    def _load(self) -> None:
        # keys checked on a meta-device copy first: a wrong file is refused before the ~10 s build
        self.net = load_published(self, self.build, expected=self.build("meta").state_dict())

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, H, W)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            tokens = self.net.forward_features(x)[:, self.net.num_prefix_tokens:]
        b, n, d = tokens.shape
        h, w = x.shape[-2] // 16, x.shape[-1] // 16
        f = tokens.transpose(1, 2).reshape(b, d, h, w).float().cpu().numpy()
        return TokenGrid(f, np.ones((b, h, w), np.float32))
