"""Clay v1.5 on the fly (Clay Foundation 2024): a wavelength-, GSD-, time- and location-aware MAE ViT,
via TerraTorch 1.2.1.

Architecture: ``terratorch.models.backbones.clay_v15.model.Encoder`` (Clay's own encoder as TerraTorch
vendors it): a DOFA-style dynamic patch embedding whose 8 x 8 kernels a small transformer generates
from each band's wavelength (micrometres), a 2-D sin-cos position table scaled by the GSD on the first
``dim - 8`` features plus ``[week sin, week cos, hour sin, hour cos, lat sin, lat cos, lon sin, lon cos]``
on the last 8, a CLS token, 24 pre-norm blocks and a final norm (ViT-L: 1024-d, 16 heads). Run with
mask ratio 0 and no shuffle (Clay's ``EmbeddingEncoder``): every patch, in order.

Weights: ``made-with-clay/Clay`` ``v1.5/clay-v1.5.ckpt``, a Lightning checkpoint whose ``state_dict``
holds the whole ClayMAE (``model.encoder.*``, ``model.decoder.*``, the distillation teacher, ...).
eoembed keeps ``model.encoder.*`` with the prefix stripped, as Clay's ``finetune/embedder/factory.py``
does, after checking every encoder tensor is there with its shape.

Declared input (Clay's ``configs/metadata.yaml``, ``sentinel-2-l2a``): the 10 bands blue, green, red,
rededge1-3, nir, nir08, swir16, swir22 = B02, B03, B04, B05, B06, B07, B08, B8A, B11, B12 as raw DN
(reflectance x 10000) standardised with the per-band mean / std given there, their wavelengths from
the same file, one frame, 256 px by resize (Clay's chip size). Metadata: the batch's GSD (after
resize, as Clay's own tutorials scale it), the piece centre's lat / lon and the ISO week of the frame's
middle day (hour 0: composites have no acquisition time). Tokens: final-normed patch tokens (32 x 32);
pooled = their mean (Clay's own embedding is the CLS token, which eoembed does not export).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError, WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, InputSpec, SpacePolicy, TimePolicy

#: Clay metadata.yaml, sentinel-2-l2a: band name -> (S2 band, mean, std, wavelength in micrometres)
S2_METADATA = {
    "blue": ("B02", 1105.0, 1809.0, 0.493), "green": ("B03", 1355.0, 1757.0, 0.56),
    "red": ("B04", 1552.0, 1888.0, 0.665), "rededge1": ("B05", 1887.0, 1870.0, 0.704),
    "rededge2": ("B06", 2422.0, 1732.0, 0.74), "rededge3": ("B07", 2630.0, 1697.0, 0.783),
    "nir": ("B08", 2743.0, 1742.0, 0.842), "nir08": ("B8A", 2785.0, 1648.0, 0.865),
    "swir16": ("B11", 2388.0, 1470.0, 1.61), "swir22": ("B12", 1835.0, 1379.0, 2.19)}
BANDS = tuple(v[0] for v in S2_METADATA.values())
WAVES_UM = tuple(v[3] for v in S2_METADATA.values())
#: Clay v1.5 = clay_mae_large (TerraTorch / Clay): the encoder's architecture
ARCH = {"dim": 1024, "depth": 24, "heads": 16, "dim_head": 64, "mlp_ratio": 4.0, "patch_size": 8}
SIZE = 256
PREFIX = "model.encoder."
LAYOUT = (f"Lightning checkpoint of the whole ClayMAE: state_dict with {PREFIX}* "
          "(+ model.decoder.*, teacher, ...)")
WEIGHTS = WeightsFile(name="clay-v1.5.ckpt",
                      url="https://huggingface.co/made-with-clay/Clay/resolve/main/v1.5/clay-v1.5.ckpt",
                      sha256="", licence="Apache-2.0", size_bytes=None)

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=BANDS,
    norm=tuple(BandNorm(v[1], v[2]) for v in S2_METADATA.values()), gsd_m=10.0, gsd_tolerance=10.0,
    time=TimePolicy(1, 1),
    space=SpacePolicy("fixed", size=SIZE, token_px=ARCH["patch_size"], default_prep="resize"),
    missing="fill_zero", metadata=("gsd", "latlon", "time"),
    norm_source="Clay configs/metadata.yaml (Clay-foundation/model), sentinel-2-l2a bands.mean / bands.std: "
                "(DN - mean) / std of S2 L2A reflectance x 10000 (Clay's v2.Normalize); NoData -> 0")

CARD = ModelCard(
    id="clay_v15", family="terratorch", kind="on_the_fly", variant="v1.5",
    description="Clay v1.5 ViT-L/8 encoder on the fly: wavelength-conditioned patches, GSD-scaled positions, "
                "week and lat/lon encodings; via TerraTorch's vendored Clay code",
    inputs=(S2_INPUT,), dims=ARCH["dim"], outputs=("pooled", "grid"), weights=(WEIGHTS,), verified="library",
    licence="Apache-2.0",
    citation="Clay Foundation (2024). Clay Foundation Model v1.5: an open source AI model for Earth. "
             "https://github.com/Clay-foundation/model (doi:10.57967/hf/1537)",
    url="https://huggingface.co/made-with-clay/Clay", mem_mb=12000, runtime_min=90,
    notes="Sentinel-2 L2A only (Clay's metadata for the 10 bands; Landsat, NAIP, LINZ, S1 and MODIS "
          "inputs are not offered). Wavelengths are Clay's metadata values (B08 0.842 um), not the "
          "collection's. GSD: the pixel size after resize (a 2.56 km ROI at 256 px = 10 m). Time: ISO "
          "week of the frame's middle day, hour 0 (composites carry no acquisition time; Clay's chips had "
          "the scene's UTC hour). "
          "Clay's embedding is the CLS token; eoembed's pooled output is the mean of the patch tokens. The "
          "checkpoint is 5.2 GB (encoder, decoder, teacher and optimizer state); no sha256 published: pin it "
          "in models.clay_v15.weights_sha256. `clay` (without suffix) is the precomputed Clay product.")


def clay_time(year: int, doy0: int, hour: int = 0) -> list[float]:
    """Clay's time encoding of a date: ``[sin, cos]`` of ISO week x 2 pi / 52, then of hour x 2 pi / 24."""
    date = dt.date(int(year), 1, 1) + dt.timedelta(days=int(doy0))
    week = date.isocalendar()[1] * 2 * np.pi / 52
    h = hour * 2 * np.pi / 24
    return [float(np.sin(week)), float(np.cos(week)), float(np.sin(h)), float(np.cos(h))]


