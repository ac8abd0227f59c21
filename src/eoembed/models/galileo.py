"""Galileo (Tseng et al. 2025): multi-modal space-time ViT with flexible patch size.

One class, three variants (nano / tiny / base: data in :data:`VARIANTS`). Declared input (the
framework applies it): the 10 Sentinel-2 bands in stack units with the *pre-training*
normalisation ``(x - (mean - 2 std)) / (4 std)`` from the published ``normalization.json``
(values below), NDVI derived from raw values before normalisation and left unnormalised, 1-24
frames with month tokens, height and width padded to a multiple of the patch. S1 and the space,
time and static inputs are masked. Missing pixels are masked (the encoder's mask semantics) or,
with ``options.missing: fill_mean``, imputed as the upstream data path's ``Dataset._fillna`` does.

The model returns one token per patch: the mean of its unmasked space-time tokens, weighted by
their count, so the framework's pooled mean is exactly ``Encoder.average_tokens``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ModelError
from eoembed.models.base import Embedder, ModelCard, WeightsFile
from eoembed.models.inputs import BandNorm, Derived, InputSpec, SpacePolicy, TimePolicy, mean_std
from eoembed.models.transfer import to_device

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: normalization.json["13"] means/stds of B2..B12 (github.com/nasaharvest/galileo config/normalization.json,
#: sha256 baea3828...; equal to utils.py's PRETRAINING_NORMALIZING_DICT).
S2_MEAN = (1395.3408730676722, 1338.4026921784578, 1343.09883810357, 1543.8607982512297, 2186.2022069512263,
           2525.0932853316694, 2410.3377187373408, 2750.2854646886753, 2234.911100061487, 1474.5311266077113)
S2_STD = (917.7041440370853, 913.2988423581528, 1092.678723527555, 1047.2206083460424, 1048.0101611156767,
          1143.6903026819996, 1098.979177731649, 1204.472755085893, 1145.9774063078878, 980.2429840007796)
HF = "https://huggingface.co/nasaharvest/galileo/resolve/main/models"
CITATION = ("Tseng, G., Fuller, A., Reil, M., Herzog, H., Beukema, P., Bastani, F., et al. (2025). "
            "Galileo: Learning Global & Local Features of Many Remote Sensing Modalities. ICML 2025. "
            "arXiv:2502.09356")

S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a", "sentinel-2-l1c"), bands=BANDS,
    norm=tuple(mean_std(m, s, k=2.0) for m, s in zip(S2_MEAN, S2_STD)),
    derived=(Derived("NDVI", ("B08", "B04"), stage="raw", norm=BandNorm()),),
    gsd_m=10.0, time=TimePolicy(1, 24, tokens="month", default="months"),
    space=SpacePolicy("multiple", size=8, token_px=8), missing="mask", metadata=("time", "gsd"),
    norm_source="galileo config/normalization.json ['13'], training normalization 'std' (k = 2)")

#: variant -> (embedding dims, encoder sha256, size in bytes, mem_mb); architectures in galileo_net.ARCH
VARIANTS: dict[str, tuple[int, str, int | None, int]] = {
    "nano": (128, "eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c", 4189406, 3000),
    # the published tiny/base files carry no sha256 we could verify offline: the config pins it
    "tiny": (192, "", None, 4000),
    "base": (768, "", None, 8000),
}


def _card(size: str) -> ModelCard:
    dims, sha, nbytes, mem = VARIANTS[size]
    return ModelCard(
        id=f"galileo_{size}", family="galileo", kind="on_the_fly", variant=size,
        description=f"Galileo-{size} space-time encoder on Sentinel-2 time frames",
        inputs=(S2_INPUT,), dims=dims, outputs=("pooled", "grid"),
        weights=(WeightsFile(name="encoder.pt", url=f"{HF}/{size}/encoder.pt", sha256=sha, licence="MIT",
                             size_bytes=nbytes),),
        verified="oracle" if size == "nano" else "unverified",
        licence="MIT", citation=CITATION, url="https://github.com/nasaharvest/galileo", mem_mb=mem,
        runtime_min=60,
        notes="Pre-trained on S2_HARMONIZED (L1C); L2A is a domain shift. " + (
            "" if size == "nano" else "Key layout checked against the original encoder; no output oracle."))


class Galileo(Embedder):
    """Galileo encoder; ``variant`` selects nano / tiny / base."""

    cards: ClassVar[dict[str, ModelCard]] = {v: _card(v) for v in VARIANTS}
    card: ClassVar[ModelCard] = cards["nano"]
    default_options: ClassVar[dict[str, Any]] = {"patch_size": 8, "batch_size": 8, "missing": "mask"}
    concurrent_forward: ClassVar[bool] = True  # forward keeps no state (tests/test_streams.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.options["patch_size"]
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 8:
            raise ModelError(f"model {self.card.id}: options.patch_size={p!r} is invalid: allowed an integer 1..8")
        if self.options["missing"] not in ("mask", "fill_mean"):
            raise ModelError(f"model {self.card.id}: options.missing={self.options['missing']!r} is invalid: "
                             "allowed 'mask' (encoder masks) or 'fill_mean' (upstream Dataset._fillna)")

    def inputs(self) -> tuple[InputSpec, ...]:
        p = self.options["patch_size"]
        return (replace(S2_INPUT, space=SpacePolicy("multiple", size=p, token_px=p),
                        missing=self.options["missing"]),)

    def _load(self) -> None:
        from eoembed.models.galileo_net import encoder_from_state_dict
        from eoembed.weights import load_state_dict

        path, sha = self.weights_file("encoder.pt")
        self.net = encoder_from_state_dict(load_state_dict(path, sha), size=self.card.variant).to(self.device).eval()

    def forward(self, batch):
        import torch

        from eoembed.models.galileo_net import (
            SPACE_BANDS,
            SPACE_GROUPS,
            SPACE_TIME_GROUPS,
            STATIC_BANDS,
            STATIC_GROUPS,
            TIME_BANDS,
            TIME_GROUPS,
        )
        from eoembed.models.galileo_patch import coarsen_masks
        from eoembed.prep import TokenGrid

        x, miss = batch.x["s2"], batch.mask["s2"]  # (B, T, 11, H, W), (B, T, H, W)
        b, t, _, h, w = x.shape
        s_t_x = np.zeros((b, h, w, t, 13), np.float32)
        s_t_x[..., 2:13] = x.transpose(0, 3, 4, 1, 2)
        s_t_m = np.repeat(miss.transpose(0, 2, 3, 1)[..., None], len(SPACE_TIME_GROUPS), -1).astype(np.float32)
        s_t_m[..., 0] = 1.0  # S1 not given
        dev = self.device
        f = {"s_t_x": s_t_x, "s_t_m": s_t_m,
             "sp_x": np.zeros((b, h, w, len(SPACE_BANDS)), np.float32),
             "sp_m": np.ones((b, h, w, len(SPACE_GROUPS)), np.float32),
             "t_x": np.zeros((b, t, len(TIME_BANDS)), np.float32),
             "t_m": np.ones((b, t, len(TIME_GROUPS)), np.float32),
             "st_x": np.zeros((b, len(STATIC_BANDS)), np.float32),
             "st_m": np.ones((b, len(STATIC_GROUPS)), np.float32)}
        p = self.options["patch_size"]
        with torch.inference_mode():
            tb = {k: to_device(v, dev) for k, v in f.items()}
            tb["s_t_m"], tb["sp_m"] = (coarsen_masks(tb[k], p) for k in ("s_t_m", "sp_m"))
            months = to_device(batch.months, dev)
            mean, count = self.net.token_sums(**tb, months=months, patch_size=p, input_resolution_m=batch.gsd_m)
        return TokenGrid(mean.permute(0, 3, 1, 2).float().cpu().numpy(), count.float().cpu().numpy())
