"""Panopticon ViT-B/14 (Waldmann et al. 2025): an any-sensor DINOv2 ViT, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.panopticon_vitb14`` (timm's ``vit_base_patch14_dinov2`` whose patch
embedding is ``PanopticonPE``: per-channel patch projection, a sine embedding of each channel id =
the band's central wavelength in nm, floored to whole nm by ``ChnEmb``, and cross-attention over the
channels, so any set of optical bands gives one token per patch). Weights: TorchGeo's
``Panopticon_Weights.VIT_BASE14`` = the DINOv2 teacher backbone, plain state dict with the timm key
names of ``Panopticon.model`` (no prefix), plus ``mask_token`` and a 37 x 37 (518 px) position
embedding; the loader does what TorchGeo's does: drops ``mask_token``, resizes the position embedding
to 16 x 16 (224 px) with TorchGeo's ``resize_abs_pos_embed``, loads strictly.

Declared input: the 12 Sentinel-2 bands (L2A, or the same bands of L1C), z-scored (the README asks for
"standard normal normalization"; Panopticon normalised each pretraining dataset with its own
statistics and publishes none for Sentinel-2 in TorchGeo, whose transform is Identity): eoembed uses
the SSL4EO-S12 statistics (:data:`eoembed.models.ssl4eo.S2_MEAN`), declared. One frame, gaps filled
with the band mean, 224 px by resize (the size of pretraining and TorchGeo's default).

Tokens (option ``tokens``): ``"pooled"`` (default) = Panopticon's own embedding, the normed CLS token
(``forward``), one per 224 px input; ``"patch"`` = the 16 x 16 normed patch tokens of
``forward_features``, for grids at 14 px.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.published import check_keys
from eoembed.models.ssl4eo import L1C_BANDS, L2A_BANDS, S2_MEAN, S2_STD
from eoembed.models.transfer import to_device

URL = "https://hf.co/lewaldm/panopticon/resolve/c8c2bb9555819e8b2bcedf5b3b00e3bf531554e7/panopticon_vitb14_teacher.pth"
PATCH_PX = 14
SIZE = 224
PUBLISHED_GRID = 518 // PATCH_PX  # the checkpoint's position embedding: 37 x 37 patches + CLS
TOKENS = ("pooled", "patch")
LAYOUT = "plain state dict with timm/DINOv2 key names of Panopticon.model, no prefix, with mask_token"

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=L2A_BANDS,
    norm=tuple(mean_std(S2_MEAN[L1C_BANDS.index(b)], S2_STD[L1C_BANDS.index(b)]) for b in L2A_BANDS),
    gsd_m=10.0, gsd_tolerance=2.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=SIZE, token_px=SIZE, default_prep="resize"), missing="fill_mean",
    metadata=("wavelengths",),
    norm_source="torchgeo 0.8.1 Panopticon_Weights.VIT_BASE14 transforms = Identity (none published); "
                "Panopticon README: standard-normal normalisation per dataset; eoembed: z-score with the "
                "SSL4EO-S12 S2 statistics (declared)")

CARD = ModelCard(
    id="panopticon", family="panopticon", kind="on_the_fly",
    description="Panopticon ViT-B/14, any-sensor DINOv2 with wavelength channel ids, TorchGeo weights",
    inputs=(S2_INPUT,), dims=768, outputs=("pooled", "grid"),
    weights=(WeightsFile(name=URL.rsplit("/", 1)[1], url=URL, sha256="", licence="Apache-2.0"),),
    verified="library", variant="vitb14", licence="Apache-2.0",
    citation="Waldmann, L., Shah, A., Wang, Y., Lehmann, N., Stewart, A. J., Xiong, Z., Zhu, X. X., Bauer, S., "
             "Chuang, J. (2025). Panopticon: Advancing Any-Sensor Foundation Models for Earth Observation. "
             "arXiv:2503.10845",
    url="https://github.com/Panopticon-FM/panopticon", mem_mb=4000, runtime_min=30,
    notes="Normalisation: z-score with the SSL4EO-S12 S2 statistics is eoembed's declared choice (Panopticon "
          "used each dataset's own statistics; TorchGeo publishes no transform). Channel ids: the collection's "
          "ESA S2A central wavelengths in nm (Panopticon floors them to whole nm). Pooled = the normed CLS "
          "token (Panopticon's forward); grid = the normed patch tokens at 14 px. Licence: Apache-2.0 as the "
          "official repository states (the Hugging Face model card was not checked offline). TorchGeo's file "
          "name carries no sha256 prefix: pin the sha256 in models.<id>.weights_sha256.")


class Panopticon(Embedder):
    """Panopticon ViT-B/14 encoder (TorchGeo)."""

    card: ClassVar[ModelCard] = CARD
    cards: ClassVar[dict[str, ModelCard]] = {"vitb14": CARD}
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8, "tokens": "pooled"}

    token_choices: ClassVar[tuple[str, ...]] = TOKENS

    def inputs(self) -> tuple[InputSpec, ...]:
        token = SIZE if self.options["tokens"] == "pooled" else PATCH_PX
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=SIZE, token_px=token, default_prep="resize")),)

    def build(self):
        """TorchGeo's Panopticon ViT-B/14 for 224 px, untrained."""
        from torchgeo.models import panopticon_vitb14

        return panopticon_vitb14(weights=None, img_size=SIZE)

    def published_layout(self, net) -> dict:
        """Key -> tensor of the published file's shapes: the network's keys, 518 px position embedding,
        ``mask_token``."""
        import torch

        expected = dict(net.model.state_dict())
        dim = expected["cls_token"].shape[-1]
        expected["pos_embed"] = torch.empty(1, 1 + PUBLISHED_GRID ** 2, dim, device="meta")
        expected["mask_token"] = torch.empty(1, dim, device="meta")
        return expected

    def _load(self) -> None:
        from torchgeo.models.copernicusfm import resize_abs_pos_embed

        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(self.card.weights[0].name)
        state = load_state_dict(path, sha)
        net = self.build()
        check_keys(self.published_layout(net), state, set(), f"{path} ({self.card.id})", LAYOUT)
        state.pop("mask_token")
        state["pos_embed"] = resize_abs_pos_embed(state["pos_embed"], SIZE // PATCH_PX, PUBLISHED_GRID)
        net.model.load_state_dict(state, strict=True)
        self.net = net.to(self.device).eval()

    def channel_ids(self, batch) -> list[float]:
        """Panopticon's channel ids: each band's central wavelength, nm (refused when a band has none)."""
        wl = batch.wavelengths_nm.get("s2", ())
        if len(wl) != len(batch.channels["s2"]) or not np.isfinite(wl).all():
            raise ModelError(f"{self.card.id}: Panopticon needs every band's wavelength; the collection gives "
                             f"{dict(zip(batch.channels['s2'], wl))} (allowed: a collection with wavelengths_nm)")
        return [float(v) for v in wl]

    def network_input(self, batch) -> np.ndarray:
        """``(B, 12, 224, 224)``: the declared bands of the single frame."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        ids = torch.tensor(self.channel_ids(batch), dtype=torch.float32, device=self.device)
        x_dict = {"imgs": x, "chn_ids": ids.expand(x.shape[0], -1).clone()}  # ChnEmb edits the ids in place
        with torch.inference_mode():
            feats = self.net.model.forward_features(x_dict)
            pooled = self.net.model.forward_head(feats)
        return TokenGrid.from_vit(pooled, feats[:, self.net.model.num_prefix_tokens:], self.options["tokens"])
