"""SatMAE++ (Noman et al., CVPR 2024): SatMAE's encoders re-trained with multi-scale reconstruction.

Variants ``rgb`` (ViT-L/16, fMoW-RGB, 224 px) and ``s2`` (grouped-channel ViT-L, fMoW-Sentinel,
96 px). Inputs are SatMAE's (``satmae.RGB_INPUT`` / ``satmae.GROUP_INPUT``): the same datasets and
normalisation. Channel order of ``rgb`` is R, G, B: the repo's loader reads with OpenCV and converts
BGR -> RGB (``util/datasets.py`` at commit ee173bf); feeding B, G, R (as a raw OpenCV image would
be) is a known pitfall of re-implementations.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.nets import satmaepp as net
from eoembed.models.satmae import SatMAE, group_card, rgb_card

HF = "https://huggingface.co/mubashir04"
CITATION = ("Noman, M., Naseer, M., Cholakkal, H., Anwer, R. M., Khan, S., Khan, F. S. (2024). Rethinking "
            "Transformers Pre-training for Multi-Spectral Satellite Imagery. CVPR 2024")
URL = "https://github.com/techmn/satmae_pp"
LICENCE = "not stated with the checkpoints (check github.com/techmn/satmae_pp before commercial use)"
CARDS = {
    "rgb": rgb_card(
        "satmaepp_rgb", "rgb",
        WeightsFile("checkpoint_ViT-L_pretrain_fmow_rgb.pth",
                    f"{HF}/checkpoint_ViT-L_pretrain_fmow_rgb",
                    "", LICENCE),
        "SatMAE++ ViT-L/16 encoder (fMoW-RGB) on Sentinel-2 true colour", CITATION, URL, LICENCE,
        "Pre-trained on fMoW-RGB (sub-metre): S2 is a domain shift. Channel order R, G, B (the loader "
        "converts "
        "OpenCV's BGR); rs-embed's order is uncertain. Manual step: download the checkpoint from the HF repo "
        "(its file name was not checked offline); no sha256 published. Checkpoint {'model': ...}."),
    "s2": group_card(
        "satmaepp_s2", "s2",
        WeightsFile("checkpoint_ViT-L_pretrain_fmow_sentinel.pth",
                    f"{HF}/checkpoint_ViT-L_pretrain_fmow_sentinel", "", LICENCE),
        "SatMAE++ grouped-channel ViT-L (fMoW-Sentinel, 10 bands in 3 groups)", CITATION, URL, LICENCE,
        "Pre-trained on fMoW-Sentinel (L1C). SentinelNormalize's clip and uint8 truncation are not applied. "
        "Grid = mean of the three group tokens per patch. Manual step: download the checkpoint from the HF "
        "repo; no sha256 published."),
}


class SatMAEpp(SatMAE):
    """SatMAE++ encoder; ``variant`` selects ``rgb`` or ``s2``."""

    cards: ClassVar[dict[str, ModelCard]] = CARDS
    card: ClassVar[ModelCard] = CARDS["rgb"]
    published: ClassVar[dict[str, dict[str, Any]]] = net.PUBLISHED

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.card.variant, self.config, state_dict)
