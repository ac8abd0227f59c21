"""EarthLoc (Berton et al. 2024): a Sentinel-2 RGB place-recognition descriptor, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.earthloc.EarthLoc`` (timm ResNet-50 truncated after layer 3, MixVPR
aggregation, a linear layer, L2 normalisation: a 4096-d unit vector per image). Weights: TorchGeo's
``EarthLoc_Weights.SENTINEL2_RESNET50`` (plain state dict, EarthLoc key names ``backbone.*``,
``aggregator.*``, ``fc.*``). Licence MIT.

Input: B04/B03/B02 with the declared stretch of :mod:`eoembed.models.rgb` and TorchGeo's published
``Normalize(0, 255) -> Normalize(ImageNet mean, std) -> Resize(320)`` (the stretch stands in for the
8-bit Sentinel-2 cloudless mosaic the model was trained on; resizing and the per-channel affine
normalisation commute, so eoembed's resize-then-normalise gives the same batch). One frame, gaps
filled with the band mean, 320 px by resize. Output: EarthLoc's own descriptor, one token per
320 px input (``input_prep: tile`` gives one per tile).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.rgb import RGB_BANDS, STRETCH_NOTE, rgb_norm
from eoembed.models.transfer import to_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = "plain state dict with TorchGeo EarthLoc key names (backbone., aggregator., fc.), no prefix"
WEIGHTS = WeightsFile(
    name="earthloc-8b632e30.pth",
    url="https://huggingface.co/torchgeo/earthloc/resolve/53a4bb90a7754b12f44986521ac7a711b4795959/"
        "earthloc-8b632e30.pth", sha256="", licence="MIT")

S2_RGB = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB_BANDS,
    norm=rgb_norm(IMAGENET_MEAN, IMAGENET_STD), gsd_m=10.0, gsd_tolerance=100.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=320, token_px=320, default_prep="resize"), missing="fill_mean",
    norm_source="torchgeo 0.8.1 _earthloc_transforms: Normalize(0, 255), Normalize(ImageNet), Resize(320); "
                + STRETCH_NOTE)


class EarthLoc(Embedder):
    """EarthLoc 4096-d descriptor of true-colour Sentinel-2 (TorchGeo weights)."""

    card: ClassVar[ModelCard] = ModelCard(
        id="earthloc", family="earthloc", kind="on_the_fly",
        description="EarthLoc ResNet-50 + MixVPR place-recognition descriptor of Sentinel-2 true colour, "
                    "TorchGeo weights",
        inputs=(S2_RGB,), dims=4096, outputs=("pooled", "grid"), weights=(WEIGHTS,), verified="library",
        licence="MIT",
        citation="Berton, G., Goletto, G., Trivigno, G., Stoken, A., Caputo, B., Masone, C. (2024). EarthLoc: "
                 "Astronaut Image Localization by Leveraging Earth Observation Data. CVPR 2024.",
        url="https://github.com/gmberton/EarthLoc", mem_mb=3000, runtime_min=30,
        notes="Trained on 8-bit Sentinel-2 cloudless mosaic tiles (s2maps.eu) at coarse zoom levels, not 10 m "
              "composites; " + STRETCH_NOTE + " Output is L2-normalised (EarthLoc's descriptor); the pooled "
              "mean of several tiles is not. Pin the sha256 in models.<id>.weights_sha256 (TorchGeo's file name "
              "carries its prefix 8b632e30).")
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    @staticmethod
    def build():
        """TorchGeo's EarthLoc as its builder makes it for these weights (no ImageNet download)."""
        from torchgeo.models.earthloc import EarthLoc as Net

        return Net(in_channels=3, image_size=320, desc_dim=4096, backbone="resnet50", pretrained=False)

    def _load(self) -> None:
        self.net = load_published(self, self.build, layout=LAYOUT)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 3, 320, 320)`` R, G, B as declared (the single frame)."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            desc = self.net(x).float().cpu().numpy()
        return TokenGrid(desc[:, :, None, None], np.ones((desc.shape[0], 1, 1), np.float32))
