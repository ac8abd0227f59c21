"""Shared glue of the research-model Embedders (SatMAE, SatMAE++, WildSAT, TerraFM, THOR, FoMo,
SatVision-TOA, AgriFM, AnySat): checkpoint containers, token weights, the RGB convention.

Every network lives in :mod:`eoembed.models.nets` (checked against the original code's output);
a model module here only declares its card and inputs and maps a ready batch to the network's
input layout. Pixels are prepared by the framework from the declared ``BandNorm`` s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import WeightsError
from eoembed.models.base import Embedder
from eoembed.models.transfer import to_device

__all__ = ["RGB", "RGB_SATURATION", "ZooEmbedder", "load_checkpoint", "token_weight"]

#: Sentinel-2 true-colour bands in R, G, B order.
RGB = ("B04", "B03", "B02")
#: Stack units (reflectance x 10000) mapped to 1.0 for the RGB models, which were pre-trained on
#: 8-bit *visual* images (fMoW, NAIP-like): reflectance 0.3 -> 255, the usual true-colour stretch.
#: (A plain ``/10000`` gives near-black images the models never saw.) No clip at 1.0: the
#: contract's ``BandNorm`` is affine, so bright pixels (reflectance > 0.3) exceed 1.
RGB_SATURATION = 3000.0


def load_checkpoint(path: str | Path, sha256: str, member: str | None = None) -> dict[str, Any]:
    """Verify ``sha256``, load a published checkpoint with ``weights_only=True`` and return its
    state dict: ``file[member]`` for a training checkpoint (``"model"``, ``"state_dict"``,
    ``"satellite_state_dict"``, ``"module"``), or the whole file when it has no such member and is
    itself a flat state dict (extracted once from a container ``weights_only`` refuses).

    Raises:
        WeightsError: sha256 mismatch, a file ``weights_only`` refuses (it pickles Python objects:
            the message says how to extract the state dict once), a missing member, or entries
            that are not tensors.
    """
    import pickle
    import re

    import torch

    from eoembed.checksums import verify_sha256
    from eoembed.weights import _check_state_dict

    p = Path(path).absolute()
    verify_sha256(p, sha256)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        why = re.search(r"Unsupported global: GLOBAL \S+", str(exc))
        raise WeightsError(
            f"weights file {p}: torch.load(weights_only=True) refuses it "
            f"({why.group(0) if why else 'it pickles Python objects'}; e.g. training args). "
            "Extract the state dict once in a trusted environment: "
            f"torch.save(torch.load(f, weights_only=False)[{member!r}], 'state_dict.pt'), then point "
            "models.<id>.weights at that file and pin its sha256") from exc
    if member is not None:
        flat = isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
        if not isinstance(obj, dict) or (member not in obj and not flat):
            keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            raise WeightsError(f"weights file {p}: no member {member!r}; it holds {keys}")
        obj = obj[member] if member in obj else obj
    return _check_state_dict(obj, p)


def token_weight(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(B, T, H, W)`` missing-pixel mask -> ``(B, h, w)`` fraction of valid pixels under each of
    ``h x w`` equal token cells, averaged over frames (0 = a token of padding or gaps only)."""
    b, t, hh, ww = mask.shape
    if hh % h or ww % w:
        raise ValueError(f"mask of {hh} x {ww} px does not split into {h} x {w} token cells")
    ok = (~mask).astype(np.float32).reshape(b, t, h, hh // h, w, ww // w)
    return ok.mean(axis=(1, 3, 5))


class ZooEmbedder(Embedder):
    """An Embedder around one network of :mod:`eoembed.models.nets`.

    Subclasses set :attr:`cards`, :attr:`weights_member` and implement :meth:`build_net` (state
    dict -> network), :meth:`model_input` (ready batch -> the network's input, e.g. a tensor) and
    :meth:`run` (network, input -> ``(B, D, h, w)`` tensor). ``self.config`` holds the network
    configuration of the variant (a test may shrink it before loading).
    """

    weights_member: ClassVar[str | None] = None
    published: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config: dict[str, Any] = dict(self.published[self.card.variant])

    def build_net(self, state_dict: dict[str, Any]) -> Any:
        raise NotImplementedError

    def model_input(self, batch: Any) -> Any:
        raise NotImplementedError

    def run(self, net: Any, inp: Any, batch: Any) -> Any:
        return net.forward_tokens(inp)["grid"]

    def _load(self) -> None:
        wf = self.card.weights[0]
        path, sha = self.weights_file(wf.name)
        self.net = self.build_net(load_checkpoint(path, sha, self.weights_member)).to(self.device).eval()

    def forward(self, batch: Any) -> Any:
        import torch

        from eoembed.prep import TokenGrid

        with torch.inference_mode():
            grid = self.run(self.net, self.model_input(batch), batch).float().cpu().numpy()
        mask = batch.mask[self.inputs()[0].modality]
        return TokenGrid(grid, token_weight(mask, *grid.shape[-2:]))

    def tensor(self, x: np.ndarray) -> Any:
        import torch

        return to_device(x, self.device, torch.float32)
