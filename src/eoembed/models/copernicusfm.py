"""Copernicus-FM ViT-B/16 (Wang et al. 2025): a spectrum- and metadata-conditioned ViT, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.copernicusfm_base`` (``CopernicusFM``: a dynamic hypernetwork makes
the patch-embedding kernel from each band's Fourier-encoded central wavelength and bandwidth; Fourier
encodings of lon/lat, time and patch-token area are added to the position embedding, a learned token
replacing each that is unknown). Weights: TorchGeo's ``CopernicusFM_Base_Weights.CopernicusFM_ViT``
(plain state dict, TorchGeo key names, no ``fc_norm``: the final norm stays at its identity affine,
as TorchGeo's loader leaves it).

Declared input: the 12 Sentinel-2 bands (L2A, or the same bands of L1C), z-scored with the SSL4EO-S12
statistics Copernicus-FM's pretraining used for ``s2_toa`` (``S2C_MEAN`` / ``S2C_STD`` in the original
``main_pretrain.py``, identical to :data:`eoembed.models.ssl4eo.S2_MEAN`), one frame, gaps filled with
the band mean, 224 px by resize. Per band: the collection's central wavelength and bandwidth in nm
(``ReadyBatch.wavelengths_nm`` / ``bandwidths_nm``). Metadata per input, as TorchGeo's forward takes
it: ``[lon (deg), lat (deg), days since 1970-01-01, patch-token area (km^2)]``; the date is the frame's
middle day (``ReadyBatch.epoch_days``), the area ``(16 px x gsd)^2`` of the resized input; an area
outside the model's encoding range [0.001, 5.1e8] km^2 is handed over as NaN (= the learned token).

Tokens (option ``tokens``): ``"pooled"`` (default) = the model's own embedding ``forward_features``
(mean of the patch tokens, then ``fc_norm``), one per 224 px input; ``"patch"`` = the 14 x 14 patch
tokens of the last block (no final norm), for grids at 16 px.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.published import load_published
from eoembed.models.ssl4eo import L1C_BANDS, L2A_BANDS, S2_MEAN, S2_STD
from eoembed.models.transfer import to_device

URL = ("https://huggingface.co/torchgeo/copernicus-fm/resolve/f395812cc990ba25a451dbb9c9e6d95c8482947e/"
       "CopernicusFM_ViT_base_varlang-085350e4.pth")
OPTIONAL_KEYS = {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
TOKENS = ("pooled", "patch")
PATCH_PX = 16
AREA_RANGE_KM2 = (0.001, 5.1e8)  # CopernicusFM.scale_expansion's range (1 m^2 .. Earth's surface)
LAYOUT = "plain state dict with TorchGeo CopernicusFM key names, no prefix"

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=L2A_BANDS,
    norm=tuple(mean_std(S2_MEAN[L1C_BANDS.index(b)], S2_STD[L1C_BANDS.index(b)]) for b in L2A_BANDS),
    gsd_m=10.0, gsd_tolerance=2.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=224, default_prep="resize"), missing="fill_mean",
    metadata=("wavelengths", "bandwidths", "latlon", "time", "gsd"),
    norm_source="Copernicus-FM pretraining (zhu-xlab/Copernicus-FM main_pretrain.py, s2_toa): z-score with "
                "S2C_MEAN/S2C_STD = SSL4EO-S12 statistics, B10 left out; torchgeo 0.8.1 CopernicusFM_ViT "
                "transforms = Identity (none published)")

CARD = ModelCard(
    id="copernicusfm", family="copernicusfm", kind="on_the_fly",
    description="Copernicus-FM ViT-B/16, wavelength/bandwidth- and location/time/area-conditioned, TorchGeo weights",
    inputs=(S2_INPUT,), dims=768, outputs=("pooled", "grid"),
    weights=(WeightsFile(name=URL.rsplit("/", 1)[1], url=URL, sha256="", licence="CC-BY-4.0"),),
    verified="library", variant="base", licence="CC-BY-4.0",
    citation="Wang, Y., Xiong, Z., Liu, C., Stewart, A. J., Dujardin, T., Bountos, N. I., Zavras, A., Gerken, F., "
             "Papoutsis, I., Leal-Taixe, L., Zhu, X. X. (2025). Towards a Unified Copernicus Foundation Model "
             "for Earth Vision. arXiv:2503.11849",
    url="https://github.com/zhu-xlab/Copernicus-FM", mem_mb=4000, runtime_min=30,
    notes="Normalisation: z-score with the SSL4EO-S12 S2 statistics of Copernicus-FM's pretraining (TorchGeo "
          "publishes no transform; Copernicus-Bench fine-tunes with per-dataset statistics). Spectral "
          "conditioning: the collection's ESA S2A central wavelengths and bandwidths in nm (Copernicus-Bench "
          "configs use rounded values, e.g. 490/65 for B02). Metadata: ROI-centre lon/lat, days since "
          "1970-01-01 of the frame's middle day, patch area (16 px x GSD after resize)^2 in km^2 (NaN = learned "
          "token when outside [0.001, 5.1e8]). Pooled = TorchGeo's global-pool embedding (fc_norm absent "
          "from the weights, identity); the original README's example uses the CLS token with a norm the "
          "TorchGeo file does not carry. Weights licence CC-BY-4.0 (code Apache-2.0). Pin the sha256 in "
          "models.<id>.weights_sha256 (TorchGeo's file name carries its prefix 085350e4).")


class CopernicusFM(Embedder):
    """Copernicus-FM base encoder (TorchGeo), spectral input mode."""

    card: ClassVar[ModelCard] = CARD
    cards: ClassVar[dict[str, ModelCard]] = {"base": CARD}
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8, "tokens": "pooled"}

    token_choices: ClassVar[tuple[str, ...]] = TOKENS

    def inputs(self) -> tuple[InputSpec, ...]:
        token = 224 if self.options["tokens"] == "pooled" else PATCH_PX
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=224, token_px=token, default_prep="resize")),)

    def build(self):
        """TorchGeo's Copernicus-FM base, untrained, global pooling, no classifier head."""
        from torchgeo.models import copernicusfm_base

        return copernicusfm_base(weights=None, num_classes=0)

    def _load(self) -> None:
        self.net = load_published(self, self.build, OPTIONAL_KEYS, LAYOUT)

    def spectra_nm(self, batch) -> tuple[list[float], list[float]]:
        """Central wavelength and bandwidth of each band channel, nm (refused when a band lacks one)."""
        bands = batch.channels["s2"]
        out = []
        for what in ("wavelengths_nm", "bandwidths_nm"):
            v = getattr(batch, what).get("s2", ())
            if len(v) != len(bands) or not np.isfinite(v).all():
                raise ModelError(f"{self.card.id}: Copernicus-FM needs every band's {what[:-3]}; the collection "
                                 f"gives {dict(zip(bands, v))} (allowed: a collection with {what})")
            out.append([float(a) for a in v])
        return out[0], out[1]

    def metadata(self, batch) -> np.ndarray:
        """``(B, 4)`` float32 ``[lon, lat, days since 1970-01-01, patch area km^2]`` of each input."""
        if batch.epoch_days is None:
            raise ModelError(f"{self.card.id}: the batch carries no frame dates (epoch_days); allowed: a batch "
                             "built by eoembed.prep.batches")
        area = (PATCH_PX * batch.gsd_m / 1000.0) ** 2
        if not AREA_RANGE_KM2[0] <= area <= AREA_RANGE_KM2[1]:
            area = float("nan")  # the model's learned scale token
        b = batch.size
        return np.stack([batch.latlon[:, 1], batch.latlon[:, 0], batch.epoch_days[:, 0].astype(np.float64),
                         np.full(b, area)], axis=1).astype(np.float32)

    def network_input(self, batch) -> np.ndarray:
        """``(B, 12, 224, 224)``: the declared bands of the single frame."""
        return batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        meta = to_device(self.metadata(batch), self.device)
        wl, bw = self.spectra_nm(batch)
        captured = {}
        hook = self.net.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.update(t=out))
        try:
            with torch.inference_mode():
                pooled = self.net.forward_features(x, meta, wavelengths=wl, bandwidths=bw, input_mode="spectral")
        finally:
            hook.remove()
        return TokenGrid.from_vit(pooled, captured["t"][:, 1:], self.options["tokens"])  # [:, 1:]: no CLS
