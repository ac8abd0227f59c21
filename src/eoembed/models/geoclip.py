"""GeoCLIP location encoder (Vivanco Cepeda et al. 2023): (lat, lon) -> 512-d embedding.

A location encoder is a model kind of its own: nothing is fetched; the framework hands it the ROI
centre as ``[lat, lon]`` degrees (:meth:`Embedder.embed_requests`). The network follows the
published ``LocationEncoder``: Equal Earth projection of the point, scaled by ``SF / 180``; three
random-Fourier-feature capsules (sigma 2^0, 2^4, 2^8; the Fourier matrices ``b`` are part of the
checkpoint) each ``[cos, sin](2 pi v b^T) -> 3 x (Linear, ReLU) -> Linear(1024, 512)``; output =
the sum of the three, not normalised (GeoCLIP L2-normalises it before comparing with images).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile

WEIGHTS = WeightsFile(
    name="location_encoder_weights.pth",
    url="https://raw.githubusercontent.com/VicenteVivan/geo-clip/main/geoclip/model/weights/"
        "location_encoder_weights.pth",
    sha256="94b80ae3af89fca78539e129dd2929d321247f5ceeeb0a31bc2c31041a253394", licence="MIT",
    size_bytes=37806041)
#: Equal Earth projection constants (Savric et al. 2018) and GeoCLIP's scale factor.
A1, A2, A3, A4, SF = 1.340264, -0.081106, 0.000893, 0.003796, 66.50336


def _net(n_capsules: int = 3):
    import torch
    from torch import nn

    class Capsule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rff = nn.Module()
            rff.register_buffer("b", torch.zeros(256, 2))
            self.capsule = nn.Sequential(rff, nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                                         nn.Linear(1024, 1024), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(1024, 512))

        def forward(self, v):
            vp = 2 * math.pi * v @ self.capsule[0].b.T
            return self.head(self.capsule[1:](torch.cat([torch.cos(vp), torch.sin(vp)], dim=-1)))

    class LocationEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for i in range(n_capsules):
                self.add_module(f"LocEnc{i}", Capsule())

        def forward(self, latlon):
            v = equal_earth(latlon)
            return sum(getattr(self, f"LocEnc{i}")(v) for i in range(n_capsules))

    return LocationEncoder()


def equal_earth(latlon):
    """``[N, 2]`` (lat, lon) degrees -> Equal Earth ``[x, y] * SF / 180`` (float32 torch)."""
    import torch

    lat, lon = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
    root3 = torch.sqrt(torch.tensor(3.0))
    theta = torch.asin(root3 / 2 * torch.sin(lat))
    den = 3 * (9 * A4 * theta ** 8 + 7 * A3 * theta ** 6 + 3 * A2 * theta ** 2 + A1)
    x = 2 * root3 * lon * torch.cos(theta) / den
    y = A4 * theta ** 9 + A3 * theta ** 7 + A2 * theta ** 3 + A1 * theta
    return torch.stack((x, y), dim=1) * SF / 180


class GeoCLIP(Embedder):
    """GeoCLIP's pretrained location encoder (embeds the ROI centre)."""

    card: ClassVar[ModelCard] = ModelCard(
        id="geoclip", family="geoclip", kind="location",
        description="GeoCLIP location encoder: the ROI centre (lat, lon) as a 512-d embedding (no imagery)",
        inputs=(), dims=512, outputs=("pooled",), weights=(WEIGHTS,), verified="oracle", licence="MIT",
        citation="Vivanco Cepeda, V., Nayak, G. K., Shah, M. (2023). GeoCLIP: Clip-Inspired Alignment between "
                 "Locations and Images for Effective Worldwide Geo-localization. NeurIPS 2023.",
        url="https://github.com/VicenteVivan/geo-clip", mem_mb=2000, runtime_min=10,
        notes="Weights also ship inside the geoclip 1.3.0 wheel (same bytes). Output is not L2-normalised.")
    default_options: ClassVar[dict[str, Any]] = {}

    def _load(self) -> None:
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file(WEIGHTS.name)
        net = _net()
        state = load_state_dict(path, sha)
        expected = net.state_dict()
        bad = sorted(set(expected) ^ set(state)) + sorted(
            k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
        if bad:
            raise WeightsError(f"{path} is not GeoCLIP's location encoder: mismatched keys/shapes {bad[:8]}")
        net.load_state_dict(state, strict=True)
        self.net = net.to(self.device).eval()

    def forward_locations(self, latlon: np.ndarray) -> np.ndarray:
        import torch

        self.load()
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(latlon, dtype=np.float32), device=self.device)
            return self.net(x).float().cpu().numpy()
