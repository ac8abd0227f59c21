"""CROMA base / large (Fuller et al. 2023): a joint radar-optical ViT, via TorchGeo 0.8.1.

Architecture: ``torchgeo.models.croma_base`` / ``croma_large`` with both modalities (``CROMA``:
a Sentinel-1 encoder of depth/2, a Sentinel-2 encoder, and a joint cross-attention encoder of
depth/2 whose queries are the SAR tokens and whose context is the optical tokens; 2D-ALiBi
attention biases, no position embeddings; 120 px inputs cut into 8 px patches = 15 x 15 tokens).
Weights: TorchGeo's ``CROMABase_Weights.CROMA_VIT`` / ``CROMALarge_Weights.CROMA_VIT``: the file
CROMA's authors publish, a *container* ``{'s1_encoder', 's1_GAP_FFN', 's2_encoder', 's2_GAP_FFN',
'joint_encoder'}`` of five plain state dicts (the sub-modules' own key names), which TorchGeo's
``load_weights`` and CROMA's ``use_croma.py`` load part by part. eoembed loads all five.

Declared inputs (the framework applies them; two sensors on one grid):

* ``s2`` (primary, ``models.<id>.sensor``): the 12 Sentinel-2 bands B01..B08, B8A, B09, B11, B12
  (CROMA's README: "Sentinel-2 must be 12 channels (remove the cirrus band if necessary)";
  TorchGeo: ``s2_channels = 12``), L2A, or L1C with B10 left out;
* ``s1`` (``models.<id>.sensors: {s1: <sensor>}``): VV, VH backscatter. Stack units are linear
  power; CROMA was pre-trained on SSL4EO-S12 S1 GRD from Earth Engine, which is in dB, so the
  declared transform is ``10 log10(x)`` first;
* normalisation: CROMA's README ``normalize`` ("taken from SatMAE and SeCo"): per channel
  ``clip((x - (m - 2 s)) / (4 s), 0, 1)`` with ``m``, ``s`` the channel's mean and std *over the
  dataset at hand*. A fixed declaration needs fixed statistics: eoembed's choice is those of
  SSL4EO-S12 (CROMA's pre-training set) as TorchGeo 0.8.1 publishes them in
  ``torchgeo.models.resnet``: ``_mean_s2`` / ``_std_s2`` (L1C, B10 dropped) and ``_mean_s1`` /
  ``_std_s1`` (dB). TorchGeo's own CROMA transform is ``nn.Identity()`` (no normalisation);
* one frame per modality, gaps filled with the band mean (CROMA takes no mask), 120 px by resize.

Outputs: grid = the joint encoder's 15 x 15 patch tokens (8 px each before resize); pooled = their
mean, which *is* CROMA's ``joint_GAP`` (``joint_encodings.mean(dim=1)``, no FFN) for a resized ROI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.published import check_keys
from eoembed.models.ssl4eo import L1C_BANDS, L2A_BANDS, S2_MEAN, S2_STD
from eoembed.models.transfer import to_device

URLS = {"base": "https://hf.co/torchgeo/croma/resolve/387883f08af79d777167519c57cd826eda89a16f/"
                "CROMA_base-0238d814.pt",
        "large": "https://huggingface.co/torchgeo/croma/resolve/92cb1a0f4e34c6c01558baf070197c01255382f6/"
                 "CROMA_large-921e69ad.pt"}
DIMS = {"base": 768, "large": 1024}
#: The published container's parts (TorchGeo ``load_weights``; CROMA ``use_croma.py``).
PARTS = ("s1_encoder", "s1_GAP_FFN", "s2_encoder", "s2_GAP_FFN", "joint_encoder")
LAYOUT = f"a dict of five plain state dicts {list(PARTS)}, TorchGeo/CROMA sub-module key names"
S1_BANDS = ("VV", "VH")
#: SSL4EO-S12 Sentinel-1 statistics in dB (TorchGeo 0.8.1 ``torchgeo.models.resnet._mean_s1/_std_s1``).
S1_MEAN_DB = (-12.59, -20.26)
S1_STD_DB = (5.26, 5.91)
SIZE, PATCH = 120, 8

_S2_STATS = {b: (m, s) for b, m, s in zip(L1C_BANDS, S2_MEAN, S2_STD)}
_NORM = ("CROMA README normalize: clip((x - (m - 2 s)) / (4 s), 0, 1) per channel, m/s = dataset "
         "statistics; eoembed fixes m/s to SSL4EO-S12's as TorchGeo 0.8.1 publishes them "
         "(torchgeo.models.resnet.{}); TorchGeo's CROMA transforms = nn.Identity()")
_SPACE = SpacePolicy("fixed", size=SIZE, token_px=PATCH, default_prep="resize")

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=L2A_BANDS,
    norm=tuple(mean_std(*_S2_STATS[b], k=2.0) for b in L2A_BANDS), gsd_m=10.0, time=TimePolicy(1, 1),
    space=_SPACE, missing="fill_mean", clip=(0.0, 1.0),
    norm_source=_NORM.format("_mean_s2/_std_s2, L1C, B10 dropped"))
S1_INPUT = InputSpec(
    modality="s1", collections=("sentinel-1-grd", "sentinel-1-rtc"), bands=S1_BANDS,
    norm=tuple(mean_std(m, s, k=2.0) for m, s in zip(S1_MEAN_DB, S1_STD_DB)), transform="db",
    gsd_m=10.0, time=TimePolicy(1, 1), space=_SPACE, missing="fill_mean", clip=(0.0, 1.0),
    norm_source="linear power -> 10 log10 (dB, as SSL4EO-S12's Earth Engine S1 GRD); "
                + _NORM.format("_mean_s1/_std_s1, dB"))


def _card(size: str) -> ModelCard:
    url = URLS[size]
    name = url.rsplit("/", 1)[1]
    prefix = re.search(r"-([0-9a-f]{8})\.pt$", name).group(1)
    return ModelCard(
        id=f"croma_{size}", family="croma", kind="on_the_fly",
        description=f"CROMA ViT-{size[0].upper()}/8 joint radar-optical encoder (S1 + S2), TorchGeo weights",
        inputs=(S2_INPUT, S1_INPUT), dims=DIMS[size], outputs=("pooled", "grid"),
        weights=(WeightsFile(name=name, url=url, sha256="", licence="MIT"),),
        verified="library", variant=size, licence="MIT",
        citation="Fuller, A., Millard, K., Green, J. R. (2023). CROMA: Remote Sensing Representations with "
                 "Contrastive Radar-Optical Masked Autoencoders. NeurIPS 2023. arXiv:2311.00566",
        url="https://github.com/antofuller/CROMA", mem_mb=3000 if size == "base" else 6000, runtime_min=30,
        notes="Two sensors on one grid: models.<id>.sensor = the S2 sensor (12 bands, L2A or L1C without "
              "B10), models.<id>.sensors.s1 = a sentinel-1-grd (CROMA's sigma0 GRD) or sentinel-1-rtc "
              "(gamma0, a shift) VV+VH sensor at the same scale_m. Normalisation: CROMA's README formula "
              "clip((x - (m - 2s)) / 4s, 0, 1) takes m, s from the data at hand; eoembed fixes them to the "
              "SSL4EO-S12 statistics TorchGeo publishes (S2: L1C statistics, also for L2A input: a "
              "declared choice; S1: dB). The README's default 8-bit path (uint8 truncation) is not "
              "applied. 120 px by resize; grid = joint tokens (15 x 15), pooled = their mean = CROMA's "
              "joint_GAP. The optical-only / SAR-only encoders are not offered. Weights: the CROMA "
              "container of five state dicts. "
              f"Pin the sha256 in models.<id>.weights_sha256 (TorchGeo's file name carries its prefix {prefix}).")


def load_container(path: str | Path, sha256: str) -> dict[str, dict[str, Any]]:
    """Verify ``sha256`` and load the published CROMA container: its five state dicts by part.

    Raises:
        WeightsError: sha256 mismatch, a file ``weights_only`` refuses, not a mapping, a missing
            part (e.g. a flat state dict), or a part that is not a plain state dict.
    """
    from eoembed.checksums import verify_sha256
    from eoembed.weights import _check_state_dict, _load_torch

    p = Path(path).absolute()
    verify_sha256(p, sha256)
    obj = _load_torch(p)
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {p} does not have the published layout ({LAYOUT}): it holds a "
                           f"{type(obj).__name__}")
    missing = [k for k in PARTS if k not in obj]
    if missing:
        raise WeightsError(f"weights file {p} does not have the published layout ({LAYOUT}): parts {missing} "
                           f"are missing; its top-level keys are e.g. {sorted(map(str, obj))[:5]}")
    return {k: _check_state_dict(obj[k], Path(f"{p}[{k!r}]")) for k in PARTS}


class CROMA(Embedder):
    """CROMA joint encoder (TorchGeo); ``variant`` base / large."""

    cards: ClassVar[dict[str, ModelCard]] = {s: _card(s) for s in URLS}
    card: ClassVar[ModelCard] = cards["base"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    def build(self):
        """TorchGeo's CROMA of this size with both modalities, untrained, 120 px inputs."""
        from torchgeo.models import croma

        return getattr(croma, f"croma_{self.card.variant}")(weights=None, modalities=["sar", "optical"],
                                                            image_size=SIZE)

    def _load(self) -> None:
        path, sha = self.weights_file(self.card.weights[0].name)
        parts = load_container(path, sha)
        net = self.build()
        for part in PARTS:
            module = getattr(net, part)
            check_keys(module.state_dict(), parts[part], set(), f"{path} ({self.card.id}) part {part!r}", LAYOUT)
            module.load_state_dict(parts[part])
        self.net = net.to(self.device).eval()

    def network_input(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """``(sar (B, 2, 120, 120), optical (B, 12, 120, 120))``: the single frame of each input."""
        return batch.x["s1"][:, 0], batch.x["s2"][:, 0]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        sar, optical = (to_device(a, self.device) for a in self.network_input(batch))
        with torch.inference_mode():
            t = self.net(x_sar=sar, x_optical=optical)["joint_encodings"]  # (B, 225, D), row-major patches
        side = SIZE // PATCH
        f = t.transpose(1, 2).reshape(t.shape[0], -1, side, side).float().cpu().numpy()
        return TokenGrid(f, np.ones((f.shape[0], side, side), np.float32))
