"""CLIP ViT-B/32 image encoders on Sentinel-2 true colour, via open_clip: OpenAI CLIP (Radford et
al. 2021, variant ``openai``, id ``clip_vitb32``) and RemoteCLIP (Liu et al. 2024, variant
``remoteclip``, id ``remoteclip``: the same architecture fine-tuned on remote-sensing image-text pairs).

Architecture: open_clip's ``ViT-B-32-quickgelu`` for OpenAI's weights (OpenAI trained with
QuickGELU, which open_clip selects for ``pretrained='openai'``); plain ``ViT-B-32`` (nn.GELU) for
RemoteCLIP, exactly as its README loads it (``open_clip.create_model_and_transforms('ViT-B-32')``
then ``model.load_state_dict(torch.load('RemoteCLIP-ViT-B-32.pt'))``).
Weights: OpenAI: open_clip's Hugging Face copy of OpenAI's checkpoint
(``timm/vit_base_patch32_clip_224.openai``, ``open_clip_pytorch_model.bin``: a plain state dict of the
whole CLIP model under open_clip key names, text tower included). OpenAI's own file (``ViT-B-32.pt``,
sha256 40d36571... in its URL) is a TorchScript archive, which eoembed does not load (no
``weights_only`` path for it). RemoteCLIP: ``chendelong/RemoteCLIP`` on Hugging Face,
``RemoteCLIP-ViT-B-32.pt``, the same plain whole-model state dict under open_clip key names.

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb` and open_clip's
``OPENAI_DATASET_MEAN`` / ``_STD``, one frame, gaps filled with the band mean, 224 px by resize
(open_clip: bicubic resize of the short side + centre crop; a square ROI loses nothing to the crop).
Output: the projected 512-d image embedding (``encode_image``, not L2-normalised) as one token per
224 px input, so ``input_prep: tile`` gives one embedding per tile on the grid.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

#: open_clip.constants.OPENAI_DATASET_MEAN / _STD
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
#: variant -> open_clip architecture name
ARCH = {"openai": "ViT-B-32-quickgelu", "remoteclip": "ViT-B-32"}
LAYOUT = "plain state dict of the whole CLIP model, open_clip key names, no prefix"
WEIGHTS = WeightsFile(
    name="open_clip_pytorch_model.bin",
    url="https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_pytorch_model.bin",
    sha256="", licence="MIT")
REMOTECLIP_WEIGHTS = WeightsFile(
    name="RemoteCLIP-ViT-B-32.pt",
    url="https://huggingface.co/chendelong/RemoteCLIP/resolve/bf1d8a3ccf2ddbf7c875705e46373bfe542bce38/"
        "RemoteCLIP-ViT-B-32.pt", sha256="", licence="Apache-2.0")

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(OPENAI_MEAN, OPENAI_STD), gsd_m=10.0, gsd_tolerance=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=224, default_prep="resize"), missing="fill_mean",
    norm_source="open_clip.constants OPENAI_DATASET_MEAN/STD (image_transform); " + STRETCH_NOTE)


OPENAI_CARD = ModelCard(
    id="clip_vitb32", family="clip", kind="on_the_fly", variant="openai",
    description="OpenAI CLIP ViT-B/32 image encoder (web photographs) on Sentinel-2 true colour, via open_clip",
    inputs=(S2_RGB,), dims=512, outputs=("pooled", "grid"), weights=(WEIGHTS,), verified="library",
    licence="MIT",
    citation="Radford, A. et al. (2021). Learning Transferable Visual Models From Natural Language "
             "Supervision. ICML 2021.",
    url="https://github.com/openai/CLIP", mem_mb=3000, runtime_min=30,
    notes=STRETCH_NOTE + " One 512-d token per 224 px input (resize: one per ROI; tile: one per tile). "
          "Not L2-normalised. The file's publisher gives no sha256: pin it in models.<id>.weights_sha256.")
REMOTECLIP_CARD = ModelCard(
    id="remoteclip", family="clip", kind="on_the_fly", variant="remoteclip",
    description="RemoteCLIP ViT-B/32 image encoder (CLIP fine-tuned on remote-sensing image-text pairs) on "
                "Sentinel-2 true colour, via open_clip",
    inputs=(S2_RGB,), dims=512, outputs=("pooled", "grid"), weights=(REMOTECLIP_WEIGHTS,), verified="library",
    licence="Apache-2.0",
    citation="Liu, F., Chen, D., Guan, Z., Zhou, X., Zhu, J., Ye, Q., Fu, L., Zhou, J. (2024). RemoteCLIP: A "
             "Vision Language Foundation Model for Remote Sensing. IEEE TGRS 62.",
    url="https://github.com/ChenDelong1999/RemoteCLIP", mem_mb=3000, runtime_min=30,
    notes="Architecture open_clip 'ViT-B-32' (GELU, not QuickGELU), as RemoteCLIP's README loads it; its "
          "transform is open_clip's default for that model (OpenAI mean/std, bicubic resize 224, centre crop). "
          "Trained on aerial/satellite RGB photographs (mostly sub-metre, 8-bit); " + STRETCH_NOTE
          + " One 512-d token per 224 px input. Not L2-normalised. Hugging Face gives no sha256 for the "
          "file: pin it in models.<id>.weights_sha256.")


class CLIP(Embedder):
    """CLIP ViT-B/32 image embeddings of true-colour Sentinel-2; variants ``openai``, ``remoteclip``."""

    cards: ClassVar[dict[str, ModelCard]] = {"openai": OPENAI_CARD, "remoteclip": REMOTECLIP_CARD}
    card: ClassVar[ModelCard] = OPENAI_CARD
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 32}

    def build(self):
        """open_clip's CLIP model of this variant's architecture (untrained)."""
        import open_clip

        return open_clip.create_model(ARCH[self.card.variant], pretrained=None)

    def _load(self) -> None:
        self.net = load_published(self, self.build, layout=LAYOUT)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, 224, 224)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            emb = self.net.encode_image(x).float().cpu().numpy()
        return TokenGrid(emb[:, :, None, None], np.ones((emb.shape[0], 1, 1), np.float32))
