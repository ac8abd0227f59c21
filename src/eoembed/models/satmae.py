"""SatMAE (Cong et al., NeurIPS 2022) and the shared declarations of SatMAE++ (``satmaepp.py``).

Two variants of one class: ``rgb`` (ViT-L/16 MAE encoder pre-trained on fMoW-RGB, 224 px) and
``group`` (grouped-channel ViT-L, patch 8, 96 px, pre-trained on fMoW-Sentinel: 10 bands in the
groups (B2, B3, B4, B8), (B5, B6, B7, B8A), (B11, B12)). Declared inputs (the framework applies them):

* ``rgb``: B04, B03, B02 with the repo's ``Normalize(mean, std)`` after ``ToTensor`` on an 8-bit
  image; the S2 -> 8-bit step is eoembed's true-colour convention
  (:data:`~eoembed.models.zoo.RGB_SATURATION`).
* ``group``: ``SentinelNormalize`` with the fMoW-Sentinel 13-band statistics,
  ``(x - (mean - 2 std)) / (4 std)``; the original also clips to [0, 255] and truncates to uint8
  before ``ToTensor``, which an affine ``BandNorm`` cannot express (see the card's notes).

Tokens: the patch tokens (final-normed, raster order; CLS dropped). ``group``: the token of a
patch is the mean over its three group tokens (``nets.satmae`` ``grid``). Pooled = token mean.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.nets import satmae as net
from eoembed.models.zoo import RGB, RGB_SATURATION, ZooEmbedder

#: eoembed names of the grouped model's bands, in channel order (nets.satmae.FMOW_S2_BANDS).
S2_10 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
CITATION = ("Cong, Y., Khanna, S., Meng, C., Liu, P., Rozi, E., He, Y., Burke, M., Lobell, D. B., Ermon, S. "
            "(2022). SatMAE: Pre-training Transformers for Temporal and Multi-Spectral Satellite Imagery. "
            "NeurIPS 2022")
LICENCE = "CC-BY-NC-4.0 (non-commercial; github.com/sustainlab-group/SatMAE/blob/main/LICENSE)"


def _fmow_norm(band: str) -> BandNorm:
    i = net.FMOW_S2_13_BANDS.index(band.replace("B0", "B"))
    return mean_std(net.FMOW_S2_13_MEAN[i], net.FMOW_S2_13_STD[i], k=2.0)


RGB_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=RGB,
    norm=tuple(BandNorm(m * RGB_SATURATION, s * RGB_SATURATION)
               for m, s in zip(net.FMOW_RGB_MEAN, net.FMOW_RGB_STD)),
    gsd_m=10.0, gsd_tolerance=0.05, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=16, default_prep="resize"), missing="mask",
    norm_source="SatMAE main_pretrain fMoW-RGB: ToTensor then Normalize(mean (0.4182, 0.4215, 0.3991), "
                "std (0.2877, 0.2754, 0.2764)); 8-bit = reflectance / 0.3 (eoembed convention)")
GROUP_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l1c", "sentinel-2-l2a"), bands=S2_10,
    norm=tuple(_fmow_norm(b) for b in S2_10),
    gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=96, token_px=8, default_prep="resize"), missing="mask",
    norm_source="SatMAE util/datasets.py SentinelNormalize, fMoW-Sentinel 13-band mean/std (k = 2), "
                "without the clip to [0, 255] and uint8 truncation")

NOTES = {
    "rgb": "Pre-trained on fMoW-RGB (sub-metre 8-bit visual images): Sentinel-2 at 10 m is a domain shift. "
           "S2 -> 8-bit uses reflectance/0.3 without clipping (issue 12 reports rs-embed scaled without a stretch). ",
    "group": "Pre-trained on fMoW-Sentinel (L1C); L2A is a shift. The original clips SentinelNormalize to "
             "[0, 255] and truncates to uint8 (steps of 1/255): eoembed's affine normalisation does "
             "neither. ",
}


def rgb_card(mid: str, variant: str, weights: WeightsFile, description: str, citation: str, url: str,
             licence: str, notes: str) -> ModelCard:
    return ModelCard(id=mid, family="zoo", kind="on_the_fly", variant=variant, description=description,
                     inputs=(RGB_INPUT,), dims=1024, outputs=("pooled", "grid"), weights=(weights,),
                     verified="oracle", licence=licence, citation=citation, url=url, mem_mb=6000,
                     runtime_min=60, notes=notes)


def group_card(mid: str, variant: str, weights: WeightsFile, description: str, citation: str, url: str,
               licence: str, notes: str) -> ModelCard:
    return replace(rgb_card(mid, variant, weights, description, citation, url, licence, notes),
                   inputs=(GROUP_INPUT,))


CARDS = {
    "rgb": rgb_card(
        "satmae_rgb", "rgb",
        WeightsFile("fmow_pretrain.pth", "https://zenodo.org/record/7369797/files/fmow_pretrain.pth", "",
                    LICENCE),
        "SatMAE ViT-L/16 MAE encoder (fMoW-RGB) on Sentinel-2 true colour", CITATION,
        "https://github.com/sustainlab-group/SatMAE", LICENCE,
        NOTES["rgb"] + "No sha256 is published: pin it in the config. The checkpoint is {'model': ...}."),
    "group": group_card(
        "satmae_group", "group",
        WeightsFile("pretrain-vit-large-e199.pth", "https://github.com/sustainlab-group/SatMAE#pre-training",
                    "", LICENCE),
        "SatMAE grouped-channel ViT-L (fMoW-Sentinel, 10 bands in 3 groups)", CITATION,
        "https://github.com/sustainlab-group/SatMAE", LICENCE,
        NOTES["group"] + "Manual step: the fMoW-Sentinel ViT-L pretrain checkpoint is linked from the SatMAE "
        "README (the direct file URL was not recorded offline); no sha256 published. Loaded as the pretrain "
        "MAE encoder (no CLS pos/channel embedding)."),
}


class SatMAE(ZooEmbedder):
    """SatMAE encoder; ``variant`` selects ``rgb`` or ``group``."""

    cards: ClassVar[dict[str, ModelCard]] = CARDS
    card: ClassVar[ModelCard] = CARDS["rgb"]
    published: ClassVar[dict[str, dict[str, Any]]] = net.PUBLISHED
    weights_member: ClassVar[str | None] = "model"
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 8}

    def inputs(self) -> tuple[InputSpec, ...]:
        spec = self.card.inputs[0]
        size, p = int(self.config["img_size"]), int(self.config["patch_size"])
        return (replace(spec, space=SpacePolicy("fixed", size=size, token_px=p, default_prep="resize")),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        if self.card.variant == "rgb":
            return net.load_rgb(self.config, state_dict)
        # the pretrain MAE file: no channel_cls_embed, decoder dropped
        return net.load_group({**self.config, "cls_embed": False}, state_dict, ignore=net.MAE_UNUSED)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["s2"][:, 0])  # (B, C, H, W): one frame
