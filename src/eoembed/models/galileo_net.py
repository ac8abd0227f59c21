"""Self-written Galileo space-time encoder (nano / tiny / base) that loads the published weights.

Galileo (Tseng et al. 2025, arXiv:2502.09356) makes one token per *channel group* per
location: space-time ``s_t_x [B, H, W, T, 13]`` (S1, S2 groups, NDVI) per ``p x p`` patch and
time step (flexible patch projection); space ``sp_x [B, H, W, 16]`` (SRTM, Dynamic World,
WorldCereal) per patch; time ``t_x [B, T, 6]`` (ERA5, TerraClimate, VIIRS) per time step;
static ``st_x [B, 18]`` (LandScan, location, DW/WC summaries) once.

Each token gets a quarter-width encoding per slot: ``[channel group | time step | month |
2-D position]`` (unused slots are zero). Masked groups (mask >= 1) are removed before a
pre-norm ViT (``depth`` blocks) and a final LayerNorm. Masks are read per patch at the
patch's top-left pixel, as in the original code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from eoembed.models.galileo_patch import (
    FlexiPatchProjection,
    TransformerBlock,
    coarsen_masks,
    month_table,
    sincos_1d,
    sincos_2d,
)

SPACE_TIME_BANDS = ["VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "NDVI"]
SPACE_TIME_GROUPS = {"S1": [0, 1], "S2_RGB": [2, 3, 4], "S2_Red_Edge": [5, 6, 7], "S2_NIR_10m": [8],
                     "S2_NIR_20m": [9], "S2_SWIR": [10, 11], "NDVI": [12]}
_DW = ["water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub", "built", "bare",
       "snow_and_ice"]
_WC = ["temporarycrops", "maize", "wintercereals", "springcereals", "irrigation"]
SPACE_BANDS = ["elevation", "slope"] + [f"DW_{b}" for b in _DW] + [f"WC_{b}" for b in _WC]
SPACE_GROUPS = {"SRTM": [0, 1], "DW": list(range(2, 11)), "WC": list(range(11, 16))}
TIME_BANDS = ["temperature_2m", "total_precipitation_sum", "def", "soil", "aet", "avg_rad"]
TIME_GROUPS = {"ERA5": [0, 1], "TC": [2, 3, 4], "VIIRS": [5]}
STATIC_BANDS = (["b1", "x", "y", "z"] + [f"DW_{b}_static" for b in _DW] + [f"WC_{b}_static" for b in _WC])
STATIC_GROUPS = {"LS": [0], "location": [1, 2, 3], "DW_static": list(range(4, 13)),
                 "WC_static": list(range(13, 18))}
BASE_GSD_M = 10.0

# Fixed (shift, div) constants of the published code; bands listed in _STD_BANDS are
# instead normalised with the dataset statistics: shift = mean - 2 std, div = 4 std.
_FIXED_SHIFT_DIV = {
    "space_time": ([25.0] * 2 + [0.0] * 10 + [0.0], [25.0] * 2 + [1e4] * 10 + [1.0]),
    "space": ([0.0] * 16, [2000.0, 50.0] + [1.0] * 9 + [100.0] * 5),
    "time": ([-272.15, 0.0, 0.0, 0.0, 0.0, 0.0], [35.0, 0.03, 4548.0, 8882.0, 2000.0, 100.0]),
    "static": ([92500.0] + [0.0] * 17, [92500.0] + [1.0] * 12 + [100.0] * 5),
}
_STD_BANDS = {"space_time": SPACE_TIME_BANDS[:12], "space": ["elevation", "slope"], "time": TIME_BANDS,
              "static": ["b1"]}
_KINDS = {"space_time": SPACE_TIME_BANDS, "space": SPACE_BANDS, "time": TIME_BANDS, "static": STATIC_BANDS}

_COMMON = dict(mlp_ratio=4, max_sequence_length=24, max_patch_size=8)
ARCH: dict[str, dict[str, int]] = {  # published configs: nano in the repo, tiny/base on Hugging Face
    "nano": dict(embedding_size=128, depth=4, num_heads=8, **_COMMON),
    "tiny": dict(embedding_size=192, depth=12, num_heads=3, **_COMMON),
    "base": dict(embedding_size=768, depth=12, num_heads=12, **_COMMON),
}
INPUT_KEYS = ("s_t_x", "sp_x", "t_x", "st_x", "s_t_m", "sp_m", "t_m", "st_m", "months")


def load_normalization(path: str | Path, std_multiplier: float = 2.0) -> dict[str, Any]:
    """Read Galileo's ``normalization.json`` and derive the per-band affine normalisation.

    The file maps the band count of each input kind (``"13"`` space-time, ``"16"`` space,
    ``"6"`` time, ``"18"`` static) to ``{"mean": [...], "std": [...]}`` in checkpoint band
    order. The published training (``normalization: "std"``) applies ``(x - shift) / div``
    with ``shift = mean - 2 std`` and ``div = 4 std`` to S1 (dB), S2 (reflectance x 10000),
    SRTM, all time bands and LandScan; NDVI is left raw (shift 0, div 1) and the other bands
    keep fixed constants (e.g. Dynamic World / 1, WorldCereal / 100).

    Args:
        path: Path to ``normalization.json``.
        std_multiplier: Half-width of the normalisation window in standard deviations.

    Returns:
        ``{kind: {"bands", "mean", "std", "shift", "div"}}`` for the kinds ``space_time``,
        ``space``, ``time``, ``static`` (numpy float64 arrays), plus ``std_multiplier``.
    """
    raw = json.loads(Path(path).read_text())
    out: dict[str, Any] = {"std_multiplier": float(std_multiplier)}
    for kind, bands in _KINDS.items():
        stats = raw[str(len(bands))]
        mean, std = np.asarray(stats["mean"], dtype=np.float64), np.asarray(stats["std"], dtype=np.float64)
        if not mean.shape == std.shape == (len(bands),):
            raise ValueError(f"normalization.json entry {len(bands)} does not have {len(bands)} bands")
        shift, div = (np.asarray(v, dtype=np.float64) for v in _FIXED_SHIFT_DIV[kind])
        for band in _STD_BANDS[kind]:
            i = bands.index(band)
            shift[i], div[i] = mean[i] - std_multiplier * std[i], 2 * std_multiplier * std[i]
        out[kind] = {"bands": list(bands), "mean": mean, "std": std, "shift": shift, "div": div}
    return out


class GalileoTokens(NamedTuple):
    """Encoder output; masks are bool (True = masked) at token resolution ``h = H/p``."""

    s_t_x: Tensor  # [B, h, w, T, 7, D]
    sp_x: Tensor  # [B, h, w, 3, D]
    t_x: Tensor  # [B, T, 3, D]
    st_x: Tensor  # [B, 4, D]
    s_t_m: Tensor  # [B, h, w, T, 7]
    sp_m: Tensor  # [B, h, w, 3]
    t_m: Tensor  # [B, T, 3]
    st_m: Tensor  # [B, 4]


class GalileoEncoder(nn.Module):
    """Galileo encoder with state-dict names identical to the published ``encoder.pt``."""

    def __init__(self, embedding_size: int = 128, depth: int = 4, num_heads: int = 8, mlp_ratio: float = 4,
                 max_sequence_length: int = 24, max_patch_size: int = 8) -> None:
        """Build the network (weights are random until a state dict is loaded).

        Args:
            embedding_size: Token width ``D`` (divisible by 8 for the encodings).
            depth: Number of transformer blocks.
            num_heads: Attention heads.
            mlp_ratio: MLP hidden width / ``D``.
            max_sequence_length: Maximum number of time steps.
            max_patch_size: Side of the stored patch kernels (largest usable patch size).
        """
        super().__init__()
        d, q = embedding_size, embedding_size // 4
        self.embedding_size, self.max_patch_size = d, max_patch_size
        self.pos_embed = nn.Parameter(sincos_1d(q, torch.arange(max_sequence_length)), requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(q), freeze=True)
        self.s_t_channel_embed = nn.Parameter(torch.zeros(len(SPACE_TIME_GROUPS), q))
        self.sp_channel_embed = nn.Parameter(torch.zeros(len(SPACE_GROUPS), q))
        self.t_channel_embed = nn.Parameter(torch.zeros(len(TIME_GROUPS), q))
        self.st_channel_embed = nn.Parameter(torch.zeros(len(STATIC_GROUPS), q))
        self.space_time_embed = nn.ModuleDict(
            {g: FlexiPatchProjection(len(i), d, max_patch_size) for g, i in SPACE_TIME_GROUPS.items()})
        self.space_embed = nn.ModuleDict(
            {g: FlexiPatchProjection(len(i), d, max_patch_size) for g, i in SPACE_GROUPS.items()})
        self.time_embed = nn.ModuleDict({g: nn.Linear(len(i), d) for g, i in TIME_GROUPS.items()})
        self.static_embed = nn.ModuleDict({g: nn.Linear(len(i), d) for g, i in STATIC_GROUPS.items()})
        self.blocks = nn.ModuleList([TransformerBlock(d, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)

    def _project(self, s_t_x: Tensor, sp_x: Tensor, t_x: Tensor, st_x: Tensor, masks: list[Tensor],
                 p: int) -> list[Tensor]:
        """Per-group linear projections; groups masked for the whole batch become zeros."""
        (b, hh, ww, t, _), d = s_t_x.shape, self.embedding_size
        h, w = hh // p, ww // p
        s_t = []
        for g, (name, idx) in enumerate(SPACE_TIME_GROUPS.items()):
            if bool(masks[0][..., g].all()):
                s_t.append(s_t_x.new_zeros(b, h, w, t, d))
                continue
            x = s_t_x[..., idx].permute(0, 3, 4, 1, 2).reshape(b * t, len(idx), hh, ww)
            y = self.space_time_embed[name](x, p).reshape(b, t, d, h, w)
            s_t.append(y.permute(0, 3, 4, 1, 2))
        sp = [sp_x.new_zeros(b, h, w, d) if bool(masks[1][..., g].all())
              else self.space_embed[name](sp_x[..., idx].permute(0, 3, 1, 2), p).permute(0, 2, 3, 1)
              for g, (name, idx) in enumerate(SPACE_GROUPS.items())]
        tt = [self.time_embed[name](t_x[..., idx]) for name, idx in TIME_GROUPS.items()]
        st = [self.static_embed[name](st_x[..., idx]) for name, idx in STATIC_GROUPS.items()]
        return [torch.stack(s_t, -2), torch.stack(sp, -2), torch.stack(tt, -2), torch.stack(st, -2)]

    def _add_encodings(self, toks: list[Tensor], months: Tensor, scale: float) -> list[Tensor]:
        """Add ``[channel | time step | month | position]`` encodings (zeros where not applicable)."""
        s_t, sp, tt, st = toks
        (b, h, w, t, g, _), q = s_t.shape, self.embedding_size // 4
        pos = self.pos_embed[:t]  # [T, q]
        mon = self.month_embed(months.long())  # [B, T, q]
        xy = sincos_2d(q, h, w, scale, device=s_t.device).to(s_t.dtype)  # [h, w, q]
        enc_st = torch.cat([self.s_t_channel_embed.expand(b, h, w, t, g, q),
                            pos[None, None, None, :, None].expand(b, h, w, t, g, q),
                            mon[:, None, None, :, None].expand(b, h, w, t, g, q),
                            xy[None, :, :, None, None].expand(b, h, w, t, g, q)], -1)
        gs = sp.shape[3]
        enc_sp = torch.cat([self.sp_channel_embed.expand(b, h, w, gs, q), sp.new_zeros(b, h, w, gs, 2 * q),
                            xy[None, :, :, None].expand(b, h, w, gs, q)], -1)
        gt = tt.shape[2]
        enc_t = torch.cat([self.t_channel_embed.expand(b, t, gt, q), pos[None, :, None].expand(b, t, gt, q),
                           mon[:, :, None].expand(b, t, gt, q), tt.new_zeros(b, t, gt, q)], -1)
        enc_stat = torch.cat([self.st_channel_embed.expand(b, -1, q),
                              st.new_zeros(b, st.shape[1], 3 * q)], -1)
        return [s_t + enc_st, sp + enc_sp, tt + enc_t, st + enc_stat]

    def _encode(self, s_t_x: Tensor, sp_x: Tensor, t_x: Tensor, st_x: Tensor, s_t_m: Tensor, sp_m: Tensor,
                t_m: Tensor, st_m: Tensor, months: Tensor, patch_size: int,
                input_resolution_m: float = BASE_GSD_M):
        """Run the encoder on the unmasked tokens only.

        Returns:
            ``(x, valid, order, shapes, masks)``: ``x [B, L, D]`` final-normed tokens packed
            to the front (``L`` = most unmasked tokens in any sample), ``valid [B, L]``,
            ``order [B, L]`` their indices in the full flattened sequence, the token tensor
            shapes and the token-resolution masks.
        """
        p = int(patch_size)
        if s_t_x.shape[1] % p or s_t_x.shape[2] % p:
            raise ValueError(f"H, W {tuple(s_t_x.shape[1:3])} must be divisible by patch_size {p}")
        masks = [s_t_m[:, ::p, ::p] >= 1, sp_m[:, ::p, ::p] >= 1, t_m >= 1, st_m >= 1]
        toks = self._project(s_t_x, sp_x, t_x, st_x, masks, p)
        toks = self._add_encodings(toks, months, p * input_resolution_m / BASE_GSD_M)
        shapes = [tk.shape for tk in toks]
        b, d = s_t_x.shape[0], self.embedding_size
        x = torch.cat([tk.reshape(b, -1, d) for tk in toks], 1)
        masked = torch.cat([m.reshape(b, -1) for m in masks], 1)
        n_keep = int((~masked).sum(1).max())
        order = torch.argsort(masked.to(torch.int8), dim=1, stable=True)[:, :n_keep]
        x = x.gather(1, order[:, :, None].expand(-1, -1, d))
        valid = ~masked.gather(1, order)
        for blk in self.blocks:
            x = blk(x, valid)
        return self.norm(x), valid, order, shapes, masks

    def forward(self, s_t_x: Tensor, sp_x: Tensor, t_x: Tensor, st_x: Tensor, s_t_m: Tensor, sp_m: Tensor,
                t_m: Tensor, st_m: Tensor, months: Tensor, patch_size: int,
                input_resolution_m: float = BASE_GSD_M) -> GalileoTokens:
        """Encode pixel-resolution inputs (shapes as in the module docstring; masks 1 = masked).

        Args:
            s_t_x, sp_x, t_x, st_x: Normalised inputs; ``H`` and ``W`` divisible by ``patch_size``.
            s_t_m, sp_m, t_m, st_m: Group masks ``[B, H, W, T, 7]``, ``[B, H, W, 3]``,
                ``[B, T, 3]``, ``[B, 4]``; a patch's mask is read at its top-left pixel.
            months: ``[B, T]`` calendar month per time step, 0 = January.
            patch_size: Patch side in pixels, 1..max_patch_size.
            input_resolution_m: Pixel size in metres (scales the positional encoding).

        Returns:
            :class:`GalileoTokens`; tokens of masked groups are zero.
        """
        x, valid, order, shapes, masks = self._encode(s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m,
                                                      months, patch_size, input_resolution_m)
        b, d = x.shape[0], self.embedding_size
        n_total = sum(m.reshape(b, -1).shape[1] for m in masks)
        full = x.new_zeros(b, n_total, d)
        full.scatter_(1, order[:, :, None].expand(-1, -1, d), torch.where(valid[..., None], x, 0.0))
        chunks = full.split([int(np.prod(shape[1:-1])) for shape in shapes], dim=1)
        return GalileoTokens(*(c.reshape(shape) for c, shape in zip(chunks, shapes)), *masks)

    def pooled(self, *args: Any, **kwargs: Any) -> Tensor:
        """Average of all unmasked output tokens (all kinds), ``[B, D]``; NaN if none. Args as forward."""
        x, valid, *_ = self._encode(*args, **kwargs)
        total = torch.where(valid[..., None], x, 0.0).sum(1)
        return total / valid.sum(1, keepdim=True).to(x.dtype)

    def token_sums(self, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Per patch: ``(mean [B, H/p, W/p, D], count [B, H/p, W/p])`` of the unmasked space-time tokens.

        ``count``-weighted averaging of the means over patches gives :meth:`pooled` exactly when only
        space-time groups are unmasked (the original ``average_tokens``). Args as :meth:`forward`.
        """
        out = self.forward(*args, **kwargs)
        (b, h, w), d = out.s_t_x.shape[:3], self.embedding_size
        x = out.s_t_x.reshape(b, h, w, -1, d)
        keep = (~out.s_t_m.reshape(b, h, w, -1)).to(x.dtype)
        count = keep.sum(3)
        mean = (x * keep[..., None]).sum(3) / count.clamp_min(1)[..., None]
        return mean, count

    def token_grid(self, *args: Any, include_other_modalities: bool = False, **kwargs: Any) -> Tensor:
        """Per-patch embedding ``[B, H/p, W/p, D]``.

        Location ``(i, j)`` is the mean of the unmasked space-time tokens of patch ``(i, j)``
        over all time steps and space-time channel groups. With
        ``include_other_modalities=True`` the unmasked space tokens of the patch and all
        unmasked time and static tokens are included too (the original
        ``apply_mask_and_average_tokens_per_patch``). Locations without any unmasked token
        are NaN. Takes the same other arguments as :meth:`forward`.
        """
        out = self.forward(*args, **kwargs)
        (b, h, w), d = out.s_t_x.shape[:3], self.embedding_size
        toks = [out.s_t_x.reshape(b, h, w, -1, d)]
        keep = [~out.s_t_m.reshape(b, h, w, -1)]
        if include_other_modalities:
            toks += [out.sp_x, out.t_x.reshape(b, 1, 1, -1, d).expand(b, h, w, -1, d),
                     out.st_x[:, None, None].expand(b, h, w, -1, d)]
            keep += [~out.sp_m, ~out.t_m.reshape(b, 1, 1, -1).expand(b, h, w, -1),
                     ~out.st_m[:, None, None].expand(b, h, w, -1)]
        x, k = torch.cat(toks, 3), torch.cat(keep, 3).to(out.s_t_x.dtype)[..., None]
        return (x * k).sum(3) / k.sum(3)


