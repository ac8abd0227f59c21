"""TerraFM (Danish et al., 2025): a DINO-style ViT over Sentinel-2 (and S1) with per-sensor stems.

Variants ``base`` (768-d) and ``large`` (1024-d), patch 16 at 224 px. Declared input: the 12
Sentinel-2 bands B1..B12 without B10 as reflectance (``x / 10000``), one frame. rs-embed clips
reflectance to [0, 1]; an affine ``BandNorm`` cannot clip (values > 1 occur only for reflectance
> 1). Routing quirk of the original, kept by default: every 12-band input goes through the L1C
stem (the public ``forward`` never selects the L2A one); ``options.stem: l2a`` selects the L2A
stem instead. Tokens: final-normed patch tokens; pooled = their mean (the original's output is
the CLS token: ``options.pooled: cls`` is not offered because the framework pools tokens).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.errors import ModelError
from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import terrafm as net
from eoembed.models.zoo import ZooEmbedder

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
LICENCE = "not stated in eoembed's sources (check huggingface.co/MBZUAI/TerraFM before commercial use)"
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in BANDS), gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=16, default_prep="resize"), missing="mask",
    norm_source="TerraFM / rs-embed: S2 reflectance = DN / 10000 (rs-embed also clips to [0, 1])")


def _card(size: str, dims: int) -> ModelCard:
    return ModelCard(
        id=f"terrafm_{size}", family="zoo", kind="on_the_fly", variant=size,
        description=f"TerraFM-{size[0].upper()} ViT on 12 Sentinel-2 bands", inputs=(S2_INPUT,), dims=dims,
        outputs=("pooled", "grid"),
        weights=(WeightsFile(f"TerraFM-{size[0].upper()}.pth",
                             f"https://huggingface.co/MBZUAI/TerraFM/resolve/main/TerraFM-{size[0].upper()}.pth",
                             "", LICENCE),),
        verified="oracle", licence=LICENCE,
        citation="Danish, M. S., et al. (2025). TerraFM: A Scalable Foundation Model for Unified Multisensor "
                 "Earth Observation. arXiv:2506.06281",
        url="https://github.com/mbzuai-oryx/TerraFM", mem_mb=4000 if size == "base" else 8000,
        notes="L2A goes through the L1C stem by default (the original's routing). No clip of reflectance "
              "at 1. "
              "S1 input (VV, VH) is not offered: eoembed has no S1 collection yet. No sha256 published.")


CARDS = {"base": _card("base", 768), "large": _card("large", 1024)}


class TerraFM(ZooEmbedder):
    """TerraFM encoder; ``variant`` selects ``base`` or ``large``."""

    cards: ClassVar[dict[str, ModelCard]] = CARDS
    card: ClassVar[ModelCard] = CARDS["base"]
    published: ClassVar[dict[str, dict[str, Any]]] = net.PUBLISHED
    default_options: ClassVar[dict[str, Any]] = {"stem": None, "batch_size": 8}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options["stem"] not in (None, "l2a", "l1c"):
            raise ModelError(f"model {self.card.id}: options.stem={self.options['stem']!r} is invalid: "
                             "allowed "
                             "null (the original's routing: L1C stem), 'l1c' or 'l2a'")

    def inputs(self) -> tuple[InputSpec, ...]:
        size, p = int(self.config["img_size"]), int(self.config["patch_size"])
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=size, token_px=p, default_prep="resize")),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["s2"][:, 0])

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        stem = self.options["stem"]
        return net_.forward_tokens(inp, stem=None if stem is None else f"s2_{stem}")["grid"]
