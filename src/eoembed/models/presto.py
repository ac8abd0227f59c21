"""Presto (Tseng et al. 2023): a pixel time-series transformer, run on monthly composites.

Declared input (the framework applies it): the 10 Sentinel-2 bands Presto uses, published
normalisation ``x / 10000`` on reflectance x 10000, NDVI derived from the scaled B8 and B4 (as
``S1_S2_ERA5_SRTM.normalize`` does), 1-24 calendar-month frames with month tokens, each pixel's
lat/lon, invalid pixel-months masked. S1/ERA5/SRTM are masked (not fetched), Dynamic World is
"missing". The model maps each pixel to a 128-d token; pooling and grid cells are the framework's
(pooled = mean of the pixel embeddings, as in the upstream downstream-task demo).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, Derived, InputSpec, TimePolicy

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
WEIGHTS = WeightsFile(
    name="default_model.pt",
    url="https://raw.githubusercontent.com/nasaharvest/presto/main/data/default_model.pt",
    sha256="559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65",
    licence="MIT", size_bytes=3321716)

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=BANDS,
    norm=tuple(BandNorm(0.0, 10000.0) for _ in BANDS),
    derived=(Derived("NDVI", ("B08", "B04"), stage="normalised"),),
    gsd_m=10.0, time=TimePolicy(1, 24, monthly=True, tokens="month"), missing="mask",
    metadata=("pixel_latlon", "time"),
    norm_source="presto/dataops/pipelines/s1_s2_era5_srtm.py: S2 (x + 0) / 1e4; NDVI after scaling")


class PrestoEmbedder(Embedder):
    """Presto encoder on Sentinel-2 monthly composites (per-pixel, 128-d)."""

    card: ClassVar[ModelCard] = ModelCard(
        id="presto", family="presto", kind="on_the_fly",
        description="Presto pixel time-series transformer (Sentinel-2 part), pretrained on global data",
        inputs=(S2_INPUT,), dims=128, outputs=("pooled", "grid"), weights=(WEIGHTS,), verified="oracle",
        licence="MIT",
        citation="Tseng, G., Cartuyvels, R., Zvonkov, I., Purohit, M., Rolnick, D., Kerner, H. (2023). "
                 "Lightweight, Pre-trained Transformers for Remote Sensing Timeseries. arXiv:2304.14065",
        url="https://github.com/nasaharvest/presto", mem_mb=3000, runtime_min=60,
        notes="Pre-trained on S2 L1C (COPERNICUS/S2); L2A input is a domain shift. S1, ERA5, SRTM and "
              "Dynamic World are masked.")
    default_options: ClassVar[dict[str, Any]] = {"pixel_sample": None, "seed": 0, "pixel_batch": 4096}

    def _load(self) -> None:
        from eoembed.models.presto_net import encoder_from_state_dict
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(WEIGHTS.name)
        state = load_state_dict(path, sha)
        self.net = encoder_from_state_dict(state).to(self.device).eval()

    def _sampled(self, keep: np.ndarray) -> np.ndarray:
        """``keep`` limited to a seeded random sample of ``pixel_sample`` pixels (option)."""
        n = self.options["pixel_sample"]
        if not n or keep.sum() <= n:
            return keep
        idx = np.flatnonzero(keep)
        pick = np.random.default_rng(self.options["seed"]).choice(idx, size=int(n), replace=False)
        out = np.zeros_like(keep)
        out.flat[np.sort(pick)] = True
        return out

    concurrent_forward: ClassVar[bool] = True  # forward keeps no state (tests/test_streams.py)

    def forward(self, batch):
        from eoembed.models.presto_net import encode, layout_inputs
        from eoembed.prep import TokenGrid

        x, missing = batch.x["s2"], batch.mask["s2"]  # (B, T, 11, H, W), (B, T, H, W)
        b, t, _, h, w = x.shape
        feats = np.full((b, self.card.dims, h, w), np.nan, np.float32)
        weight = np.zeros((b, h, w), np.float32)
        for i in range(b):
            keep = self._sampled(~missing[i].all(axis=0))  # a pixel with at least one month
            if not keep.any():
                continue
            px = x[i][:, :, keep].transpose(2, 0, 1)  # (N, T, 11)
            packed = layout_inputs(px[:, :, :10], px[:, :, 10], missing[i][:, keep].T,
                                   batch.months[i], batch.pixel_latlon[i][keep])
            emb = encode(self.net, packed["x"], packed["dynamic_world"], packed["latlons"], packed["mask"],
                         packed["month"], batch_size=int(self.options["pixel_batch"]))
            feats[i][:, keep] = emb.T
            weight[i][keep] = 1.0
        return TokenGrid(feats, weight)