def clay_latlon(lat: float, lon: float) -> list[float]:
    """Clay's location encoding: ``[sin lat, cos lat, sin lon, cos lon]`` (radians)."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return [float(np.sin(la)), float(np.cos(la)), float(np.sin(lo)), float(np.cos(lo))]


def encoder_class():
    """TerraTorch's vendored Clay v1.5 ``Encoder`` (the import sets torch's float32 matmul precision to
    "medium" globally: restored here)."""
    import torch

    precision = torch.get_float32_matmul_precision()
    try:
        from terratorch.models.backbones.clay_v15.model import Encoder
    finally:
        torch.set_float32_matmul_precision(precision)
    return Encoder


class ClayV15(Embedder):
    """Clay v1.5 encoder (TerraTorch's vendored Clay code) on Sentinel-2 L2A."""

    card: ClassVar[ModelCard] = CARD
    default_options: ClassVar[dict[str, Any]] = {"batch_size": 4}

    def build(self):
        """The encoder, mask ratio 0 and no shuffle (untrained)."""
        a = ARCH
        return encoder_class()(mask_ratio=0.0, patch_size=a["patch_size"], shuffle=False, dim=a["dim"],
                               depth=a["depth"], heads=a["heads"], dim_head=a["dim_head"],
                               mlp_ratio=a["mlp_ratio"])

    def encoder_state(self, state: dict[str, Any], net: Any, where: str) -> dict[str, Any]:
        """``model.encoder.*`` of the checkpoint's state dict, prefix stripped, checked against ``net``."""
        want = net.state_dict()
        enc = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
        missing = sorted(PREFIX + k for k in want if k not in enc)
        unexpected = sorted(PREFIX + k for k in enc if k not in want)
        wrong = [f"{PREFIX}{k}: {tuple(enc[k].shape)} != {tuple(v.shape)}" for k, v in want.items()
                 if k in enc and tuple(enc[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            others = sorted({k.split(".")[0] for k in state if not k.startswith(PREFIX)})
            raise WeightsError(
                f"weights file {where}: not the published key layout ({LAYOUT}); {len(missing)} missing e.g. "
                f"{missing[:3]}, {len(unexpected)} unexpected e.g. {unexpected[:3]}, {len(wrong)} of another "
                f"shape e.g. {wrong[:2]}; top-level names outside {PREFIX!r}: {others[:5]}")
        return enc

    def _load(self) -> None:
        from eoembed.models.zoo import load_checkpoint

        path, sha = self.weights_file(WEIGHTS.name)
        state = load_checkpoint(path, sha, member="state_dict")
        net = self.build()
        net.load_state_dict(self.encoder_state(state, net, f"{path} ({self.card.id})"), strict=True)
        self.net = net.to(self.device).eval()

    def network_input(self, batch) -> np.ndarray:
        """``(B, 10, 256, 256)``: the one frame's bands in Clay's metadata order."""
        return batch.x["s2"][:, 0]

    def datacube(self, batch) -> dict[str, Any]:
        """Clay's encoder input: pixels, time, latlon (``(B, 4)`` each), gsd and waves (micrometres)."""
        import torch

        if batch.years is None:
            raise ModelError(f"model {self.card.id}: ReadyBatch.years is None; Clay's ISO-week encoding "
                             "needs each frame's calendar year (allowed: a batch built by "
                             "eoembed.prep.batches)")
        time = [clay_time(y, d) for y, d in zip(batch.years[:, 0], batch.doy[:, 0])]
        latlon = [clay_latlon(lat, lon) for lat, lon in batch.latlon]
        return {"pixels": torch.from_numpy(np.ascontiguousarray(self.network_input(batch))),
                "time": torch.tensor(time, dtype=torch.float32),
                "latlon": torch.tensor(latlon, dtype=torch.float32),
                "gsd": torch.tensor(float(batch.gsd_m)), "waves": torch.tensor(WAVES_UM, dtype=torch.float32)}

    def forward(self, batch):
        import torch

        from eoembed.prep import TokenGrid

        cube = {k: v.to(self.device) for k, v in self.datacube(batch).items()}
        b, _, h, w = cube["pixels"].shape
        p = ARCH["patch_size"]
        with torch.inference_mode():
            out = self.net(cube)[0][:, 1:]  # (B, L, D): no CLS, patches in order (mask ratio 0, no shuffle)
        f = out.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2).float().cpu().numpy()
        return TokenGrid(f, np.ones((b, h // p, w // p), np.float32))
