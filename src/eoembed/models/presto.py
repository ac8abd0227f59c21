"""Presto (Tseng et al. 2023): a pixel time-series transformer, run on monthly composites.

Input packaging: the 10 Sentinel-2 bands Presto uses, normalised as published (x / 10000),
NDVI computed, S1/ERA5/SRTM masked (not fetched here), Dynamic World "missing", the start
month of the first frame, and each pixel's lat/lon. Pooled output = mean (or max) of the
per-pixel embeddings over the ROI's valid pixels (optionally a seeded random sample of N
pixels); grid output = per-pixel embeddings averaged over grid cells.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.collections import SENTINEL2_L2A
from eoembed.errors import ModelError
from eoembed.items import Composite
from eoembed.models.base import Embedder, ModelCard, WeightsFile, pool_cells
from eoembed.specs import OutputSpec

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
WEIGHTS = WeightsFile(
    name="default_model.pt",
    url="https://raw.githubusercontent.com/nasaharvest/presto/main/data/default_model.pt",
    sha256="559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65",
    licence="MIT", size_bytes=3321716)


def check_monthly(comp: Composite) -> np.ndarray:
    """Months (0 = January) of a composite whose frames are month-long bins.

    Presto was trained on consecutive monthly time steps (at most 24): frames of 27-32 days
    whose middle days fall in consecutive months are accepted (12 equal frames of a year
    qualify). Raises :class:`ModelError` otherwise, saying how to configure the sensor.
    """
    lengths = [(b - a).days for a, b in comp.frame_bounds]
    months = comp.mid_months()
    steps = np.diff(months) % 12
    if not all(27 <= n <= 32 for n in lengths) or len(lengths) > 24 or (steps != 1).any():
        raise ModelError(f"presto needs 1-24 monthly frames; got {len(lengths)} frame(s) of {lengths} days. "
                         "Set the sensor's frames to the number of months in the window (12 for a year).")
    return months


class PrestoEmbedder(Embedder):
    """Presto encoder on Sentinel-2 monthly composites (per-pixel, 128-d)."""

    card: ClassVar[ModelCard] = ModelCard(
        id="presto", family="presto", kind="on_the_fly",
        description="Presto pixel time-series transformer (Sentinel-2 part), pretrained on global data",
        collection="sentinel-2-l2a", bands=BANDS,
        wavelengths_nm=tuple(SENTINEL2_L2A.wavelengths_nm[b] for b in BANDS),
        native_gsd_m=10, input_size=None, temporal="frames", frames=12, dims=128,
        outputs=("pooled", "grid"), weights=(WEIGHTS,), licence="MIT",
        citation="Tseng, G., Cartuyvels, R., Zvonkov, I., Purohit, M., Rolnick, D., Kerner, H. (2023). "
                 "Lightweight, Pre-trained Transformers for Remote Sensing Timeseries. arXiv:2304.14065",
        url="https://github.com/nasaharvest/presto", mem_mb=3000, runtime_min=60)
    default_options: ClassVar[dict[str, Any]] = {"pixel_sample": None, "seed": 0, "pixel_batch": 4096}

    def _load(self) -> None:
        from eoembed.models.presto_net import encoder_from_state_dict
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(WEIGHTS.name)
        state = load_state_dict(path, sha)
        self.net = encoder_from_state_dict(state).to(self.device).eval()

    def _pixels(self, comp: Composite) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel embeddings ``[N, 128]`` of the ROI's valid pixels and their ``(y, x)`` mask."""
        from eoembed.models.presto_net import encode, pack_inputs

        months = check_monthly(comp)
        data = comp.band_data(self.card.bands).astype(np.float32)  # (T, C, H, W)
        data = np.where(comp.valid[:, None], data, np.nan)
        use = comp.roi_mask & comp.valid.any(axis=0)
        n_sample = self.options["pixel_sample"]
        if n_sample and use.sum() > n_sample:
            idx = np.flatnonzero(use)
            keep = np.random.default_rng(self.options["seed"]).choice(idx, size=int(n_sample), replace=False)
            use = np.zeros_like(use)
            use.flat[np.sort(keep)] = True
        if not use.any():
            raise ModelError("no valid pixel inside the ROI")
        s2 = data[:, :, use].transpose(2, 0, 1)  # (N, T, C)
        lon, lat = comp.grid.lonlat()
        latlons = np.stack([lat[use], lon[use]], axis=1)
        packed = pack_inputs(s2, list(self.card.bands), months, latlons)
        emb = encode(self.net, packed["x"], packed["dynamic_world"], packed["latlons"], packed["mask"],
                     packed["month"], batch_size=int(self.options["pixel_batch"]))
        return emb, use

    def embed_batch(self, composites: list[Composite], output: OutputSpec) -> list[np.ndarray]:
        return self.embed_outputs(composites, [output])[0]

    def embed_outputs(self, composites: list[Composite], outputs: list[OutputSpec]) -> list[list[np.ndarray]]:
        """Per-pixel embeddings are computed once per composite and reduced for every output."""
        result: list[list[np.ndarray]] = [[] for _ in outputs]
        for comp in composites:
            emb, use = self._pixels(comp)
            for k, output in enumerate(outputs):
                if output.mode == "pooled":
                    vec = emb.max(axis=0) if output.pooling == "max" else emb.mean(axis=0)
                    result[k].append(vec.astype(np.float32))
                else:
                    full = np.full((emb.shape[1], *use.shape), np.nan, np.float32)
                    full[:, use] = emb.T
                    result[k].append(pool_cells(full, use, self.cell_px(output, comp)))
        return result
