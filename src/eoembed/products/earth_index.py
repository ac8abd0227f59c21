"""Earth Index embeddings (SoftCon ViT, 384-d, 320 m patches), GeoParquet with point geometry.

Layout (``models.earth_index.source`` = a GeoParquet file or a directory of them): columns
``embedding`` and a point ``geometry`` (patch centre). Location-typed: each point stands for a
square patch of option ``patch_m`` metres (default 320 m) in its UTM zone; patches intersecting
the ROI are pooled by area-weighted mean. The product has no time: every request reads the same
embeddings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.models.base import ModelCard
from eoembed.products.base import PRODUCT_FAMILY, PatchProduct
from eoembed.products.patches import load_patch_table
from eoembed.products.raster import find_files

__all__ = ["EarthIndex"]


class EarthIndex(PatchProduct):
    """Earth Index (Earth Genome) SoftCon embeddings of Sentinel-2 patches."""

    card = ModelCard(
        id="earth_index", family=PRODUCT_FAMILY, kind="precomputed",
        description="Earth Index SoftCon 384-d embeddings of 320 m Sentinel-2 patches (point locations)",
        collection="", bands=(), wavelengths_nm=(), native_gsd_m=320.0, input_size=None,
        temporal="static", frames=1, dims=384, outputs=("pooled", "patches"),
        licence="CC-BY-4.0",
        citation="Earth Genome (2025), Earth Index embeddings; SoftCon: Wang et al. (2024), Multi-label "
                 "guided soft contrastive learning for efficient Earth observation pretraining, arXiv:2405.20462",
        url="https://source.coop/earthgenome/earthindexembeddings", mem_mb=4000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {"patch_m": 320.0}
    source_help = "an Earth Index GeoParquet file or a directory of them"

    def _open(self) -> None:
        files = find_files(self.source, ("*.parquet", "*.gpq"))
        self._table = load_patch_table(files, embedding_cols=("embedding",),
                                       point_size_m=float(self.options["patch_m"]))

    def patch_table(self):
        return self._table
