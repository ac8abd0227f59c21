"""Spectral baseline: reflectance statistics and standard spectral indices, no learned weights.

Every pixel contributes 17 values: the 12 Sentinel-2 L2A surface reflectances (DN x 1e-4) and
five normalised differences ``(a - b) / (a + b)`` of published indices:

=====  ===========  ==========================================================
NDVI   B08, B04     Rouse et al. 1974 (vegetation)
NDWI   B03, B08     McFeeters 1996 (open water; green vs NIR)
NBR    B08, B12     Key & Benson 2006 (burn severity; NIR vs SWIR-2)
NDBI   B11, B08     Zha, Gao & Ni 2003 (built-up; SWIR-1 vs NIR)
NDMI   B8A, B11     Gao 1996 (leaf water; narrow NIR vs SWIR-1). B8A rather than B08, so NDMI
                    is not the exact negative of NDBI and both inputs share the 20 m native GSD.
=====  ===========  ==========================================================

The embedding summarises them over the valid, inside-ROI pixels: for each band (canonical order)
``mean, std, p10, p50, p90`` (population std; linear-interpolation percentiles), then for each
index ``mean, std`` - 12 x 5 + 5 x 2 = 70 features, named by :func:`feature_names`. Index values
with a zero denominator are left out of that index's statistics.

Outputs:
    * pooled, ``pooling="mean"``: the statistics over all valid pixels of the ROI.
    * pooled, ``pooling="max"``: the per-feature maximum of the statistics of the native
      8 x 8-pixel cells (the most extreme local statistic; cells without valid pixels skipped).
    * grid: the statistics per cell (``cell_m`` or the native 8 pixels); NaN where a cell has
      no valid pixel.
Returns NaN features when no pixel is valid.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from eoembed.collections import S2_BANDS, STACK_SCALE
from eoembed.composite import nan_quantiles
from eoembed.models.base import Embedder, ModelCard, grid_cells
from eoembed.models.inputs import BandNorm, Derived, InputSpec, TimePolicy

__all__ = ["BAND_STATS", "INDEX_STATS", "INDICES", "SpectralEmbedder", "feature_names"]

#: Statistics per band, in feature order.
BAND_STATS: tuple[str, ...] = ("mean", "std", "p10", "p50", "p90")
_QUANTILES = (0.10, 0.50, 0.90)
#: Statistics per index, in feature order.
INDEX_STATS: tuple[str, ...] = ("mean", "std")
#: Normalised-difference indices ``(a - b) / (a + b)`` as ``name: (a, b)``, in feature order.
INDICES: dict[str, tuple[str, str]] = {
    "NDVI": ("B08", "B04"),
    "NDWI": ("B03", "B08"),
    "NBR": ("B08", "B12"),
    "NDBI": ("B11", "B08"),
    "NDMI": ("B8A", "B11"),
}
NATIVE_CELL_PX = 8


def feature_names() -> list[str]:
    """Names of the 70 features in embedding order (``"B04_p50"``, ``"NDVI_mean"``, ...)."""
    return ([f"{b}_{s}" for b in S2_BANDS for s in BAND_STATS]
            + [f"{i}_{s}" for i in INDICES for s in INDEX_STATS])


_CITATION = (
    "Published-standard baseline (no learned weights): per-band Sentinel-2 L2A reflectance "
    "statistics plus spectral indices. NDVI: Rouse, J. W., Haas, R. H., Schell, J. A. & Deering, "
    "D. W. (1974) Monitoring vegetation systems in the Great Plains with ERTS, Third ERTS "
    "Symposium, NASA SP-351, 309-317. NDWI: McFeeters, S. K. (1996) The use of the Normalized "
    "Difference Water Index (NDWI) in the delineation of open water features, Int. J. Remote "
    "Sens. 17(7), 1425-1432. NBR: Key, C. H. & Benson, N. C. (2006) Landscape Assessment (LA): "
    "sampling and analysis methods, USDA Forest Service Gen. Tech. Rep. RMRS-GTR-164-CD. NDBI: "
    "Zha, Y., Gao, J. & Ni, S. (2003) Use of normalized difference built-up index in "
    "automatically mapping urban areas from TM imagery, Int. J. Remote Sens. 24(3), 583-594. "
    "NDMI: Gao, B.-C. (1996) NDWI - A normalized difference water index for remote sensing of "
    "vegetation liquid water from space, Remote Sens. Environ. 58(3), 257-266."
)


def _stats(values: np.ndarray) -> np.ndarray:
    """Features from ``(n, 17, ...)`` per-pixel values (NaN = excluded): ``(70, ...)`` float64."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    safe = np.where(count > 0, count, 1)
    x = np.where(finite, values, 0.0).astype(np.float64, copy=False)
    mean = np.where(count > 0, x.sum(axis=0) / safe, np.nan)
    dev = np.where(finite, x - mean, 0.0)
    std = np.where(count > 0, np.sqrt((dev * dev).sum(axis=0) / safe), np.nan)
    nb = len(S2_BANDS)
    band_vals = np.sort(values[:, :nb], axis=0)  # NaN sort last
    q = nan_quantiles(band_vals, count[:nb], list(_QUANTILES))  # (3, nb, ...)
    bands = np.stack([mean[:nb], std[:nb], *q], axis=1)  # (nb, 5, ...)
    idx = np.stack([mean[nb:], std[nb:]], axis=1)  # (n_idx, 2, ...)
    rest = values.shape[2:]
    return np.concatenate([bands.reshape(-1, *rest), idx.reshape(-1, *rest)], axis=0)