def encoder_from_state_dict(state_dict: dict[str, Tensor], size: str = "nano") -> GalileoEncoder:
    """Build the ``size`` architecture and load ``state_dict`` strictly.

    Args:
        state_dict: Encoder weights (e.g. ``torch.load("encoder.pt")``); a ``.backbone``
            fragment in key names (seen in some published files) is removed first.
        size: Key of :data:`ARCH`.

    Returns:
        The loaded encoder in eval mode.

    Raises:
        ValueError: Unknown size, or missing / unexpected keys, or shape mismatches (all named).
    """
    if size not in ARCH:
        raise ValueError(f"unknown Galileo size {size!r}; expected one of {sorted(ARCH)}")
    model = GalileoEncoder(**ARCH[size])
    cleaned = {k.replace(".backbone", ""): v for k, v in state_dict.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(cleaned))
    unexpected = sorted(set(cleaned) - set(expected))
    bad = sorted(f"{k}: got {tuple(cleaned[k].shape)}, expected {tuple(v.shape)}"
                 for k, v in expected.items() if k in cleaned and tuple(cleaned[k].shape) != tuple(v.shape))
    if missing or unexpected or bad:
        raise ValueError(f"state dict does not match Galileo-{size}: missing keys {missing}; "
                         f"unexpected keys {unexpected}; shape mismatches {bad}")
    model.load_state_dict(cleaned, strict=True)
    return model.eval()


