"""eoembed: standardized Earth-observation embeddings for ROIs x time windows x models.

One-line API::

    import eoembed
    emb = eoembed.get_embedding("spectral", spatial=eoembed.PointBuffer(5.1, 52.1, 320),
                                temporal=eoembed.TemporalSpec.year(2022),
                                output=eoembed.OutputSpec.pooled(),
                                provider={"name": "local", "catalog": "resources/sample/index.json"})
"""

from eoembed.errors import (ConfigError, EoembedError, ModelError, NoDataError, ProviderError, SpecError,
                            TableError, TransientProviderError, WeightsError)
from eoembed.items import Embedding
from eoembed.specs import BBox, OutputSpec, PointBuffer, Polygon, SensorSpec, TemporalSpec

__version__ = "0.1.0"

__all__ = [
    "BBox", "ConfigError", "EoembedError", "Embedding", "ModelError", "NoDataError", "OutputSpec",
    "PointBuffer", "Polygon", "ProviderError", "SensorSpec", "SpecError", "TableError", "TemporalSpec",
    "TransientProviderError", "WeightsError", "get_embedding", "get_embeddings_batch", "__version__",
]


def __getattr__(name: str):
    # the API pulls in providers and models; import it lazily to keep `import eoembed` light
    if name in ("get_embedding", "get_embeddings_batch"):
        from eoembed import api

        return getattr(api, name)
    raise AttributeError(name)
