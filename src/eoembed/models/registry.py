"""The model registry: the only place that maps model ids to their modules.

Modules are imported lazily, so listing models or reading a card does not import torch
or any other heavy dependency of a model that is not used.
"""

from __future__ import annotations

import importlib
from typing import Any

from eoembed.errors import UnknownModelError
from eoembed.models.base import Embedder, ModelCard

#: model id -> "module:Class" or "module:Class@variant" (sizes of one model are data on one class)
MODELS: dict[str, str] = {
    "spectral": "eoembed.models.spectral:SpectralEmbedder",
    "mosaiks": "eoembed.models.mosaiks:MosaiksEmbedder",
    "presto": "eoembed.models.presto:PrestoEmbedder",
    "galileo_nano": "eoembed.models.galileo:Galileo@nano",
    "galileo_tiny": "eoembed.models.galileo:Galileo@tiny",
    "galileo_base": "eoembed.models.galileo:Galileo@base",
    "geoclip": "eoembed.models.geoclip:GeoCLIP",
    "satclip_l10": "eoembed.models.satclip:SatCLIP@l10",
    "satclip_l40": "eoembed.models.satclip:SatCLIP@l40",
    "satmae_rgb": "eoembed.models.satmae:SatMAE@rgb",
    "satmae_group": "eoembed.models.satmae:SatMAE@group",
    "satmaepp_rgb": "eoembed.models.satmaepp:SatMAEpp@rgb",
    "satmaepp_s2": "eoembed.models.satmaepp:SatMAEpp@s2",
    "wildsat": "eoembed.models.wildsat:WildSAT@vitb16",
    "wildsat_rn50": "eoembed.models.wildsat:WildSAT@rn50",
    "wildsat_swint": "eoembed.models.wildsat:WildSAT@swint",
    "terrafm_base": "eoembed.models.terrafm:TerraFM@base",
    "terrafm_large": "eoembed.models.terrafm:TerraFM@large",
    "terrafm_base_s1": "eoembed.models.terrafm:TerraFM@base_s1",
    "terrafm_large_s1": "eoembed.models.terrafm:TerraFM@large_s1",
    "thor_tiny": "eoembed.models.thor:Thor@tiny",
    "thor_small": "eoembed.models.thor:Thor@small",
    "thor_base": "eoembed.models.thor:Thor@base",
    "thor_large": "eoembed.models.thor:Thor@large",
    "thor_tiny_s1": "eoembed.models.thor:Thor@tiny_s1",
    "thor_small_s1": "eoembed.models.thor:Thor@small_s1",
    "thor_base_s1": "eoembed.models.thor:Thor@base_s1",
    "thor_large_s1": "eoembed.models.thor:Thor@large_s1",
    "fomo": "eoembed.models.fomo:FoMo@v1",
    "satvision_toa": "eoembed.models.satvision_toa:SatVisionTOA@giant",
    "agrifm": "eoembed.models.agrifm:AgriFM@s2",
    "anysat": "eoembed.models.anysat:AnySat@base",
    "prithvi_eo_v2_tiny_tl": "eoembed.models.prithvi:Prithvi@tiny_tl",
    "prithvi_eo_v2_100_tl": "eoembed.models.prithvi:Prithvi@100_tl",
    "prithvi_eo_v2_300": "eoembed.models.prithvi:Prithvi@300",
    "prithvi_eo_v2_300_tl": "eoembed.models.prithvi:Prithvi@300_tl",
    "prithvi_eo_v2_600": "eoembed.models.prithvi:Prithvi@600",
    "prithvi_eo_v2_600_tl": "eoembed.models.prithvi:Prithvi@600_tl",
    "olmoearth_nano": "eoembed.models.olmoearth:OlmoEarth@nano",
    "olmoearth_tiny": "eoembed.models.olmoearth:OlmoEarth@tiny",
    "olmoearth_base": "eoembed.models.olmoearth:OlmoEarth@base",
    "olmoearth_large": "eoembed.models.olmoearth:OlmoEarth@large",
    "terramind_v1_tiny": "eoembed.models.terramind:TerraMind@tiny",
    "terramind_v1_small": "eoembed.models.terramind:TerraMind@small",
    "terramind_v1_base": "eoembed.models.terramind:TerraMind@base",
    "terramind_v1_large": "eoembed.models.terramind:TerraMind@large",
    "clay_v15": "eoembed.models.clay_v15:ClayV15",
    "dinov2_small": "eoembed.models.dinov2:DINOv2@small",
    "dinov2_base": "eoembed.models.dinov2:DINOv2@base",
    "dinov3_sat_vitl16": "eoembed.models.dinov3:DINOv3Sat",
    "clip_vitb32": "eoembed.models.clip:CLIP@openai",
    "remoteclip": "eoembed.models.clip:CLIP@remoteclip",
    "dofa_base": "eoembed.models.dofa:DOFA@base",
    "dofa_large": "eoembed.models.dofa:DOFA@large",
    "croma_base": "eoembed.models.croma:CROMA@base",
    "croma_large": "eoembed.models.croma:CROMA@large",
    "copernicusfm": "eoembed.models.copernicusfm:CopernicusFM@base",
    "panopticon": "eoembed.models.panopticon:Panopticon@vitb14",
    "scalemae_large": "eoembed.models.scalemae:ScaleMAE",
    "earthloc": "eoembed.models.earthloc:EarthLoc",
    "satlas_swint_rgb": "eoembed.models.satlas:Satlas@swint_rgb",
    "satlas_swint_ms": "eoembed.models.satlas:Satlas@swint_ms",
    "satlas_swinb_rgb": "eoembed.models.satlas:Satlas@swinb_rgb",
    "satlas_swinb_ms": "eoembed.models.satlas:Satlas@swinb_ms",
    "convnextv2_atto": "eoembed.models.convnextv2:ConvNeXtV2@atto",
    "convnextv2_femto": "eoembed.models.convnextv2:ConvNeXtV2@femto",
    "convnextv2_pico": "eoembed.models.convnextv2:ConvNeXtV2@pico",
    "convnextv2_nano": "eoembed.models.convnextv2:ConvNeXtV2@nano",
    "convnextv2_tiny": "eoembed.models.convnextv2:ConvNeXtV2@tiny",
    "convnextv2_base": "eoembed.models.convnextv2:ConvNeXtV2@base",
    "ssl4eo_s12_resnet18_moco": "eoembed.models.ssl4eo:SSL4EO@resnet18_moco",
    "ssl4eo_s12_resnet18_moco_l2a": "eoembed.models.ssl4eo:SSL4EO@resnet18_moco_l2a",
    "ssl4eo_s12_resnet50_moco": "eoembed.models.ssl4eo:SSL4EO@resnet50_moco",
    "ssl4eo_s12_resnet50_moco_l2a": "eoembed.models.ssl4eo:SSL4EO@resnet50_moco_l2a",
    "ssl4eo_s12_resnet50_dino": "eoembed.models.ssl4eo:SSL4EO@resnet50_dino",
    "ssl4eo_s12_resnet50_dino_l2a": "eoembed.models.ssl4eo:SSL4EO@resnet50_dino_l2a",
    "ssl4eo_s12_resnet50_decur": "eoembed.models.ssl4eo:SSL4EO@resnet50_decur",
    "ssl4eo_s12_resnet50_decur_l2a": "eoembed.models.ssl4eo:SSL4EO@resnet50_decur_l2a",
    "ssl4eo_s12_resnet50_softcon": "eoembed.models.ssl4eo:SSL4EO@resnet50_softcon",
    "ssl4eo_s12_resnet50_softcon_l2a": "eoembed.models.ssl4eo:SSL4EO@resnet50_softcon_l2a",
    "ssl4eo_s12_vits16_moco": "eoembed.models.ssl4eo:SSL4EO@vits16_moco",
    "ssl4eo_s12_vits16_moco_l2a": "eoembed.models.ssl4eo:SSL4EO@vits16_moco_l2a",
    "ssl4eo_s12_vits16_dino": "eoembed.models.ssl4eo:SSL4EO@vits16_dino",
    "ssl4eo_s12_vits16_dino_l2a": "eoembed.models.ssl4eo:SSL4EO@vits16_dino_l2a",
    "ssl4eo_s12_vits16_mae": "eoembed.models.ssl4eo:SSL4EO@vits16_mae",
    "ssl4eo_s12_vits16_mae_l2a": "eoembed.models.ssl4eo:SSL4EO@vits16_mae_l2a",
    "gse": "eoembed.products.gse:GoogleSatelliteEmbedding",
    "tessera": "eoembed.products.tessera:Tessera",
    "esd": "eoembed.products.esd:EmbeddedSeamlessData",
    "clay": "eoembed.products.clay:ClayEmbeddings",
    "copernicus_embed": "eoembed.products.copernicus_embed:CopernicusEmbed",
    "earth_index": "eoembed.products.earth_index:EarthIndex",
    "major_tom": "eoembed.products.major_tom:MajorTom",
    "presto_togo": "eoembed.products.presto_togo:PrestoTogo",
}


