"""FoMo-Net (Bountos et al., 2025): one shared patch stem, every band its own token group marked
by a spectral embedding, so any subset of known bands can be fed.

Declared input: the 12 Sentinel-2 L2A bands B1..B12 without B10 as reflectance (``x / 10000``; the
input rs-embed uses, which also clips to [0, 1] -- not expressible affinely), one frame, 64 px
(the published image size), patch 16. Spectral ids from ``fomo_pretraining_datasets.json``.
Tokens: per patch, the mean over the 12 band tokens (final-normed); pooled = token mean (= the
mean over all band tokens, as the original's mean pooling).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import fomo as net
from eoembed.models.zoo import ZooEmbedder

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
KEYS = tuple(net.S2_KEYS[b.replace("B0", "B")] for b in BANDS)
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in BANDS), gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=64, token_px=16, default_prep="resize"), missing="mask",
    norm_source="rs-embed fomo: reflectance = DN / 10000 (clipped to [0, 1] there); FoMo-Bench publishes "
                "no single S2 normalisation for the released weights")
CARD = ModelCard(
    id="fomo", family="zoo", kind="on_the_fly", variant="v1",
    description="FoMo-Net_1 (every band its own token group) on 12 Sentinel-2 bands", inputs=(S2_INPUT,),
    dims=768, outputs=("pooled", "grid"),
    weights=(WeightsFile("fomo_single_embedding_layer_weights.pt",
                         "https://github.com/RolnickLab/FoMo-Bench", "", "MIT"),),
    verified="oracle", licence="MIT",
    citation="Bountos, N. I., Ouaknine, A., Papoutsis, I., Rolnick, D. (2025). FoMo: Multi-Modal, "
             "Multi-Scale "
             "and Multi-Task Remote Sensing Foundation Models for Forest Monitoring. AAAI 2025",
    url="https://github.com/RolnickLab/FoMo-Bench", mem_mb=3000,
    notes="Manual step: the Dropbox link of the FoMo-Bench README (a plain GET gets an HTML page); no sha256 "
          "published. Input scaling is rs-embed's (x / 10000), uncertain for the released weights; no clip.")


class FoMo(ZooEmbedder):
    """FoMo-Net_1 encoder on Sentinel-2."""

    cards: ClassVar[dict[str, ModelCard]] = {"v1": CARD}
    card: ClassVar[ModelCard] = CARD
    published: ClassVar[dict[str, dict[str, Any]]] = {"v1": net.PUBLISHED}

    def inputs(self) -> tuple[InputSpec, ...]:
        size, p = int(self.config["image_size"]), int(self.config["patch_size"])
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=size, token_px=p, default_prep="resize")),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["s2"][:, 0])

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        return net_.forward_tokens(inp, KEYS)["grid"]
