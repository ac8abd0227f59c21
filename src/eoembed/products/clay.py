"""Clay embeddings: one vector per image chip, published as GeoParquet.

Layouts (``models.clay.source`` = a file or a directory of ``.gpq``/``.parquet`` files):

* **Clay v0** (Sentinel-2, 768-d): ``*.gpq`` with columns ``embeddings`` (list of float), ``date``
  and a polygon ``geometry`` (the chip footprint).
* **Clay v1.5** (Sentinel-2 and NAIP, 1024-d): ``*.parquet`` with ``embedding`` and ``datetime``.

Patch-typed: the chips that intersect the ROI and whose date is in the request window; pooled =
area-weighted mean (weights = intersection area with the ROI in its UTM zone). All chips of the
window are used (several dates average together).
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PatchProduct
from eoembed.products.patches import load_patch_table
from eoembed.products.raster import find_files

__all__ = ["ClayEmbeddings"]


class ClayEmbeddings(PatchProduct):
    """Clay v0 / v1.5 chip embeddings (dims follow the files: 768 for v0, 1024 for v1.5)."""

    card = ModelCard(
        id="clay", family=PRODUCT_FAMILY, kind="precomputed",
        description="Clay foundation model chip embeddings (v0 Sentinel-2 768-d; v1.5 Sentinel-2/NAIP 1024-d)",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=10.0, input_size=None,
        temporal="single", frames=1, dims=768, outputs=("pooled", "patches"),
        licence="ODC-BY-1.0 (embeddings); Apache-2.0 (model)",
        citation="Clay Foundation (2024), Clay Foundation Model, https://clay-foundation.github.io/model",
        url="https://source.coop/clay", mem_mb=4000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {}
    source_help = "a Clay GeoParquet file (.gpq/.parquet) or a directory of them"

    def _open(self) -> None:
        files = find_files(self.source, ("*.gpq", "*.parquet"))
        self._table = load_patch_table(files, embedding_cols=("embeddings", "embedding"),
                                       time_cols=("date", "datetime"))

    def patch_table(self):
        return self._table

    def describe(self) -> dict[str, Any]:
        dims = self._table.embeddings.shape[1] if getattr(self, "_table", None) is not None else self.card.dims
        return {**super().describe(), "dims": int(dims)}
