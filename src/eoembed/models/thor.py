"""THOR 1.0 (FM4CS, 2025): a ViT with one patch stem per band, spectral-group tokens, ALiBi
positions in metres and a FlexiViT patch size.

Variants ``tiny`` / ``small`` / ``base`` / ``large``. Declared input: the 10 Sentinel-2 bands at
10 m (B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12) as ``(reflectance - mean) / std`` with THOR's
pre-training statistics (``thor_terratorch_ext`` ``THOR_NORMALIZATION_PARAMS``), one frame, a
2880 m tile (288 px; the released ground cover). The network (as the upstream wrapper) resamples
the 20 m bands to 144 px itself. Tokens: the last block WITHOUT the final norm (what the wrapper
and TerraTorch decoders consume); grid = group maps upsampled to the 10 m group's 36 x 36 and
averaged; pooled = the framework's token mean (rs-embed pools all group tokens: close but not
identical, since the 20 m group has 4x fewer tokens).

S1 variants ``<size>_s1`` (ids ``thor_<size>_s1``): VV, VH (THOR's ``S1:IW-VV`` / ``S1:IW-VH``,
one spectral group, 10 m) from ``sentinel-1-grd`` (THOR's S1 GRD sigma0) or ``sentinel-1-rtc``;
linear power -> dB (``10 log10``), then ``(dB - mean) / std`` with THOR's published pre-training
statistics (``THOR_NORMALIZATION_PARAMS`` ``S1:IW-VV`` / ``S1:IW-VH``, the 10 m entries). Grid =
the S1 group's 36 x 36 tokens (no group merge with one group).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import thor as net
from eoembed.models.zoo import ZooEmbedder

#: eoembed band -> THOR band, in the wrapper's channel order (nets.thor.S2_BANDS).
BANDS = dict(zip(("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"), net.S2_BANDS))
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=tuple(BANDS),
    norm=tuple(BandNorm(net.S2_NORMALIZATION[t][0] * 1e4, net.S2_NORMALIZATION[t][1] * 1e4)
               for t in BANDS.values()),
    gsd_m=10.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=288, token_px=8, default_prep="resize"), missing="mask",
    norm_source="thor_terratorch_ext THOR_NORMALIZATION_PARAMS (reflectance = DN / 10000)")
S1_INPUT = InputSpec(
    modality="s1", collections=("sentinel-1-grd", "sentinel-1-rtc"), bands=("VV", "VH"),
    norm=tuple(BandNorm(*net.S1_NORMALIZATION[t]) for t in net.S1_BANDS), transform="db",
    gsd_m=10.0, time=TimePolicy(1, 1), space=S2_INPUT.space, missing="mask",
    norm_source="linear power -> 10 log10 (dB); thor_terratorch_ext THOR_NORMALIZATION_PARAMS "
                "S1:IW-VV / S1:IW-VH (pre-training statistics in dB)")
#: modality -> THOR band names of the declared bands, in order
THOR_BANDS = {"s2": net.S2_BANDS, "s1": net.S1_BANDS}
DIMS = {"tiny": 192, "small": 384, "base": 768, "large": 1024}


def _card(size: str, s1: bool = False) -> ModelCard:
    variant = f"{size}_s1" if s1 else size
    what = "Sentinel-1 VV, VH" if s1 else "10 Sentinel-2 bands"
    return ModelCard(
        id=f"thor_{variant}", family="zoo", kind="on_the_fly", variant=variant,
        description=f"THOR 1.0 {size} (per-band stems, spectral groups, ALiBi) on {what}",
        inputs=(S1_INPUT if s1 else S2_INPUT,), dims=DIMS[size], outputs=("pooled", "grid"),
        # file name as THOR's own loader (thor_terratorch_ext pretrained_weights) downloads it
        weights=(WeightsFile(f"thor_v1_vit_{size}.pt",
                             f"https://huggingface.co/FM4CS/THOR-1.0-{size}/resolve/main/thor_v1_vit_{size}.pt", "",
                             "MIT"),),
        verified="oracle", licence="MIT",
        citation="FM4CS (2025). THOR: a foundation model for Copernicus sensors, v1.0. "
                 "https://github.com/FM4CS/THOR",
        url="https://github.com/FM4CS/THOR", mem_mb=3000 if size in ("tiny", "small") else 8000,
        notes="Manual step: download the checkpoint from the HF repo (file name not checked offline); "
              "no sha256 "
              "published; loaded under 'encoder.' with the decoder parts dropped. Tokens are the last block "
              "without the final norm (upstream wrapper). "
              + ("S1: VV, VH as IW (THOR's GRD sigma0; sentinel-1-rtc gamma0 is accepted, a shift); dB "
                 "z-score with THOR's published pre-training statistics. The S1 path is the S2-checked "
                 "network with THOR's S1 convs; the oracle has no S1 output." if s1 else
                 "S1 input: the thor_<size>_s1 variants."))


CARDS = {**{s: _card(s) for s in DIMS}, **{f"{s}_s1": _card(s, s1=True) for s in DIMS}}


class Thor(ZooEmbedder):
    """THOR 1.0 encoder; ``variant`` selects the size."""

    cards: ClassVar[dict[str, ModelCard]] = CARDS
    card: ClassVar[ModelCard] = CARDS["base"]
    published: ClassVar[dict[str, dict[str, Any]]] = {
        v: {**c, **net.PUBLISHED_COMMON} for s, c in net.PUBLISHED.items() for v in (s, f"{s}_s1")}
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 4}

    def inputs(self) -> tuple[InputSpec, ...]:
        size, p = int(self.config["ground_cover"]) // 10, int(self.config["patch_size"])
        space = SpacePolicy("fixed", size=size, token_px=p, default_prep="resize")
        return (replace(self.card.inputs[0], space=space),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict, prefix="encoder.", ignore=net.UNUSED)

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x[self.card.inputs[0].modality][:, 0])

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        return net_.forward_tokens(inp, THOR_BANDS[self.card.inputs[0].modality])["grid"]