def model_ids() -> list[str]:
    """All registered model ids, sorted."""
    return sorted(MODELS)


def _resolve(model_id: str) -> tuple[type, str | None]:
    try:
        target = MODELS[model_id]
    except KeyError:
        raise UnknownModelError(f"unknown model {model_id!r}; available: {model_ids()}") from None
    module, _, rest = target.partition(":")
    cls, _, variant = rest.partition("@")
    return getattr(importlib.import_module(module), cls), (variant or None)


def embedder_class(model_id: str) -> type[Embedder]:
    """Import and return the class registered as ``model_id`` (a model or a product)."""
    return _resolve(model_id)[0]


def get_card(model_id: str) -> ModelCard:
    """The card of ``model_id`` (a :class:`ModelCard`, or a product's card)."""
    cls, variant = _resolve(model_id)
    return cls.cards[variant] if variant else cls.card


def create(model_id: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Embedder:
    """Instantiate ``model_id`` with validated ``options`` (weights are loaded by ``.load()``).

    Keyword arguments a product does not take (``input_prep``) are dropped for products.
    """
    cls, variant = _resolve(model_id)
    if variant:
        kwargs["variant"] = variant
    if get_card(model_id).kind == "precomputed":
        kwargs.pop("input_prep", None)
    return cls(options, **kwargs)
