"""Major TOM embedding expansions (e.g. Core-S2L2A-SSL4EO 2048-d, SigLIP, DINOv2) and EarthEmbeddings.

Layouts (``models.major_tom.source`` = a parquet file or a directory of them):

* **Major TOM embeddings** ``embeddings/part_<i>-<n>.parquet``: columns ``embedding``,
  ``centre_lon``, ``centre_lat``, ``timestamp`` (and more). The **geometry variant** also has
  ``geometry`` (WKB polygon of the embedded fragment, or GeoParquet): then that footprint is used;
  otherwise the footprint is a square of option ``patch_m`` metres (default 2240 m: a 224 px
  fragment at 10 m) around the centre, in its UTM zone.
* **EarthEmbeddings** (ML4Sustain, embeddings of uniformly sampled Major TOM Core-S2L2A crops,
  e.g. ``dinov2/DINOv2_grid_sample_center_384x384_244k.parquet``): the same columns without
  geometry; set option ``patch_m: 3840`` (the 384 px centre crop at 10 m).

Patches are filtered by ``timestamp`` in the request window; pooled = area-weighted mean.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eoembed.products.base import PatchProduct, ProductCard
from eoembed.products.patches import load_patch_table
from eoembed.products.raster import find_files

__all__ = ["MajorTom"]


class MajorTom(PatchProduct):
    """Major TOM embeddings: one vector per image fragment, with its centre and timestamp."""

    card = ProductCard(
        id="major_tom",
        description="Major TOM embedding datasets (e.g. SSL4EO-S12 2048-d) per Sentinel fragment; "
                    "EarthEmbeddings",
        dims=2048, outputs=("pooled", "patches"), native_gsd_m=2240.0,
        layout=("embeddings/part_<i>-<n>.parquet: embedding, centre_lon, centre_lat, timestamp [, geometry]",
                "EarthEmbeddings <model>/<name>.parquet: the same columns (option patch_m: 3840)"),
        temporal="dated", coverage=None,
        dequantisation="float32 as stored",
        licence="CC-BY-SA-4.0",
        citation="Czerkawski et al. (2024), Global and Dense Embeddings of Earth: Major TOM Floating in "
                 "the Latent Space, arXiv:2412.05600",
        url="https://huggingface.co/Major-TOM", mem_mb=8000, runtime_min=30)
    default_options: ClassVar[dict[str, Any]] = {"patch_m": 2240.0}
    source_help = "a Major TOM embeddings parquet file or a directory of them"

    def _open(self) -> None:
        files = find_files(self.source, ("*.parquet", "*.gpq"))
        self._table = load_patch_table(files, embedding_cols=("embedding",), time_cols=("timestamp",),
                                       point_size_m=float(self.options["patch_m"]),
                                       centre_cols=("centre_lon", "centre_lat"))

    def patch_table(self):
        return self._table
