"""SatVision-TOA (NASA NCCS, 2024): a SwinV2-Giant pre-trained (SimMIM) on MODIS top-of-atmosphere
reflectance and brightness temperature, 14 channels at 128 px.

Declared input: the 14 MODIS bands of the ``modis-toa`` collection in the model's strict order (1, 2,
3, 26, 6, 20, 7, 27, 28, 29, 31, 32, 33, 34), scaled as pytorch-caney's
``MinMaxEmissiveScaleReflectance`` (``pytorch_caney/transforms/modis_toa_scale.py``, the transform of
the SatVision-TOA pre-training pipeline): reflective bands (1, 2, 3, 26, 6, 7) from percent to
reflectance (here: stack reflectance x 10000 / 10000, the same number), emissive bands (20, 27-34)
min-max scaled from kelvin with the published per-band minima and maxima. Both are affine, so they
are ``BandNorm`` s applied by the framework. Tokens: the final-normed 4 x 4 last-stage map (one token
per 32 px); pooled = their mean (= the original's forward_features).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from eoembed.models.base import ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy
from eoembed.models.nets import satvision_toa as net
from eoembed.models.zoo import ZooEmbedder

BANDS = tuple(f"B{b:02d}" for b in net.MODIS_BANDS)
#: pytorch-caney transforms/modis_toa_scale.py (commit c037d17) MinMaxEmissiveScaleReflectance:
#: kelvin minima / maxima of the emissive channels 20, 27, 28, 29, 31, 32, 33, 34 (model order)
EMISSIVE_MIN = (223.1222, 178.9174, 204.3739, 204.7677, 194.8686, 202.1759, 201.3823, 203.3537)
EMISSIVE_MAX = (352.7182, 261.2920, 282.5529, 319.0373, 295.0209, 324.0677, 321.5254, 285.9848)
_EMISSIVE = dict(zip(("B20", "B27", "B28", "B29", "B31", "B32", "B33", "B34"), zip(EMISSIVE_MIN, EMISSIVE_MAX)))
MODIS_INPUT = InputSpec(
    modality="modis", collections=("modis-toa",), bands=BANDS,
    norm=tuple(BandNorm(_EMISSIVE[b][0], _EMISSIVE[b][1] - _EMISSIVE[b][0]) if b in _EMISSIVE
               else BandNorm(0.0, 10000.0) for b in BANDS),
    gsd_m=1000.0, time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=128, token_px=32, default_prep="resize"), missing="mask",
    norm_source="pytorch-caney transforms/modis_toa_scale.py MinMaxEmissiveScaleReflectance (SatVision-TOA "
                "pre-training): reflective bands percent * 0.01 (= stack / 10000), emissive bands "
                "(K - min) / (max - min) with its published minima/maxima")
HF = "https://huggingface.co/nasa-cisto-data-science-group/satvision-toa-giant-patch8-window8-128"
CARD = ModelCard(
    id="satvision_toa", family="zoo", kind="on_the_fly", variant="giant",
    description="SatVision-TOA SwinV2-G on 14-channel MODIS L1B TOA (modis-toa collection, local files)",
    inputs=(MODIS_INPUT,), dims=4096, outputs=("pooled", "grid"),
    weights=(WeightsFile("mp_rank_00_model_states.pt", HF, "", "Apache-2.0 (not confirmed offline)"),),
    verified="oracle", licence="Apache-2.0 (pytorch-caney; not confirmed offline)",
    citation="Spradlin, C. S., Caraballo-Vega, J. A., et al. (2024). SatVision-TOA: A Geospatial Foundation "
             "Model for Coarse-Resolution All-Sky Remote Sensing Imagery. arXiv:2411.17000",
    url="https://github.com/nasa-nccs-hpda/pytorch-caney", mem_mb=24000, runtime_min=120,
    notes="Input: the modis-toa collection (MOD021KM/MYD021KM calibrated to TOA reflectance x 10000 and "
          "brightness temperature K, as local GeoTIFFs: no STAC or Earth Engine source serves L1B). Older "
          "pytorch-caney branches carry other emissive min/max tables; eoembed uses the v2 pipeline's "
          "(transforms/modis_toa_scale.py), which of them the released giant checkpoint saw is not "
          "verified. Manual step: the DeepSpeed "
          "checkpoint from the HF repo (file name not checked offline); read as file['module'], keys under "
          "'encoder.' (the SimMIM decoder is dropped). No sha256 published.")


class SatVisionTOA(ZooEmbedder):
    """SatVision-TOA SwinV2 encoder."""

    cards: ClassVar[dict[str, ModelCard]] = {"giant": CARD}
    card: ClassVar[ModelCard] = CARD
    published: ClassVar[dict[str, dict[str, Any]]] = {"giant": net.PUBLISHED}
    weights_member: ClassVar[str | None] = "module"
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 2}

    def inputs(self) -> tuple[InputSpec, ...]:
        c = self.config
        size, token = int(c["img_size"]), int(c["patch_size"]) * 2 ** (len(c["depths"]) - 1)
        space = SpacePolicy("fixed", size=size, token_px=token, default_prep="resize")
        return (replace(MODIS_INPUT, space=space),)

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        from eoembed.models.nets.common import subtree

        return net.load(self.config, subtree(state_dict, "encoder."))  # the DeepSpeed file's encoder

    def model_input(self, batch: Any) -> Any:
        return self.tensor(batch.x["modis"][:, 0])
