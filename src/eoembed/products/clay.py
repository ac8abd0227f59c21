"""Clay embeddings: one vector per image chip, published as GeoParquet.

Layouts (``models.clay.source`` = a file or a directory of ``.gpq``/``.parquet`` files):

* **Clay v0 Sentinel-2** (768-d): ``<MGRS>_<start>_<end>_v001.gpq`` with ``embeddings`` (list of
  float), ``date`` and a polygon ``geometry`` (the chip footprint).
* **Clay v1.5 Sentinel-2** (1024-d): ``data_<uuid>_<n>_0_0.parquet`` with ``embedding``,
  ``datetime`` and polygon ``geometry``.
* **Clay v1.5 NAIP** (1024-d): ``m_<quad>_<quarter>_<zone>_<res>_<YYYYMMDD>.parquet`` with
  ``embeddings`` and polygon ``geometry`` but **no time column**: the date is the ``YYYYMMDD`` in
  the file name (the NAIP acquisition date).

Patch-typed: the chips that intersect the ROI and whose date is in the request window; pooled =
area-weighted mean (weights = intersection area with the ROI in its UTM zone). All chips of the
window are used (several dates average together). A file that cannot be read (no embedding,
geometry or date, or other dims than the first file) is skipped and listed in ``describe()``
(``skipped_files``); the rest of the folder loads.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.products.base import PatchProduct, ProductCard
from eoembed.products.patches import load_patch_table
from eoembed.products.raster import find_files

__all__ = ["ClayEmbeddings"]


class ClayEmbeddings(PatchProduct):
    """Clay v0 / v1.5 chip embeddings (dims follow the files: 768 for v0, 1024 for v1.5)."""

    card = ProductCard(
        id="clay",
        description="Clay foundation model chip embeddings (v0 Sentinel-2 768-d; "
                    "v1.5 Sentinel-2/NAIP 1024-d)",
        dims=768, outputs=("pooled", "patches"), native_gsd_m=10.0,
        layout=("<MGRS>_<start>_<end>_v001.gpq: v0 Sentinel-2 (embeddings, date, geometry)",
                "data_<uuid>_*.parquet: v1.5 Sentinel-2 (embedding, datetime, geometry)",
                "m_<quad>_<q>_<zone>_<res>_<YYYYMMDD>.parquet: v1.5 NAIP (embeddings, geometry; "
                "date in the name)"),
        temporal="dated", coverage=None,
        dequantisation="float32 as stored",
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
