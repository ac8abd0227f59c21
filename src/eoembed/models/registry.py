"""The model registry: the only place that maps model ids to their modules.

Modules are imported lazily, so listing models or reading a card does not import torch
or any other heavy dependency of a model that is not used.
"""

from __future__ import annotations

import importlib
from typing import Any

from eoembed.errors import UnknownModelError
from eoembed.models.base import Embedder, ModelCard

#: model id -> "module:Class"
MODELS: dict[str, str] = {
    "spectral": "eoembed.models.spectral:SpectralEmbedder",
    "mosaiks": "eoembed.models.mosaiks:MosaiksEmbedder",
    "presto": "eoembed.models.presto:PrestoEmbedder",
    "galileo_nano": "eoembed.models.galileo:GalileoNano",
    "galileo_tiny": "eoembed.models.galileo:GalileoTiny",
    "galileo_base": "eoembed.models.galileo:GalileoBase",
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


def embedder_class(model_id: str) -> type[Embedder]:
    """Import and return the :class:`Embedder` subclass registered as ``model_id``."""
    try:
        target = MODELS[model_id]
    except KeyError:
        raise UnknownModelError(f"unknown model {model_id!r}; available: {model_ids()}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_card(model_id: str) -> ModelCard:
    """The :class:`ModelCard` of ``model_id``."""
    return embedder_class(model_id).card


def create(model_id: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Embedder:
    """Instantiate ``model_id`` with validated ``options`` (weights are loaded by ``.load()``)."""
    return embedder_class(model_id)(options, **kwargs)
