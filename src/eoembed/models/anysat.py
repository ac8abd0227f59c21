"""AnySat (Astruc et al., CVPR 2025): one model for any sensor, resolution and tile size, with the
patch size given in metres.

Declared input: 1-64 frames of the 10 Sentinel-2 bands (B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12)
with day-of-year tokens (0-based, of each frame's middle day), tiles of 64 px (640 m) cut from the
ROI by default. Normalisation is UNCERTAIN: AnySat was trained on several datasets, each with its own
statistics, and publishes no single S2 normalisation for the released model; eoembed feeds
reflectance (``x / 10000``). ``options.patch_size`` (metres, a multiple of 10; default 20) sets the
token size. Tokens: the 'patch' output (one per patch); pooled = token mean (the original's 'tile'
output is the CLS token, which the framework's pooling does not use).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.errors import ModelError
from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import anysat as net
from eoembed.models.transfer import to_device
from eoembed.models.zoo import ZooEmbedder

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in BANDS),
    gsd_m=10.0, time=TimePolicy(1, 64, tokens="doy"),
    space=SpacePolicy("fixed", size=64, token_px=2, default_prep="tile"), missing="mask", metadata=("time",),
    norm_source="UNCERTAIN: no single published S2 normalisation; reflectance = DN / 10000")
CARD = ModelCard(
    id="anysat", family="zoo", kind="on_the_fly", variant="base",
    description="AnySat base on Sentinel-2 time series (day-of-year tokens, patch size in metres)",
    inputs=(S2_INPUT,), dims=768, outputs=("pooled", "grid"),
    weights=(WeightsFile("AnySat.pth", "https://huggingface.co/g-astruc/AnySat/resolve/main/models/AnySat.pth",
                         "", "MIT (not confirmed offline)"),),
    verified="oracle", licence="MIT (not confirmed offline)",
    citation="Astruc, G., Gonthier, N., Mallet, C., Landrieu, L. (2025). AnySat: One Earth Observation Model "
             "for Many Resolutions, Scales, and Modalities. CVPR 2025",
    url="https://github.com/gastruc/AnySat", mem_mb=6000, runtime_min=60,
    notes="Normalisation uncertain (reflectance fed). Non-flash attention path: the released weights were "
          "trained with upstream's flash path, which attends across heads (a layout bug), so outputs differ "
          "from training-time behaviour; the oracle is the plain path. No sha256 published. Gap pixel-frames "
          "are 0 (no mask in the network).")


class AnySat(ZooEmbedder):
    """AnySat (base) on Sentinel-2."""

    cards: ClassVar[dict[str, ModelCard]] = {"base": CARD}
    card: ClassVar[ModelCard] = CARD
    published: ClassVar[dict[str, dict[str, Any]]] = net.PUBLISHED
    weights_member: ClassVar[str | None] = "state_dict"
    default_options: ClassVar[dict[str, Any]] = {"patch_size": 20, "tile_px": 64, "batch_size": 4}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p, t = self.options["patch_size"], self.options["tile_px"]
        if isinstance(p, bool) or not isinstance(p, int) or p < 10 or p % 10:
            raise ModelError(f"model anysat: options.patch_size={p!r} is invalid: allowed a multiple of 10 "
                             "(metres)")
        if isinstance(t, bool) or not isinstance(t, int) or t < 1 or t % (p // 10):
            raise ModelError(f"model anysat: options.tile_px={t!r} is invalid: allowed a positive "
                             f"multiple of patch_size / 10 = {p // 10} px")

    def inputs(self) -> tuple[InputSpec, ...]:
        scale = self.options["patch_size"] // 10
        return (replace(S2_INPUT, space=SpacePolicy("fixed", size=self.options["tile_px"], token_px=scale,
                                                    default_prep="tile")),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, state_dict)

    def model_input(self, batch: Any) -> Any:
        return {"s2": self.tensor(batch.x["s2"]), "s2_dates": to_device(batch.doy, self.device)}

    def run(self, net_: Any, inp: Any, batch: Any) -> Any:
        return net_.forward_tokens(inp, patch_size=self.options["patch_size"], output="patch")["grid"]
