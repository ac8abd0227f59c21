"""SatlasPretrain Swin-V2 backbones (Bastani et al. 2023) for Sentinel-2, TorchGeo 0.8.1 weights.

Architecture: torchvision's ``swin_v2_t`` / ``swin_v2_b`` with the stem convolution widened to the
input bands, exactly as ``torchgeo.models.swin_v2_t/_b(weights=...)`` builds it. Weights: TorchGeo's
``Swin_V2_T_Weights`` / ``Swin_V2_B_Weights`` ``SENTINEL2_SI_RGB_SATLAS`` / ``SENTINEL2_SI_MS_SATLAS``
(single-image models; plain torchvision state dicts including the unused 1000-class ``head``,
loaded strictly as TorchGeo does).

Declared input, from TorchGeo's ``_satlas_transforms`` / ``_satlas_sentinel2_transforms``: RGB is
Sentinel-2's 8-bit true-colour image (TCI) / 255, other bands DN / 8160. ESA's L2A TCI saturates at
reflectance 0.2 (DN 2000), so in stack units RGB = DN / 2000, unclipped (the TCI and Satlas clip to
[0, 1]; eoembed does not). L1C's TCI saturates at DN 3558 instead: L2A only. One frame, gaps filled
with the band mean, 256 px tiles at the native 10 m (TorchGeo: CenterCrop(256)); resize and pad
also work. Tokens: the last stage after the final norm (stride 32: 8 x 8 per 256 px tile); pooled =
their mean, which is torchvision's ``avgpool`` output.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.transfer import to_device

HF = "https://hf.co/torchgeo/satlas/resolve/081d6607431bf36bdb59c223777cbb267131b8f2"
RGB = ("B04", "B03", "B02")
MS = RGB + ("B05", "B06", "B07", "B08", "B11", "B12")
#: variant -> (torchvision builder, dims, bands, file)
VARIANTS = {
    "swint_rgb": ("swin_v2_t", 768, RGB, "sentinel2_swint_si_rgb-0c1a96e0.pth"),
    "swint_ms": ("swin_v2_t", 768, MS, "sentinel2_swint_si_ms-bc68e396.pth"),
    "swinb_rgb": ("swin_v2_b", 1024, RGB, "sentinel2_swinb_si_rgb-156a98d5.pth"),
    "swinb_ms": ("swin_v2_b", 1024, MS, "sentinel2_swinb_si_ms-fe22a12c.pth"),
}
#: DN of L2A's TCI saturation (ESA: 255 = reflectance 0.2) and Satlas' divisor of the other bands.
TCI_DN, OTHER_DN = 2000.0, 8160.0


def _input(bands: tuple[str, ...]) -> InputSpec:
    return InputSpec(
        modality="s2", collections=("sentinel-2-l2a",), bands=bands,
        norm=tuple(BandNorm(0.0, TCI_DN if b in RGB else OTHER_DN) for b in bands), gsd_m=10.0,
        time=TimePolicy(1, 1), space=SpacePolicy("fixed", size=256, token_px=32, default_prep="tile"),
        missing="fill_mean",
        norm_source="torchgeo 0.8.1 _satlas(_sentinel2)_transforms: TCI / 255 (= DN / 2000 on L2A), other "
                    "bands DN / 8160, after CenterCrop(256); unclipped here")


def _card(key: str) -> ModelCard:
    arch, dims, bands, name = VARIANTS[key]
    kind = "RGB" if bands == RGB else "9-band"
    return ModelCard(
        id=f"satlas_{key}", family="satlas", kind="on_the_fly",
        description=f"SatlasPretrain Swin-V2-{arch[-1].upper()} single-image Sentinel-2 {kind} backbone, "
                    "TorchGeo weights",
        inputs=(_input(bands),), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name=name, url=f"{HF}/{name}", sha256="", licence="ODC-BY"),),
        verified="library", variant=key, licence="ODC-BY",
        citation="Bastani, F., Wolters, P., Gupta, R., Ferdinando, J., Kembhavi, A. (2023). SatlasPretrain: A "
                 "Large-Scale Dataset for Remote Sensing Image Understanding. ICCV 2023.",
        url="https://github.com/allenai/satlaspretrain_models", mem_mb=3000 if arch == "swin_v2_t" else 5000,
        runtime_min=30,
        notes="RGB = DN / 2000 (L2A TCI scaling), others DN / 8160, not clipped to [0, 1] as Satlas does. "
              "Default input prep: 256 px tiles at 10 m (TorchGeo: CenterCrop(256)). Pin the sha256 in "
              f"models.<id>.weights_sha256 (TorchGeo's file name carries its prefix {name[-12:-4]}).")


class Satlas(Embedder):
    """SatlasPretrain Swin-V2 backbone (torchvision architecture, TorchGeo weights)."""

    cards: ClassVar[dict[str, ModelCard]] = {k: _card(k) for k in VARIANTS}
    card: ClassVar[ModelCard] = cards["swint_ms"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    def build(self):
        """torchvision's Swin-V2 with the stem widened to the bands, as TorchGeo's builder does."""
        import torch
        import torchvision

        arch, _, bands, _ = VARIANTS[self.card.variant]
        net = getattr(torchvision.models, arch)(weights=None)
        stem = net.features[0][0]
        net.features[0][0] = torch.nn.Conv2d(len(bands), stem.out_channels, kernel_size=(4, 4), stride=(4, 4))
        return net

    def _load(self) -> None:
        self.net = load_published(self, self.build,
                                  layout="plain torchvision SwinTransformer state dict, head included, no prefix")

    def network_input(self, batch) -> np.ndarray:
        """``(B, C, 256, 256)``: the declared bands of the single frame."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            tokens = self.net.norm(self.net.features(x))  # (B, h, w, C), channels last
        f = tokens.permute(0, 3, 1, 2).float().cpu().numpy()
        return TokenGrid(f, np.ones((f.shape[0], f.shape[2], f.shape[3]), np.float32))
