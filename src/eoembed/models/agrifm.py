"""AgriFM (Li et al., 2025): a Video-Swin encoder over Sentinel-2 time series for agriculture.

Declared input: 8 frames of the 10 Sentinel-2 bands (B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12) as
``(DN - mean) / std`` with the repository's statistics (``configs/cropland_mapping.py``, raw L2A DN),
height and width padded to a multiple of the token (patch 2 x three 2x mergings = 16 px). Tokens:
the final-normed last stage with 'cat' fusion of the remaining temporal depth (T = 8 -> 1), i.e.
1024-d per 16 px; pooled = token mean (rs-embed's spatial mean). Missing pixel-frames hold 0 after
normalisation (= the statistics' mean): the network has no mask.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.nets import agrifm as net
from eoembed.models.zoo import ZooEmbedder

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
FRAMES = 8
S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=BANDS,
    norm=tuple(mean_std(m, s) for m, s in zip(net.S2_MEAN, net.S2_STD)), gsd_m=10.0,
    time=TimePolicy(FRAMES, FRAMES), space=SpacePolicy("multiple", size=16, token_px=16), missing="mask",
    norm_source="AgriFM configs/cropland_mapping.py S2 mean/std (raw L2A DN)")
LICENCE = "not stated in eoembed's sources (check github.com/flyakon/AgriFM before commercial use)"
CARD = ModelCard(
    id="agrifm", family="zoo", kind="on_the_fly", variant="s2",
    description="AgriFM Video-Swin encoder on 8 Sentinel-2 frames (10 bands)", inputs=(S2_INPUT,), dims=1024,
    outputs=("pooled", "grid"),
    weights=(WeightsFile("AgriFM.pth", "https://glass.hku.hk/casual/AgriFM/AgriFM.pth", "", LICENCE),),
    verified="oracle", licence=LICENCE,
    citation="Li, W., et al. (2025). AgriFM: A Multi-source Temporal Remote Sensing Foundation Model for "
             "Crop Mapping. arXiv:2505.21357",
    url="https://github.com/flyakon/AgriFM", mem_mb=8000, runtime_min=90,
    notes="Exactly 8 frames (the published T). No sha256 published; keys are renamed as the original loader "
          "does (module. stripped, S2_patch_emd -> patch_emd). The clipped-window attention-table slicing of "
          "the original is reproduced. Gaps are 0 after normalisation (no mask in the network).")


class AgriFM(ZooEmbedder):
    """AgriFM S2 encoder."""

    cards: ClassVar[dict[str, ModelCard]] = {"s2": CARD}
    card: ClassVar[ModelCard] = CARD
    published: ClassVar[dict[str, dict[str, Any]]] = {"s2": net.PUBLISHED}
    weights_member: ClassVar[str | None] = None
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 4}

    def inputs(self) -> tuple[InputSpec, ...]:
        from dataclasses import replace

        token = int(self.config["patch_size"][1]) * 2 ** (len(self.config["depths"]) - 1)
        return (replace(S2_INPUT, space=SpacePolicy("multiple", size=token, token_px=token)),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        return net.load(self.config, net.revise_keys(state_dict))

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["s2"])  # (B, T, C, H, W), the original's layout