@torch.no_grad()
def encode_pooled(model: GalileoEncoder, inputs: dict[str, np.ndarray], patch_size: int, batch_size: int = 16,
                  any_pixel_masks_patch: bool = True) -> np.ndarray:
    """Pooled embeddings ``[B, D]`` (float32) for the arrays named in :data:`INPUT_KEYS`.

    Args:
        model: A loaded encoder (put in eval mode here).
        inputs: Arrays named in :data:`INPUT_KEYS` (as :meth:`eoembed.models.galileo.Galileo.forward` builds them).
        patch_size: Patch side in pixels.
        batch_size: Samples per forward pass.
        any_pixel_masks_patch: If True (default), a patch's group token is masked when any of
            its pixels is masked, so filled-in values never reach the model; if False the
            original top-left-pixel rule is used.
    """
    model.eval()
    device = next(model.parameters()).device
    n = inputs["s_t_x"].shape[0]
    outs = []
    for start in range(0, n, batch_size):
        batch = {k: torch.as_tensor(np.asarray(inputs[k][start:start + batch_size]), device=device)
                 for k in INPUT_KEYS}
        batch = {k: (v.long() if k == "months" else v.float()) for k, v in batch.items()}
        if any_pixel_masks_patch:
            batch["s_t_m"], batch["sp_m"] = (coarsen_masks(batch[k], patch_size) for k in ("s_t_m", "sp_m"))
        outs.append(model.pooled(**batch, patch_size=patch_size).cpu().numpy())
    if not outs:
        return np.zeros((0, model.embedding_size), np.float32)
    return np.concatenate(outs, 0).astype(np.float32)
