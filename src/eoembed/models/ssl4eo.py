"""SSL4EO-S12 encoders (Wang et al. 2023) with the weights TorchGeo 0.8.1 publishes.

Architectures are timm's (``resnet18``, ``resnet50``, ``vit_small_patch16_224`` with 13 input
channels), exactly what ``torchgeo.models.resnet18/resnet50/vit_small_patch16_224`` build; weights
are the plain state dicts TorchGeo's ``ResNet18_Weights`` / ``ResNet50_Weights`` /
``ViTSmall16_Weights`` enums point at (timm key names, no prefix; the classifier ``fc.*`` /
``head.*`` and, for ViTs, the final ``norm.*`` may be absent, as TorchGeo's own loader allows).

Declared input (the framework applies it):

* 13 Sentinel-2 **L1C** bands in the published order B01..B08, B8A, B09, B10, B11, B12, at 10 m;
* normalisation ``x / 10000`` (TorchGeo ``Normalize(mean=0, std=10000)``), or for SoftCon the
  SSL4EO-S12 per-band mean/std (TorchGeo ``_ssl4eo_s12_transforms_s2_stats``);
* one frame; gaps filled with the ROI's band mean (the networks take no mask);
* a fixed 224 x 224 input reached by resize (bilinear, anti-aliased; ``tile`` and ``pad`` work too).

Where eoembed differs from the published transform ``Resize(256) -> CenterCrop(224)``: eoembed
resizes the *whole ROI* to 224 px, so no border is cropped away. The published crop keeps the
central 224/256 = 87.5 % of each side. For the published 256 px scenes the two agree exactly when
the ROI is the scene's central 224 px (resize is then the identity); for other sizes eoembed's
batch is torchvision's ``Resize(224)`` of the ROI (``tests/test_zoo1_ssl4eo.py`` checks both).

L2A rule: the ``ssl4eo_s12_*`` models refuse ``sentinel-2-l2a`` (no B10, surface instead of top-of-
atmosphere reflectance). The ``*_l2a`` variants accept it with a declared fill: B10 (cirrus) =
22 DN, the SSL4EO-S12 L1C training mean of B10, for every pixel; the 12 other bands are L2A values
as they come (a domain shift the card notes).

Tokens: the ResNets' last feature map (stride 32: 7 x 7 tokens of 512 / 2048 d; the mean of all
tokens is timm's global average pool), the ViT's patch tokens after the final norm (stride 16:
14 x 14 tokens of 384 d; pooled = mean of patch tokens, not the CLS token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, Derived, InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.published import check_keys, load_published  # noqa: F401 (check_keys: tests import it here)
from eoembed.models.transfer import to_device

#: TorchGeo ``_sentinel2_toa_bands``, in eoembed's band names.
L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
L2A_BANDS = tuple(b for b in L1C_BANDS if b != "B10")
#: SSL4EO-S12 L1C per-band statistics (TorchGeo ``_mean_s2`` / ``_std_s2``), DN.
S2_MEAN = (1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0, 2195.2, 1537.4)
S2_STD = (791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5, 1340.0, 1142.9)
#: The declared B10 fill on L2A input, DN (the SSL4EO-S12 training mean of B10).
B10_FILL_DN = 22.0
HF = "https://hf.co/torchgeo"
HFW = "https://huggingface.co"


@dataclass(frozen=True)
class _Weights:
    arch: str  # timm model name
    method: str
    url: str
    licence: str
    norm: str  # "10k" or "stats"
    repo: str
    paper: str


PUBLISHED: dict[str, _Weights] = {
    "resnet18_moco": _Weights(
        "resnet18", "MoCo-v2",
        f"{HF}/resnet18_sentinel2_all_moco/resolve/5b8cddc9a14f3844350b7f40b85bcd32aed75918/"
        "resnet18_sentinel2_all_moco-59bfdff9.pth", "CC-BY-4.0", "10k",
        "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
    "resnet50_moco": _Weights(
        "resnet50", "MoCo-v2",
        f"{HF}/resnet50_sentinel2_all_moco/resolve/da4f3c9dbe09272eb902f3b37f46635fa4726879/"
        "resnet50_sentinel2_all_moco-df8b932e.pth", "CC-BY-4.0", "10k",
        "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
    "resnet50_dino": _Weights(
        "resnet50", "DINO",
        f"{HF}/resnet50_sentinel2_all_dino/resolve/d7f14bf5530d70ac69d763e58e77e44dbecfec7c/"
        "resnet50_sentinel2_all_dino-d6c330e9.pth", "CC-BY-4.0", "10k",
        "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
    "resnet50_decur": _Weights(
        "resnet50", "DeCUR",
        f"{HFW}/torchgeo/decur/resolve/eba7ae5945d482a4319be046d34b552db5dd9950/"
        "rn50_ssl4eo-s12_ms_decur_ep100-fc6b09ff.pth", "Apache-2.0", "10k",
        "https://github.com/zhu-xlab/DeCUR", "https://arxiv.org/abs/2309.05300"),
    "resnet50_softcon": _Weights(
        "resnet50", "SoftCon",
        f"{HFW}/wangyi111/softcon/resolve/62ff465b2e7467dbfc70758ec1e9d08ab87fc46b/B13_rn50_softcon.pth",
        "CC-BY-4.0", "stats", "https://github.com/zhu-xlab/softcon", "https://arxiv.org/abs/2405.20462"),
    "vits16_moco": _Weights(
        "vit_small_patch16_224", "MoCo-v3",
        f"{HF}/vit_small_patch16_224_sentinel2_all_moco/resolve/1cb683f6c14739634cdfaaceb076529adf898c74/"
        "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth", "CC-BY-4.0", "10k",
        "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
    "vits16_dino": _Weights(
        "vit_small_patch16_224", "DINO",
        f"{HF}/vit_small_patch16_224_sentinel2_all_dino/resolve/5b41dd418a79de47ac9f5be3e035405a83818a62/"
        "vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth", "CC-BY-4.0", "10k",
        "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
    "vits16_mae": _Weights(
        "vit_small_patch16_224", "MAE",
        f"{HFW}/wangyi111/SSL4EO-S12/resolve/75c72195d35201dc1fb210818993518c25da566b/B13_vits16_mae_ep99_enc.pth",
        "CC-BY-4.0", "10k", "https://github.com/zhu-xlab/SSL4EO-S12", "https://arxiv.org/abs/2211.07044"),
}
ARCH = {"resnet18": (512, 32), "resnet50": (2048, 32), "vit_small_patch16_224": (384, 16)}
#: Keys TorchGeo's loader tolerates missing or extra (timm's classifier; the ViT's final norm).
OPTIONAL_KEYS = {"resnet18": {"fc.weight", "fc.bias"}, "resnet50": {"fc.weight", "fc.bias"},
                 "vit_small_patch16_224": {"norm.weight", "norm.bias", "head.weight", "head.bias"}}
CITATION = ("Wang, Y., Braham, N. A. A., Xiong, Z., Liu, C., Albrecht, C. M., Zhu, X. X. (2023). SSL4EO-S12: "
            "A large-scale multimodal, multitemporal dataset for self-supervised learning in Earth observation. "
            "IEEE GRSM.")


def _norms(kind: str, bands: tuple[str, ...]) -> tuple[BandNorm, ...]:
    if kind == "10k":
        return tuple(BandNorm(0.0, 10000.0) for _ in bands)
    return tuple(mean_std(S2_MEAN[L1C_BANDS.index(b)], S2_STD[L1C_BANDS.index(b)]) for b in bands)


def _b10_fill(kind: str) -> Derived:
    """B10 as a constant channel: ``(B01 - B01) / (B01 + B01)`` is 0 (or ``zero_den`` 0) everywhere,
    and the derived norm ``(0 - shift) / 1`` turns it into the normalised value of 22 DN."""
    value = B10_FILL_DN / 10000.0 if kind == "10k" else (B10_FILL_DN - S2_MEAN[10]) / S2_STD[10]
    return Derived("B10", ("B01", "B01"), stage="raw", norm=BandNorm(shift=-value, div=1.0), zero_den=0.0,
                   den="nonzero")


def _input(w: _Weights, l2a: bool) -> InputSpec:
    token = ARCH[w.arch][1]
    src = ("torchgeo 0.8.1 " + ("_ssl4eo_s12_transforms_s2_10k: Normalize(0, 10000)" if w.norm == "10k"
                                else "_ssl4eo_s12_transforms_s2_stats: Normalize(_mean_s2, _std_s2)")
           + " after Resize(256) + CenterCrop(224)")
    bands = L2A_BANDS if l2a else L1C_BANDS
    return InputSpec(
        modality="s2", collections=("sentinel-2-l2a",) if l2a else ("sentinel-2-l1c",), bands=bands,
        norm=_norms(w.norm, bands), derived=(_b10_fill(w.norm),) if l2a else (), gsd_m=10.0,
        time=TimePolicy(1, 1), space=SpacePolicy("fixed", size=224, token_px=token, default_prep="resize"),
        missing="fill_mean", norm_source=src + ("; B10 = 22 DN (declared L2A fill)" if l2a else ""))


def _card(key: str, l2a: bool) -> ModelCard:
    w = PUBLISHED[key]
    dims, token = ARCH[w.arch]
    name = w.url.rsplit("/", 1)[1]
    hashed = re.search(r"-([0-9a-f]{8})\.pth$", name)
    prefix = hashed.group(1) if hashed else ""
    notes = ("Published transform: Resize(256) -> CenterCrop(224); eoembed resizes the whole ROI to 224 px "
             "(no crop: identical to the published batch when the ROI is the central 224 px of a 256 px scene). "
             "Pooled = mean of all tokens (ResNet: timm's global average pool; ViT: patch tokens, not CLS). "
             "The publisher gives no full sha256: pin it in models.<id>.weights_sha256."
             + (f" TorchGeo's file name carries the sha256 prefix {prefix} (torchvision check_hash)." if prefix else ""))
    if l2a:
        notes += (" L2A variant: pretrained on L1C top-of-atmosphere reflectance; B10 is filled with 22 DN "
                  "(SSL4EO-S12 mean) and the other bands are surface reflectance: a domain shift.")
    suffix = "_l2a" if l2a else ""
    return ModelCard(
        id=f"ssl4eo_s12_{key}{suffix}", family="ssl4eo", kind="on_the_fly",
        description=f"SSL4EO-S12 {w.method} {w.arch} (13-band Sentinel-2 "
                    f"{'L2A, B10 filled' if l2a else 'L1C'}), TorchGeo weights",
        inputs=(_input(w, l2a),), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name=name, url=w.url, sha256="", licence=w.licence),),
        verified="library", variant=key + suffix, licence=w.licence,
        citation=CITATION if "SSL4EO" in w.repo else f"{CITATION} Method: {w.paper}", url=w.repo,
        mem_mb=3000 if w.arch == "resnet18" else 4000, runtime_min=30, notes=notes)


class SSL4EO(Embedder):
    """SSL4EO-S12 pretrained ResNet / ViT encoders; ``variant`` selects the published weights."""

    cards: ClassVar[dict[str, ModelCard]] = {
        c.variant: c for c in (_card(k, l2a) for k in PUBLISHED for l2a in (False, True))}
    card: ClassVar[ModelCard] = cards["resnet50_moco"]
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 16}

    @property
    def arch(self) -> str:
        return PUBLISHED[self.card.variant.removesuffix("_l2a")].arch

    def build(self):
        """The untrained timm network TorchGeo's builder makes (13 channels, no classifier)."""
        import timm

        return timm.create_model(self.arch, in_chans=13, num_classes=0, pretrained=False)

    def _load(self) -> None:
        self.net = load_published(self, self.build, OPTIONAL_KEYS[self.arch])

    def network_input(self, batch) -> np.ndarray:
        """The ``(B, 13, 224, 224)`` array the network gets: the batch's channels in the published
        band order (on L2A the declared B10 channel moves from the end to its place)."""
        names = batch.channels["s2"]
        order = [names.index(b) for b in L1C_BANDS]
        return batch.x["s2"][:, 0][:, order]

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        x = to_device(self.network_input(batch), self.device)
        with torch.inference_mode():
            feats = self.net.forward_features(x)
            if feats.ndim == 3:  # ViT: (B, 1 + N, D) -> patch tokens on their grid
                n = feats.shape[1] - self.net.num_prefix_tokens
                side = int(round(n ** 0.5))
                feats = feats[:, self.net.num_prefix_tokens:].transpose(1, 2).reshape(x.shape[0], -1, side, side)
        f = feats.float().cpu().numpy()
        return TokenGrid(f, np.ones((f.shape[0], f.shape[2], f.shape[3]), np.float32))

