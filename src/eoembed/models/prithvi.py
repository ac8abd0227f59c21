"""Prithvi-EO-2.0 (Szwarcman et al. 2024): a HLS space-time ViT (MAE), via TerraTorch 1.2.1.

Architecture: ``terratorch.models.backbones.prithvi_vit`` (``PrithviViT``: 3-D patch embedding of
``1 x 16 x 16`` (600M: ``1 x 14 x 14``) over ``T`` frames, fixed 3-D sin-cos position embedding
interpolated to the input's shape, a CLS token, timm blocks, final LayerNorm). The ``-TL`` variants
add learned-scale sin-cos embeddings of each frame's (year, day of year) and of the location
(lat, lon). Weights: the MAE checkpoints IBM/NASA publish on Hugging Face
(``ibm-nasa-geospatial/Prithvi-EO-2.0-<size>[-TL]``, ``Prithvi_EO_V2_<size>[_TL].pt``): a plain state
dict of the whole ``PrithviMAE`` (``encoder.*`` + ``decoder.*``). eoembed keeps the encoder exactly as
TerraTorch's own loader does (``checkpoint_filter_fn_vit``: ``encoder.`` stripped, decoder and mask
token dropped, the fixed position table recomputed for the input), after checking the file's keys.
No 100M model without time/location is published (TerraTorch lists weights for 100M-TL only).

Declared input: HLS v2.0 (``hls`` collection, reflectance x 10000), the six pre-training bands
BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2 at 30 m, 1-4 frames (pre-trained with 4), each band
standardised with the published ``PRITHVI_V2_MEAN`` / ``_STD`` (TerraTorch; the same numbers as each
checkpoint's ``config.json``), gaps set to 0 after standardisation (the inference script writes
0.0001 there), 224 px by resize. Time / location (``-TL``): year and 1-based day of year of each
frame's middle day, lat / lon of the piece centre, as the upstream inference script builds them.

Tokens: the last block's patch tokens after the final norm, averaged over the ``T`` frames of each
patch position (14 x 14 of ``dims``; 600M: 16 x 16); pooled = their mean.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.collections import HLS_BANDS
from eoembed.errors import WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.transfer import to_device

#: terratorch.models.backbones.prithvi_vit.PRITHVI_V2_MEAN / _STD (reflectance x 10000)
MEAN = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
STD = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)
HF = "https://huggingface.co/ibm-nasa-geospatial"
#: variant -> (TerraTorch variant, dims, patch px, HF repo, file)
VARIANTS = {
    "tiny_tl": ("prithvi_eo_v2_tiny_tl", 192, 16, "Prithvi-EO-2.0-tiny-TL", "Prithvi_EO_V2_tiny_TL.pt"),
    "100_tl": ("prithvi_eo_v2_100_tl", 768, 16, "Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt"),
    "300": ("prithvi_eo_v2_300", 1024, 16, "Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"),
    "300_tl": ("prithvi_eo_v2_300_tl", 1024, 16, "Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt"),
    "600": ("prithvi_eo_v2_600", 1280, 14, "Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt"),
    "600_tl": ("prithvi_eo_v2_600_tl", 1280, 14, "Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt"),
}
MAX_FRAMES = 4
LAYOUT = ("plain state dict of the whole PrithviMAE as published: encoder.* (+ decoder.*, mask_token), "
          "no other prefix")
#: keys of the published file that are not part of the encoder eoembed runs
DROPPED = ("decoder", "_dec", "mask_token")

HLS_INPUT = InputSpec(
    modality="hls", collections=("hls",), bands=HLS_BANDS,
    norm=tuple(BandNorm(m, s) for m, s in zip(MEAN, STD)), gsd_m=30.0, gsd_tolerance=5.0,
    time=TimePolicy(1, MAX_FRAMES, default=MAX_FRAMES),
    space=SpacePolicy("fixed", size=224, token_px=16, default_prep="resize"), missing="fill_zero",
    norm_source="terratorch 1.2.1 prithvi_vit PRITHVI_V2_MEAN / PRITHVI_V2_STD (= the checkpoints' "
                "config.json mean/std), (x - mean) / std of HLS reflectance x 10000; NoData -> 0 "
                "(upstream inference.py writes 0.0001)")


def _card(variant: str) -> ModelCard:
    name, dims, patch, repo, file = VARIANTS[variant]
    tl = variant.endswith("_tl")
    size = variant.split("_")[0]
    spec = replace(HLS_INPUT, space=SpacePolicy("fixed", size=224, token_px=patch, default_prep="resize"),
                   time=TimePolicy(1, MAX_FRAMES, tokens="doy" if tl else None, default=MAX_FRAMES),
                   metadata=("time", "latlon") if tl else ())
    return ModelCard(
        id=f"prithvi_eo_v2_{variant}", family="terratorch", kind="on_the_fly", variant=variant,
        description=f"Prithvi-EO-2.0 {size}{'M' if size.isdigit() else ''}{' TL (time + location)' if tl else ''}: "
                    "HLS space-time ViT (MAE), 1-4 frames, via TerraTorch",
        inputs=(spec,), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name=file, url=f"{HF}/{repo}/resolve/main/{file}", sha256="", licence="Apache-2.0"),),
        verified="library", licence="Apache-2.0",
        citation="Szwarcman, D., Roy, S., Fraccaro, P., et al. (2024). Prithvi-EO-2.0: A Versatile Multi-Temporal "
                 "Foundation Model for Earth Observation Applications. arXiv:2412.02732",
        url=f"https://huggingface.co/ibm-nasa-geospatial/{repo}",
        mem_mb={"tiny_tl": 2000, "100_tl": 4000, "300": 8000, "300_tl": 8000}.get(variant, 12000),
        runtime_min=60,
        notes=("HLS v2.0 input only (the S30/L30 harmonised reflectance it was pre-trained on); 30 m, 224 px by "
               "resize (6.7 km). Frames: 1-4 (pre-trained with 4; the position table is interpolated to T). "
               + ("Time/location: year and 1-based day of year of each frame's middle day, lat/lon of the piece "
                  "centre. " if tl else "")
               + "Tokens: last block after the final norm, mean over frames per patch position. Hugging Face "
                 "publishes no sha256 for the file: pin it in models.<id>.weights_sha256."))


class Prithvi(Embedder):
    """Prithvi-EO-2.0 encoder (TerraTorch); variants tiny_tl, 100_tl, 300, 300_tl, 600, 600_tl."""

    cards: ClassVar[dict[str, ModelCard]] = {v: _card(v) for v in VARIANTS}
    card: ClassVar[ModelCard] = cards["300"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 4}

    @property
    def time_location(self) -> bool:
        return self.card.variant.endswith("_tl")

    def build(self, num_frames: int = MAX_FRAMES):
        """TerraTorch's Prithvi ViT encoder of this variant (untrained, no download)."""
        from terratorch.models.backbones import prithvi_vit

        return prithvi_vit._create_prithvi(VARIANTS[self.card.variant][0], pretrained=False,
                                           num_frames=num_frames, encoder_only=True)

    def encoder_state(self, state: dict[str, Any], net: Any, where: str) -> dict[str, Any]:
        """The published MAE state dict -> the encoder's, checked: every encoder tensor present
        under ``encoder.`` with its shape, nothing else but the decoder."""
        from terratorch.models.backbones.prithvi_vit import PRETRAINED_BANDS, checkpoint_filter_fn_vit

        want = net.state_dict()
        enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        other = sorted(k for k in state if not k.startswith("encoder.") and not any(d in k for d in DROPPED))
        missing = sorted(k for k in want if k not in enc)
        wrong = [f"{k}: {tuple(enc[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                 if k in enc and k != "pos_embed" and tuple(enc[k].shape) != tuple(v.shape)]
        if missing or other or wrong:
            raise WeightsError(
                f"weights file {where}: not the published key layout ({LAYOUT}); {len(missing)} missing e.g. "
                f"{['encoder.' + k for k in missing[:3]]}, {len(other)} unexpected e.g. {other[:3]}, "
                f"{len(wrong)} of another shape e.g. {wrong[:2]}")
        return checkpoint_filter_fn_vit(state, net, PRETRAINED_BANDS, PRETRAINED_BANDS)

    def _load(self) -> None:
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(self.card.weights[0].name)
        state = load_state_dict(path, sha)
        net = self.build()
        net.load_state_dict(self.encoder_state(state, net, f"{path} ({self.card.id})"), strict=True)
        self.net = net.to(self.device).eval()

    def network_input(self, batch) -> np.ndarray:
        """``(B, 6, T, 224, 224)``: the declared bands, frames on the third axis as Prithvi takes them."""
        return batch.x["hls"].transpose(0, 2, 1, 3, 4)

    def coords(self, batch) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``-TL`` only: ``(B, T, 2)`` [year, 1-based day of year] and ``(B, 2)`` [lat, lon]."""
        if not self.time_location:
            return None, None
        years = batch.years if batch.years is not None else np.zeros_like(batch.doy)
        temporal = np.stack([years, batch.doy + 1], axis=-1).astype(np.float32)
        return temporal, batch.latlon.astype(np.float32)

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = self.network_input(batch)
        b, _, t, h, w = x.shape
        self.net.num_frames = t  # tokens per frame for the time embedding (TerraTorch reads it)
        temporal, location = self.coords(batch)
        kwargs = {}
        if temporal is not None:
            kwargs = {"temporal_coords": to_device(temporal, self.device),
                      "location_coords": to_device(location, self.device)}
        with torch.inference_mode():
            out = self.net.forward_features(to_device(x, self.device), **kwargs)[-1]
        p = VARIANTS[self.card.variant][2]
        tokens = out[:, 1:].reshape(b, t, h // p, w // p, -1).mean(dim=1)  # mean over frames
        f = tokens.permute(0, 3, 1, 2).float().cpu().numpy()
        return TokenGrid(f, np.ones((b, h // p, w // p), np.float32))
