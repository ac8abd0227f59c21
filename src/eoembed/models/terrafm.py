"""TerraFM (Danish et al., 2025): a DINO-style ViT over Sentinel-2 (and S1) with per-sensor stems.

Variants ``base`` (768-d) and ``large`` (1024-d), patch 16 at 224 px. Declared input: the 12
Sentinel-2 bands B1..B12 without B10 as reflectance (``x / 10000``), one frame. rs-embed clips
reflectance to [0, 1]; an affine ``BandNorm`` cannot clip (values > 1 occur only for reflectance
> 1). Routing quirk of the original, kept by default: every 12-band input goes through the L1C
stem (the public ``forward`` never selects the L2A one); ``options.stem: l2a`` selects the L2A
stem instead. Tokens: final-normed patch tokens; pooled = their mean (the original's output is
the CLS token: ``options.pooled: cls`` is not offered because the framework pools tokens).

S1 variants ``base_s1`` / ``large_s1`` (ids ``terrafm_<size>_s1``): the same network and weights
through the S1 stem (``conv2d_s1`` + ``s1_embed``), input VV, VH from ``sentinel-1-rtc`` (TerraFM
was pre-trained on Major-TOM Core-S1RTC) or ``sentinel-1-grd``. TerraFM publishes NO S1
normalisation (README and ``terrafm.py`` show S2 only). eoembed's declared default: linear power
-> dB (``10 log10``), then a z-score with the SSL4EO-S12 S1 dB statistics TorchGeo publishes (the
constants CROMA's declaration uses). rs-embed's per-image ``log1p(x) / p99`` scaling is not
applied (data-dependent, not a fixed declaration).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.errors import ModelError
from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.croma import S1_MEAN_DB, S1_STD_DB
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.nets import terrafm as net
from eoembed.models.zoo import ZooEmbedder

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
LICENCE = "not stated in eoembed's sources (check huggingface.co/MBZUAI/TerraFM before commercial use)"
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in BANDS), gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=224, token_px=16, default_prep="resize"), missing="mask",
    norm_source="TerraFM / rs-embed: S2 reflectance = DN / 10000 (rs-embed also clips to [0, 1])")
S1_INPUT = InputSpec(
    modality="s1", collections=("sentinel-1-rtc", "sentinel-1-grd"), bands=net.S1_BANDS,
    norm=tuple(mean_std(m, s) for m, s in zip(S1_MEAN_DB, S1_STD_DB)), transform="db", gsd_m=10.0,
    time=TimePolicy(1, 1), space=S2_INPUT.space, missing="mask",
    norm_source="eoembed's choice (TerraFM publishes no S1 normalisation): linear power -> 10 log10 (dB), "
                "z-score with SSL4EO-S12's S1 dB statistics (TorchGeo 0.8.1 torchgeo.models.resnet."
                "_mean_s1/_std_s1)")


def _card(size: str, dims: int, s1: bool = False) -> ModelCard:
    variant = f"{size}_s1" if s1 else size
    what = "Sentinel-1 VV, VH (S1 stem)" if s1 else "12 Sentinel-2 bands"
    return ModelCard(
        id=f"terrafm_{variant}", family="zoo", kind="on_the_fly", variant=variant,
        description=f"TerraFM-{size[0].upper()} ViT on {what}", inputs=(S1_INPUT if s1 else S2_INPUT,),
        dims=dims,
        outputs=("pooled", "grid"),
        weights=(WeightsFile(f"TerraFM-{size[0].upper()}.pth",
                             f"https://huggingface.co/MBZUAI/TerraFM/resolve/main/TerraFM-{size[0].upper()}.pth",
                             "", LICENCE),),
        verified="oracle", licence=LICENCE,
        citation="Danish, M. S., et al. (2025). TerraFM: A Scalable Foundation Model for Unified Multisensor "
                 "Earth Observation. arXiv:2506.06281",
        url="https://github.com/mbzuai-oryx/TerraFM", mem_mb=4000 if size == "base" else 8000,
        notes=(S1_NOTES if s1 else
               "L2A goes through the L1C stem by default (the original's routing). No clip of reflectance "
               "at 1. S1 input: the terrafm_<size>_s1 variants. ") + "No sha256 published.")


S1_NOTES = ("S1 stem (conv2d_s1 + s1_embed) of the same weights. UNCERTAIN: TerraFM publishes no S1 "
            "normalisation; eoembed's default is linear power -> dB, z-score with SSL4EO-S12's S1 dB "
            "statistics (VV -12.59/5.26, VH -20.26/5.91; TorchGeo). Pre-training used Major-TOM Core-S1RTC "
            "(gamma0 RTC): sentinel-1-rtc matches it, sentinel-1-grd (sigma0) is accepted. rs-embed's "
            "per-image log1p/p99 scaling to [0, 1] is not applied. ")
CARDS = {"base": _card("base", 768), "large": _card("large", 1024),
         "base_s1": _card("base", 768, s1=True), "large_s1": _card("large", 1024, s1=True)}


class TerraFM(ZooEmbedder):
    """TerraFM encoder; ``variant`` selects ``base`` or ``large``."""

    cards: ClassVar[dict[str, ModelCard]] = CARDS
    card: ClassVar[ModelCard] = CARDS["base"]
    published: ClassVar[dict[str, dict[str, Any]]] = {
        **net.PUBLISHED, **{f"{s}_s1": c for s, c in net.PUBLISHED.items()}}
    default_options: ClassVar[dict[str, Any]] = {"stem": None, "batch_size": 8}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options["stem"] not in (None, "l2a", "l1c"):
            raise ModelError(f"model {self.card.id}: options.stem={self.options['stem']!r} is invalid: "
                             "allowed "
                             "null (the original's routing: L1C stem), 'l1c' or 'l2a'")
        if self.s1 and self.options["stem"] is not None:
            raise ModelError(f"model {self.card.id}: options.stem={self.options['stem']!r} is invalid: "
                             "allowed null (an S1 variant has one stem, 's1'; the S2 stems belong to "
                             f"terrafm_{self.card.variant[:-3]})")

    @property
    def s1(self) -> bool:
        """True for the S1 variants (``*_s1``: VV, VH through the S1 stem)."""
        return self.card.inputs[0].modality == "s1"

    def inputs(self) -> tuple[InputSpec, ...]:
        size, p = int(self.config["img_size"]), int(self.config["patch_size"])
        space = SpacePolicy("fixed", size=size, token_px=p, default_prep="resize")
        return (replace(self.card.inputs[0], space=space),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x[self.card.inputs[0].modality][:, 0])

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        if self.s1:
            stem = "s1"
        else:
            stem = None if self.options["stem"] is None else f"s2_{self.options['stem']}"
        return net_.forward_tokens(inp, stem=stem)["grid"]
