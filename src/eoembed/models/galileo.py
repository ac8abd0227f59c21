"""Galileo (Tseng et al. 2025): multi-modal space-time ViT with flexible patch size.

Runs on Sentinel-2 time frames: the 10 S2 bands plus NDVI in the published group order,
normalised with the published ``normalization.json``; S1, space, time and static inputs
are masked. Months per frame (the frame's middle month). Pooled output = average of all
unmasked tokens (as published); grid output = per-patch token average (cell = patch size,
or a multiple of it).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from eoembed.collections import SENTINEL2_L2A
from eoembed.errors import ModelError, WeightsError
from eoembed.items import Composite
from eoembed.models.base import Embedder, ModelCard, WeightsFile, pool_cells
from eoembed.specs import OutputSpec

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
HF = "https://huggingface.co/nasaharvest/galileo/resolve/main/models"
NORMALIZATION = WeightsFile(
    name="normalization.json",
    url="https://raw.githubusercontent.com/nasaharvest/galileo/main/config/normalization.json",
    sha256="baea3828a8750e0b570cb2fad5cd30bb249f1f001988d842cc4246860e799ff3", licence="MIT",
    size_bytes=2277)
CITATION = ("Tseng, G., Fuller, A., Reil, M., Herzog, H., Beukema, P., Bastani, F., et al. (2025). "
            "Galileo: Learning Global & Local Features of Many Remote Sensing Modalities. ICML 2025. "
            "arXiv:2502.09356")


def _card(size: str, dims: int, encoder_sha: str | None, encoder_bytes: int | None, mem_mb: int) -> ModelCard:
    return ModelCard(
        id=f"galileo_{size}", family="galileo", kind="on_the_fly",
        description=f"Galileo-{size} space-time encoder on Sentinel-2 time frames",
        collection="sentinel-2-l2a", bands=BANDS,
        wavelengths_nm=tuple(SENTINEL2_L2A.wavelengths_nm[b] for b in BANDS),
        native_gsd_m=10, input_size=None, temporal="frames", frames=12, dims=dims,
        outputs=("pooled", "grid"),
        weights=(WeightsFile(name="encoder.pt", url=f"{HF}/{size}/encoder.pt", sha256=encoder_sha or "",
                             licence="MIT", size_bytes=encoder_bytes), NORMALIZATION),
        licence="MIT", citation=CITATION, url="https://github.com/nasaharvest/galileo",
        mem_mb=mem_mb, runtime_min=60)


class _Galileo(Embedder):
    """Shared implementation; subclasses set :attr:`card` and :attr:`size`."""

    size: ClassVar[str] = "nano"
    default_options: ClassVar[dict[str, Any]] = {"patch_size": 8, "batch_size": 8}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.options["patch_size"]
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 8:
            raise ModelError(f"model {self.card.id}: options.patch_size={p!r} is invalid: allowed an integer 1..8")

    def _load(self) -> None:
        from eoembed.models.galileo_net import encoder_from_state_dict, load_normalization
        from eoembed.weights import load_state_dict, verify_sha256

        path, sha = self.weights_file("encoder.pt")
        self.net = encoder_from_state_dict(load_state_dict(path, sha), size=self.size).to(self.device).eval()
        npath, nsha = self.weights_file(NORMALIZATION.name)
        verify_sha256(npath, nsha)
        try:
            self.norm = load_normalization(npath)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{npath} is not Galileo's normalization.json: {exc}") from None

    def native_cell_px(self) -> int:
        return int(self.options["patch_size"])

    def _inputs(self, comps: list[Composite]) -> dict[str, np.ndarray]:
        from eoembed.composite import pad_to_multiple
        from eoembed.models.galileo_net import pack_inputs

        p = self.options["patch_size"]
        arrays, months = [], []
        for comp in comps:
            comp = pad_to_multiple(comp, p)
            data = comp.band_data(self.card.bands).astype(np.float32)  # (T, C, H, W)
            ok = comp.valid & comp.roi_mask[None]
            data = np.where(ok[:, None], data, np.nan)
            arrays.append(data.transpose(2, 3, 0, 1))  # (H, W, T, C)
            months.append(comp.mid_months())
        return pack_inputs(np.stack(arrays), list(self.card.bands), np.stack(months), self.norm)

    def _token_grids(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from eoembed.models.galileo_net import INPUT_KEYS
        from eoembed.models.galileo_patch import coarsen_masks

        p, bs = self.options["patch_size"], self.options["batch_size"]
        outs = []
        with torch.no_grad():
            for s in range(0, inputs["s_t_x"].shape[0], bs):
                batch = {k: torch.as_tensor(inputs[k][s:s + bs], device=self.device) for k in INPUT_KEYS}
                batch = {k: (v.long() if k == "months" else v.float()) for k, v in batch.items()}
                batch["s_t_m"], batch["sp_m"] = (coarsen_masks(batch[k], p) for k in ("s_t_m", "sp_m"))
                outs.append(self.net.token_grid(**batch, patch_size=p).float().cpu().numpy())
        return np.concatenate(outs)  # (B, H/p, W/p, D)

    def embed_batch(self, composites: list[Composite], output: OutputSpec) -> list[np.ndarray]:
        from eoembed.models.galileo_net import encode_pooled

        out: list[np.ndarray | None] = [None] * len(composites)
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i, c in enumerate(composites):  # only equal shapes batch together
            shapes.setdefault((c.data.shape[0], *c.grid_shape()), []).append(i)
        for idx in shapes.values():
            inputs = self._inputs([composites[i] for i in idx])
            if output.mode == "pooled" and output.pooling == "mean":
                vecs = encode_pooled(self.net, inputs, self.options["patch_size"], self.options["batch_size"])
                for i, v in zip(idx, vecs):
                    out[i] = v.astype(np.float32)
                continue
            grids = self._token_grids(inputs)
            for i, g in zip(idx, grids):
                g = g.transpose(2, 0, 1)  # (D, rows, cols)
                if output.mode == "pooled":  # max over patches with tokens
                    out[i] = np.nanmax(g.reshape(g.shape[0], -1), axis=1).astype(np.float32)
                    continue
                k = self.cell_px(output, composites[i]) // self.options["patch_size"]
                if self.cell_px(output, composites[i]) % self.options["patch_size"]:
                    raise ModelError(f"{self.card.id}: grid cell {output.cell_m} m is not a multiple of the "
                                     f"patch ({self.options['patch_size']} px); change output.grid_cell_m or patch_size")
                out[i] = g if k == 1 else pool_cells(g, np.isfinite(g[0]), k)
        for i, v in enumerate(out):
            if output.mode == "pooled" and (v is None or not np.isfinite(v).all()):
                raise ModelError(f"{self.card.id}: no unmasked token for item {i} (all pixels invalid?)")
        return out  # type: ignore[return-value]


class GalileoNano(_Galileo):
    card: ClassVar[ModelCard] = _card(
        "nano", 128, "eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c", 4189406, 3000)
    size = "nano"


class GalileoTiny(_Galileo):
    # the published tiny/base files carry no sha256 we could verify offline: the config pins it
    card: ClassVar[ModelCard] = _card("tiny", 192, None, None, 4000)
    size = "tiny"


class GalileoBase(_Galileo):
    card: ClassVar[ModelCard] = _card("base", 768, None, None, 8000)
    size = "base"
