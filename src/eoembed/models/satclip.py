"""SatCLIP location encoders (Klemmer et al. 2025): (lon, lat) -> 256-d embedding.

A location encoder (``kind="location"``, like GeoCLIP): nothing is fetched, the framework hands
:meth:`SatCLIP.forward_locations` the ROI centre as ``[lat, lon]`` degrees and this module swaps it to
SatCLIP's ``[lon, lat]`` order. The published location encoder (github.com/microsoft/satclip,
``location_encoder.py`` and ``positional_encoding/spherical_harmonics.py``) is

1. real spherical harmonics ``Y_l^m`` for ``l < L`` (``L`` = 10 or 40 Legendre polynomials; ``L**2``
   features ordered ``l = 0..L-1``, ``m = -l..l``) at ``phi = radians(lon + 180)``,
   ``theta = radians(lat + 90)`` (note: not the colatitude; ``cos theta = -sin lat``). Real form
   without the Condon-Shortley phase: ``sqrt(2) N P_l^|m|(cos theta) cos(m phi)`` for m > 0,
   ``... sin(|m| phi)`` for m < 0, ``N P_l^0`` for m = 0, ``N`` the orthonormal factor;
2. a SIREN: ``num_hidden_layers`` (2) layers ``sin(w0 (W x + b))`` of width ``capacity`` (256), w0 = 30
   for the first and 1 after, then a linear ``last_layer`` to ``embed_dim`` (256); run in float64
   as the original (``.double()``).

The published encoding evaluates sympy-generated expressions (``spherical_harmonics_ylm.py``, dated
2023-07-26) whose m = 0 terms carry ``sqrt((2l+1)/4*pi)`` instead of ``sqrt((2l+1)/(4*pi))``: every
m = 0 feature is ``pi`` times the orthonormal one (``Yl0_m0 = 0.886226925452758``). The checkpoints were
trained on that encoding, so :data:`M0_SCALE` reproduces it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError, WeightsError
from eoembed.models.base import Embedder, ModelCard, WeightsFile

__all__ = ["M0_SCALE", "PREFIX", "SatCLIP", "spherical_harmonics"]

#: Factor of the m = 0 features in the published (sympy-generated) encoding, see the module doc.
M0_SCALE = math.pi
#: Where the location network's parameters live in the published Lightning checkpoints' ``state_dict``
#: (``SatCLIPLightningModule.model.location.nnet``; ``model.nnet.*`` holds the same tensors again).
PREFIX = "model.location.nnet."
#: SIREN frequency of the first layer / of the others (``SirenNet(w0_initial=30, w0=1)`` defaults).
W0_FIRST, W0 = 30.0, 1.0

_HF = "https://huggingface.co/microsoft/SatCLIP-ResNet50-{L}/resolve/main/satclip-resnet50-{l}.ckpt"
_CITATION = ("Klemmer, K., Rolf, E., Robinson, C., Mackey, L., Russwurm, M. (2025). SatCLIP: Global, "
             "General-Purpose Location Embeddings with Satellite Imagery. AAAI 39(4), 4347-4355.")
_NOTES = ("Location encoder of the SatCLIP-ResNet50-{L} checkpoint (Lightning .ckpt, state_dict keys "
          "'model.location.nnet.*'; the ViT16/ResNet18 checkpoints share the layout and load too via "
          "models.<id>.weights). No published sha256: pin it. Uncertain: (1) the m = 0 harmonics are "
          "scaled by pi as in the repository's sympy generator and its generated file of 2023-07-26 "
          "(Yl0_m0 = 0.886...); a later regeneration (2024-10-25) has the orthonormal 0.282...: if the "
          "released checkpoints used that one, M0_SCALE must be 1 (they predate it, so pi is kept); "
          "(2) the published code evaluates expanded Legendre polynomials in float64, eoembed a stable "
          "recurrence: negligible for L=10, but for L=40 an equivalent float64 monomial evaluation loses "
          "up to ~1e-4 (|lat| 30-60 deg) and ~1e-2 (|lat| > 60 deg) on degrees >= 30, which the "
          "published features carry and eoembed's do not; (3) no output of the "
          "original code with the released weights was available offline. The spherical harmonics are "
          "tested against scipy.special.sph_harm_y; the SIREN against an explicit re-computation. "
          "Output not L2-normalised. MIT; the model card says research use, not production.")


def _card(variant: str, legendre: int) -> ModelCard:
    tag = f"L{legendre}"
    wf = WeightsFile(name=f"satclip-resnet50-l{legendre}.ckpt",
                     url=_HF.format(L=tag, l=tag.lower()), sha256="", licence="MIT")
    return ModelCard(
        id=f"satclip_{variant}", family="satclip", kind="location", variant=variant,
        description=f"SatCLIP location encoder ({tag} spherical harmonics + SIREN): the ROI centre as a "
                    "256-d embedding (no imagery)",
        inputs=(), dims=256, outputs=("pooled",), weights=(wf,), verified="unverified", licence="MIT",
        citation=_CITATION, url="https://github.com/microsoft/satclip", mem_mb=2000, runtime_min=10,
        notes=_NOTES.format(L=tag))


def spherical_harmonics(lonlat: Any, legendre: int, m0_scale: float = M0_SCALE) -> Any:
    """SatCLIP's positional encoding: ``(N, 2)`` ``[lon, lat]`` degrees (torch float64) -> ``(N, L**2)``.

    Real spherical harmonics at ``phi = radians(lon + 180)``, ``theta = radians(lat + 90)``, computed
    with the normalised associated-Legendre recurrence (no Condon-Shortley phase); the m = 0 terms
    are multiplied by ``m0_scale`` (the published encoding's ``pi``, see the module doc).
    """
    import torch

    lon, lat = lonlat[:, 0], lonlat[:, 1]
    phi, theta = torch.deg2rad(lon + 180), torch.deg2rad(lat + 90)
    x, s = torch.cos(theta), torch.sin(theta)  # theta in [0, pi]: s >= 0
    # pbar[(l, m)] = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m(x), m >= 0, without the (-1)^m phase
    pbar: dict[tuple[int, int], Any] = {(0, 0): torch.full_like(x, 1 / math.sqrt(4 * math.pi))}
    for m in range(legendre):
        if m > 0:
            pbar[m, m] = math.sqrt((2 * m + 1) / (2 * m)) * s * pbar[m - 1, m - 1]
        if m + 1 < legendre:
            pbar[m + 1, m] = math.sqrt(2 * m + 3) * x * pbar[m, m]
        for ll in range(m + 2, legendre):
            a = math.sqrt((4 * ll * ll - 1) / (ll * ll - m * m))
            b = math.sqrt(((ll - 1) ** 2 - m * m) / (4 * (ll - 1) ** 2 - 1))
            pbar[ll, m] = a * (x * pbar[ll - 1, m] - b * pbar[ll - 2, m])
    out = []
    for ll in range(legendre):
        for m in range(-ll, ll + 1):
            if m == 0:
                out.append(m0_scale * pbar[ll, 0])
            elif m > 0:
                out.append(math.sqrt(2) * pbar[ll, m] * torch.cos(m * phi))
            else:
                out.append(math.sqrt(2) * pbar[ll, -m] * torch.sin(-m * phi))
    return torch.stack(out, dim=-1)


def _net(dim_in: int, hidden: int, n_layers: int, dim_out: int):
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, d_in: int, d_out: int, w0: float | None) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(d_out, d_in, dtype=torch.float64))
            self.bias = nn.Parameter(torch.zeros(d_out, dtype=torch.float64))
            self.w0 = w0  # None: the linear output layer

        def forward(self, x):
            y = nn.functional.linear(x, self.weight, self.bias)
            return y if self.w0 is None else torch.sin(self.w0 * y)

    class Siren(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                Layer(dim_in if i == 0 else hidden, hidden, W0_FIRST if i == 0 else W0)
                for i in range(n_layers))
            self.last_layer = Layer(hidden, dim_out, None)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.last_layer(x)

    return Siren()


def location_state(state: dict[str, Any], where: str) -> dict[str, Any]:
    """The SIREN's tensors (``layers.i.*``, ``last_layer.*``) from a SatCLIP Lightning ``state_dict``."""
    net = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    if not net:
        raise WeightsError(f"{where} is not a SatCLIP checkpoint: its state_dict has no '{PREFIX}*' keys "
                           f"(the published layout); it holds e.g. {sorted(state)[:6]}")
    return net


class SatCLIP(Embedder):
    """SatCLIP's pretrained location encoder (embeds the ROI centre); variants ``l10`` and ``l40``."""

    cards: ClassVar[dict[str, ModelCard]] = {"l10": _card("l10", 10), "l40": _card("l40", 40)}
    card: ClassVar[ModelCard] = cards["l10"]
    default_options: ClassVar[dict[str, Any]] = {}

    @property
    def legendre(self) -> int:
        return int(self.card.variant[1:])

    def _load(self) -> None:
        from eoembed.models.zoo import load_checkpoint

        wf = self.card.weights[0]
        path, sha = self.weights_file(wf.name)
        state = location_state(load_checkpoint(path, sha, "state_dict"), str(path))
        self.net = self.build_net(state, str(path)).to(self.device).eval()

    def build_net(self, state: dict[str, Any], where: str = "state dict") -> Any:
        """Check the SIREN's keys and shapes against this variant and load them (strict)."""
        n = sum(1 for k in state if k.startswith("layers.") and k.endswith(".weight"))
        first = state.get("layers.0.weight")
        if n == 0 or first is None or first.ndim != 2:
            raise WeightsError(f"{where}: no SIREN 'layers.0.weight' under '{PREFIX}'; "
                               f"keys {sorted(state)[:8]}")
        hidden, dim_in = first.shape
        if dim_in != self.legendre ** 2:
            raise WeightsError(f"{where}: the location network takes {dim_in} inputs, model "
                               f"'{self.card.id}' needs L**2 = {self.legendre ** 2} (L={self.legendre}); "
                               "is it the other SatCLIP resolution?")
        net = _net(dim_in, hidden, n, self.card.dims)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        bad = sorted(set(expected) ^ set(got)) + sorted(
            k for k in expected if k in got and got[k] != expected[k])
        if bad:
            raise WeightsError(f"{where}: not the SatCLIP location network of '{self.card.id}' "
                               f"({n} SIREN layers of {hidden}, {self.card.dims}-d output): mismatched "
                               f"keys/shapes {bad[:8]}")
        net.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)
        return net

    def forward_locations(self, latlon: np.ndarray) -> np.ndarray:
        import torch

        latlon = np.asarray(latlon, dtype=np.float64)
        if latlon.ndim != 2 or latlon.shape[1] != 2:
            raise ModelError(f"{self.card.id}: locations must be (N, 2) [lat, lon]; got shape {latlon.shape}")
        bad = ~((np.abs(latlon[:, 0]) <= 90) & (np.abs(latlon[:, 1]) <= 180))
        if bad.any():
            raise ModelError(f"{self.card.id}: location [lat, lon]={latlon[bad][0].tolist()} is invalid; "
                             "allowed lat in [-90, 90], lon in [-180, 180]")
        self.load()
        with torch.inference_mode():
            lonlat = torch.as_tensor(latlon[:, ::-1].copy(), device=self.device)  # SatCLIP takes [lon, lat]
            return self.net(spherical_harmonics(lonlat, self.legendre)).float().cpu().numpy()
