"""Earth Index embeddings (SoftCon ViT, 384-d, 320 m patches), GeoParquet with point geometry.

Layout (``models.earth_index.source`` = a GeoParquet file or a directory of them, published as
``<year>/<MGRS>_<start>_<stop>.parquet``): columns ``id``, ``embedding`` and a point ``geometry``
(patch centre). Location-typed: each point stands for a square patch of option ``patch_m`` metres
(default 320 m) in its UTM zone; patches intersecting the ROI are pooled by area-weighted mean.

Time: one static layer from the 2024 Earth Index v2 Sentinel-2 mosaics, ``coverage = [2024-01-01,
2025-01-01)`` (the dates in the published file names); a request window outside it fails unless
option ``outside_coverage: nearest`` (recorded in the item).
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.products.base import PatchProduct, ProductCard
from eoembed.products.patches import load_patch_table
from eoembed.products.raster import find_files

__all__ = ["EarthIndex"]


class EarthIndex(PatchProduct):
    """Earth Index (Earth Genome) SoftCon embeddings of Sentinel-2 patches."""

    card = ProductCard(
        id="earth_index",
        description="Earth Index SoftCon 384-d embeddings of 320 m Sentinel-2 patches "
                    "(point locations), 2024",
        dims=384, outputs=("pooled", "patches"), native_gsd_m=320.0,
        layout=("<year>/<MGRS>_<start>_<stop>.parquet: GeoParquet, id, embedding, point geometry",),
        temporal="static", coverage=("2024-01-01", "2025-01-01"),
        dequantisation="float32 as stored",
        licence="CC-BY-4.0",
        citation="Earth Genome (2025), Earth Index embeddings; SoftCon: Wang et al. (2024), Multi-label "
                 "guided soft contrastive learning for efficient Earth observation pretraining, arXiv:2405.20462",
        url="https://source.coop/earthgenome/earthindexembeddings", mem_mb=4000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {**PatchProduct.default_options, "patch_m": 320.0}
    source_help = "an Earth Index GeoParquet file or a directory of them"

    def _open(self) -> None:
        files = find_files(self.source, ("*.parquet", "*.gpq"))
        self._table = load_patch_table(files, embedding_cols=("embedding",),
                                       point_size_m=float(self.options["patch_m"]))

    def patch_table(self):
        return self._table
