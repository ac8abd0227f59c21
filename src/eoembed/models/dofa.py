"""DOFA base / large (Xiong et al. 2024): a wavelength-conditioned ViT, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.dofa_base_patch16_224`` / ``dofa_large_patch16_224`` (``DOFA`` with
a hypernetwork that makes the patch-embedding kernel from each band's central wavelength).
Weights: TorchGeo's ``DOFABase16_Weights.DOFA_MAE`` / ``DOFALarge16_Weights.DOFA_MAE`` (plain state
dict, DOFA key names; ``fc_norm.*`` and ``head.*`` are absent, as TorchGeo's loader expects: the
final norm stays at its initial identity affine).

Declared input: the 12 Sentinel-2 bands (L2A, or the same bands of L1C), ``x / 10000``, one frame,
gaps filled with the band mean, 224 px by resize (the position embedding is fixed to 14 x 14
patches). The wavelengths are the collection's central wavelengths (``ReadyBatch.wavelengths_nm``),
handed to DOFA in micrometres. TorchGeo publishes only ``CenterCrop(224)`` as the transform (no
normalisation); DOFA standardised each pretraining dataset with its own statistics, which are not
published for Sentinel-2 here, so the reflectance scaling is eoembed's declared choice.

Tokens (option ``tokens``): ``"pooled"`` (default) = DOFA's own embedding, ``forward_features``
(mean of the patch tokens, then ``fc_norm``), one token per 224 px input; ``"patch"`` = the
14 x 14 patch tokens of the last block (no final norm), for grids at 16 px.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.published import load_published
from eoembed.models.ssl4eo import L2A_BANDS
from eoembed.models.transfer import to_device

HF = "https://hf.co/torchgeo/dofa/resolve/b8db318b64a90b9e085ec04ba8851233c5893666"
SIZES = {"base": ("dofa_base_patch16_224", 768, f"{HF}/dofa_base_patch16_224-a0275954.pth"),
         "large": ("dofa_large_patch16_224", 1024, f"{HF}/dofa_large_patch16_224-0ff904d3.pth")}
OPTIONAL_KEYS = {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
TOKENS = ("pooled", "patch")
LAYOUT = "plain state dict with TorchGeo DOFA key names, no prefix"

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=L2A_BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in L2A_BANDS), gsd_m=10.0, gsd_tolerance=2.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=224, default_prep="resize"), missing="fill_mean",
    metadata=("wavelengths",),
    norm_source="torchgeo 0.8.1 DOFA_MAE transforms = CenterCrop(224) only (no normalisation published); "
                "eoembed: reflectance = DN / 10000 (declared)")


def _card(size: str) -> ModelCard:
    _, dims, url = SIZES[size]
    name = url.rsplit("/", 1)[1]
    prefix = re.search(r"-([0-9a-f]{8})\.pth$", name).group(1)
    return ModelCard(
        id=f"dofa_{size}", family="dofa", kind="on_the_fly",
        description=f"DOFA ViT-{size[0].upper()}/16, wavelength-conditioned (any bands), TorchGeo weights",
        inputs=(S2_INPUT,), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name=name, url=url, sha256="", licence="CC-BY-4.0"),),
        verified="library", variant=size, licence="CC-BY-4.0",
        citation="Xiong, Z., Wang, Y., Zhang, F., Stewart, A. J., Hanna, J., Borth, D., Papoutsis, I., Le Saux, B., "
                 "Camps-Valls, G., Zhu, X. X. (2024). Neural Plasticity-Inspired Multimodal Foundation Model for "
                 "Earth Observation. arXiv:2403.15356",
        url="https://github.com/zhu-xlab/DOFA", mem_mb=4000 if size == "base" else 8000, runtime_min=30,
        notes="Normalisation DN / 10000 is eoembed's choice (TorchGeo publishes none). Published transform "
              "CenterCrop(224); eoembed resizes the ROI to 224 (identical for a 224 px ROI). Wavelengths from "
              "the collection, in micrometres. tokens='pooled': one DOFA embedding per 224 px input. "
              f"Pin the sha256 in models.<id>.weights_sha256 (TorchGeo's file name carries its prefix {prefix}).")


class DOFA(Embedder):
    """DOFA encoder (TorchGeo); ``variant`` base / large."""

    cards: ClassVar[dict[str, ModelCard]] = {s: _card(s) for s in SIZES}
    card: ClassVar[ModelCard] = cards["base"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8, "tokens": "pooled"}

    token_choices: ClassVar[tuple[str, ...]] = TOKENS

    def inputs(self) -> tuple[InputSpec, ...]:
        token = 224 if self.options["tokens"] == "pooled" else 16
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=224, token_px=token, default_prep="resize")),)

    def build(self):
        """TorchGeo's DOFA for this size, untrained and without a classifier head."""
        from torchgeo.models import dofa

        return getattr(dofa, SIZES[self.card.variant][0])(weights=None, num_classes=0)

    def _load(self) -> None:
        self.net = load_published(self, self.build, OPTIONAL_KEYS, LAYOUT)

    def wavelengths_um(self, batch) -> list[float]:
        """Central wavelength of each band channel, micrometres (refused when a band has none)."""
        wl = batch.wavelengths_nm.get("s2", ())
        if len(wl) != len(batch.channels["s2"]) or not np.isfinite(wl).all():
            raise ModelError(f"{self.card.id}: DOFA needs every band's wavelength; the collection gives "
                             f"{dict(zip(batch.channels['s2'], wl))} (allowed: a collection with wavelengths_nm)")
        return [float(v) / 1000.0 for v in wl]

    def network_input(self, batch) -> np.ndarray:
        """``(B, 12, 224, 224)``: the declared bands of the single frame."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        wl = self.wavelengths_um(batch)
        captured = {}
        hook = self.net.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.update(t=out))
        try:
            with torch.inference_mode():
                pooled = self.net.forward_features(x, wl)
        finally:
            hook.remove()
        return TokenGrid.from_vit(pooled, captured["t"][:, 1:], self.options["tokens"])  # [:, 1:]: no CLS