S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=S2_BANDS,
    norm=tuple(BandNorm(0.0, 1.0 / STACK_SCALE) for _ in S2_BANDS),  # stack units -> reflectance
    derived=tuple(Derived(name, pair, stage="normalised", zero_den=float("nan"), den="nonzero")
                  for name, pair in INDICES.items()),
    gsd_m=10.0, time=TimePolicy(1, 1), missing="mask",
    norm_source="surface reflectance = L2A DN x 1e-4 (ESA L2A product definition)")


class SpectralEmbedder(Embedder):
    """Weight-free spectral statistics baseline (see the module docstring for the features).

    The framework hands it reflectances and the five indices per pixel; its tokens are pixels and
    :meth:`reduce_cells` computes the statistics of each region the framework asks for (the whole ROI
    for pooled output, the cells of a grid).
    """

    card: ClassVar[ModelCard] = ModelCard(
        id="spectral", family="baselines", kind="on_the_fly",
        description="Per-band reflectance statistics and NDVI/NDWI/NBR/NDBI/NDMI statistics over "
                    "valid pixels: a published-standard, weight-free baseline.",
        inputs=(S2_INPUT,), dims=len(feature_names()), outputs=("pooled", "grid"), verified="definition",
        grid_cell_tokens=NATIVE_CELL_PX, pool_cell_tokens=NATIVE_CELL_PX,
        licence="Apache-2.0", citation=_CITATION, mem_mb=2000, runtime_min=10)
    default_options: ClassVar[dict] = {}
    feature_names = staticmethod(feature_names)
    forward_batch: ClassVar[int] = 64

    def forward(self, batch):
        """Per-pixel tokens: the 17 values (reflectances + indices), NaN and weight 0 where missing."""
        from eoembed.prep import TokenGrid

        x, missing = batch.x["s2"][:, 0], batch.mask["s2"][:, 0]  # (B, 17, H, W), (B, H, W)
        feats = x.astype(np.float64)  # then NaN where missing: np.where's values, one pass fewer
        feats[np.broadcast_to(missing[:, None], feats.shape)] = np.nan
        return TokenGrid(feats, (~missing).astype(np.float32))

    def reduce_cells(self, features: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
        """``(70, rows, cols)`` statistics of the valid pixels of each cell of ``k`` pixels."""
        feats = np.where(weight[None] > 0, features.astype(np.float64, copy=False), np.nan)
        c, h, w = feats.shape
        rows, cols = grid_cells(h, w, k)
        padded = np.pad(feats, ((0, 0), (0, rows * k - h), (0, cols * k - w)), constant_values=np.nan)
        cells = padded.reshape(c, rows, k, cols, k).transpose(2, 4, 0, 1, 3)
        return _stats(cells.reshape(k * k, c, rows, cols)).astype(np.float32)
