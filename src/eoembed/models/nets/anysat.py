"""AnySat encoder (Astruc et al., CVPR 2025; github.com/gastruc/AnySat, torch.hub ``anysat``):
``AnyModule.forward_release`` on the non-flash attention path. Written here (no maintained block has
its key layout; the inner ViT blocks are timm Blocks).

Path for a time-series modality (``s2``: ``[B, T, 10, H, W]`` + day-of-year dates, 10 m pixels):

1. ``projector_<mod>`` (PatchLTAEMulti): an L-TAE per pixel -- Linear/GroupNorm(4)/ReLU ``inconv``,
   GroupNorm(n_head) ``in_norm`` (s2 only), sinusoidal date encoding (period T, d = D/n_head,
   repeated n_head times), one learned query per head, ``mlp`` + GroupNorm ``out_norm`` -- then the
   map is cut into ``scale x scale``-pixel patches (``scale`` = patch size / 10 m).
2. ``spatial_encoder`` (TransformerMulti): per patch, cls + sub-pixel tokens with a 2-D sin-cos
   embedding of metre offsets, blocks with iRPE (contextual, euclidean, on keys, shared head,
   cls bucket), LayerNorm (eps 1e-5); the cls becomes the patch token.
3. Patch tokens + 2-D sin-cos embedding scaled by ``scale``; cls token; timm Blocks (eps 1e-6);
   ``CrossBlockMulti``: a learned query per patch (+ sin-cos) cross-attends all tokens with iRPE,
   NO residual around the attention, then ``x + mlp(norm2(x))``; no final norm.

Caveats: upstream's flash path passes (B, heads, N, hd) to ``flash_attn_func`` (which expects
(B, N, heads, hd)) and so attends across heads; the released weights were trained that way
(configs set flash_attn: True) but rs-embed and the oracle use the plain path implemented here.
Projectors of the VHR modalities (aerial, aerial-flair, spot, naip: PatchMLPMulti) are built only so
the released checkpoint loads strictly; their forward is not implemented. MODIS (a single token
prepended) is not supported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from eoembed.models.nets.common import load_strict, prepare_state_dict, sincos_1d, vit_blocks

S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
VHR = ("aerial", "aerial-flair", "spot", "naip")
#: (in_channels, T, in_norm, reduce_scale) of the L-TAE projectors, and (in_chans, patch) of the VHR
#: ones (configs/model/network/encoder/Any_*_multi.yaml); spatial-encoder pixel size in metres.
LTAE = {
    "s2": (10, 367, True, 1),
    "s1-asc": (2, 367, False, 1),
    "s1": (3, 367, False, 1),
    "alos": (3, 367, False, 3),
    "l7": (6, 367, False, 3),
    "l8": (11, 366, False, 1),
    "modis": (7, 367, False, 12),
}
MLP_PROJ = {"aerial": (4, 10), "aerial-flair": (5, 10), "spot": (3, 10), "naip": (4, 8)}
INPUT_RES = {
    "aerial": 2.0,
    "aerial-flair": 2.0,
    "spot": 10.0,
    "naip": 10.0,
    "s2": 10,
    "s1-asc": 10,
    "s1": 10,
    "l8": 10,
    "l7": 30,
    "alos": 30,
    "modis": 250,
}
PUBLISHED = {
    "tiny": dict(embed_dim=256, depth=2, num_heads=4),
    "small": dict(embed_dim=512, depth=4, num_heads=8),
    "base": dict(embed_dim=768, depth=6, num_heads=12),
}
_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio")
OUTPUTS = ("tile", "patch", "all", "dense")


def sincos_2d(dim: int, side: int, step: float, cls: bool = True) -> Tensor:
    """AnySat's grid embedding ``(1, [1+]side*side, dim)``: the first half encodes the COLUMN
    coordinate, the second the row (``meshgrid(w, h, indexing='xy')``), coordinates times ``step``."""
    c = torch.arange(side, dtype=torch.float32) * step
    cols, rows = c[None, :].expand(side, side), c[:, None].expand(side, side)
    emb = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], 1)
    if cls:
        emb = torch.cat([torch.zeros(1, dim), emb])
    return emb[None]


def rpe_buckets(side: int, ratio: float = 1.9) -> Tensor:
    """iRPE bucket ids ``(1+L, 1+L)`` (euclidean method, one skip token) for a ``side x side`` grid."""
    alpha, beta, gamma = ratio, 2 * ratio, 8 * ratio
    r = torch.arange(side)
    pos = torch.stack([r[:, None].expand(side, side), r[None, :].expand(side, side)], 2).reshape(-1, 2)
    dis = (pos[:, None] - pos[None]).square().sum(2).float().sqrt().round()
    far = dis.abs() > alpha
    idx = dis.round().long()
    d = dis[far]
    y = torch.sign(d) * (
        alpha + torch.log(d.abs() / alpha) / math.log(gamma / alpha) * (beta - alpha)
    ).round().clip(max=beta)
    idx[far] = y.long()
    n = 2 * int(beta) + 1
    out = torch.full((side * side + 1, side * side + 1), n, dtype=torch.long)
    out[1:, 1:] = idx + int(beta)
    return out


class IRPE(nn.Module):
    """Contextual iRPE on keys with a shared table: ``bias[b,:,i,j] = q[b,0,i] . W[:, bucket[i,j]]``.

    Upstream quirk reproduced: without the compiled ``rpe_ops`` the pure-PyTorch path gathers with an
    index of head size 1, so only head 0's queries produce the bias, broadcast to every head."""

    def __init__(self, head_dim: int, num_buckets: int = 8) -> None:
        super().__init__()
        self.lookup_table_weight = nn.Parameter(torch.zeros(1, head_dim, num_buckets))

    def forward(self, q: Tensor, side: int) -> Tensor:
        table = q[:, :1] @ self.lookup_table_weight
        buckets = rpe_buckets(side).to(q.device)
        return torch.gather(table, 3, buckets[None, None].expand(q.shape[0], 1, -1, -1))


class RPEAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rpe_k = IRPE(dim // num_heads)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1) + self.rpe_k(q, int(math.sqrt(n)))
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RPEBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), RPEAttention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpatialEncoder(nn.Module):
    """TransformerMulti: per-patch transformer over its pixels; returns cls and pixel tokens."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.predictor_blocks = nn.ModuleList(RPEBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, scale: int, res: float) -> tuple[Tensor, Tensor]:
        bn, n, c = x.shape
        side = max(1, int(scale * 10 / res))
        x = torch.cat([self.cls_token.expand(bn, -1, -1), x], 1) + sincos_2d(c, side, res).to(x)
        for blk in self.predictor_blocks:
            x = blk(x)
        x = self.predictor_norm(x)
        return x[:, 0], x[:, 1:]


class LTAEAttention(nn.Module):
    """L-TAE multi-head attention with one learned query per head (keys ``Q``, ``fc1_k``)."""

    def __init__(self, n_head: int, d_k: int, d_in: int) -> None:
        super().__init__()
        self.n_head, self.d_k = n_head, d_k
        self.Q = nn.Parameter(torch.zeros(n_head, d_k))
        self.fc1_k = nn.Linear(d_in, n_head * d_k)

    def forward(self, v: Tensor) -> Tensor:
        b, t, d = v.shape
        k = self.fc1_k(v).view(b, t, self.n_head, self.d_k).permute(2, 0, 1, 3)
        attn = (torch.einsum("hk,hbtk->hbt", self.Q, k) / self.d_k**0.5).softmax(-1)
        vh = v.view(b, t, self.n_head, d // self.n_head).permute(2, 0, 1, 3)
        out = torch.einsum("hbt,hbtd->hbd", attn, vh)
        return out.permute(1, 0, 2).reshape(b, d)


class LTAE2d(nn.Module):
    def __init__(
        self, in_channels: int, dim: int, T: int, in_norm: bool, n_head: int = 16, d_k: int = 8
    ) -> None:
        super().__init__()
        widths = [in_channels, dim // 8, dim // 2, dim, 2 * dim, dim]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GroupNorm(4, b), nn.ReLU(), nn.Dropout(0.0)]
        self.inconv = nn.Sequential(*layers)
        self.n_head, self.T = n_head, T
        self.attention_heads = LTAEAttention(n_head, d_k, dim)
        if in_norm:
            self.in_norm = nn.GroupNorm(n_head, dim)
        self.out_norm = nn.GroupNorm(n_head, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GroupNorm(4, dim), nn.ReLU())

    def dates_encoding(self, dates: Tensor, dim: int) -> Tensor:
        d = dim // self.n_head
        denom = torch.pow(self.T, 2 * (torch.arange(d).float() // 2) / d).to(dates.device)
        table = dates[..., None] / denom
        table[..., 0::2] = table[..., 0::2].sin()
        table[..., 1::2] = table[..., 1::2].cos()
        return table.repeat(1, 1, self.n_head)

    def forward(self, x: Tensor, dates: Tensor) -> Tensor:
        b, t, c, h, w = x.shape
        out = self.inconv(x.permute(0, 3, 4, 1, 2).reshape(-1, c)).view(b * h * w, t, -1)
        if hasattr(self, "in_norm"):
            out = self.in_norm(out.transpose(1, 2)).transpose(1, 2)
        pos = dates[:, None, None, :].expand(b, h, w, t).reshape(b * h * w, t)
        out = out + self.dates_encoding(pos, out.shape[-1])
        out = self.out_norm(self.mlp(self.attention_heads(out)))
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)


class PatchLTAE(nn.Module):
    def __init__(self, in_channels: int, dim: int, T: int, in_norm: bool, reduce_scale: int) -> None:
        super().__init__()
        self.patch_embed = LTAE2d(in_channels, dim, T, in_norm)
        self.reduce_scale = reduce_scale
        self.pad_parameter = nn.Parameter(torch.tensor(0.0), requires_grad=False)

    def forward(self, x: Tensor, dates: Tensor, scale: int) -> Tensor:
        s = max(scale // self.reduce_scale, 1)
        x = self.patch_embed(x, dates)
        b, e, h, w = x.shape
        x = x.reshape(b, e, h // s, s, w // s, s).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b * (h // s) * (w // s), s * s, e)


class PatchMLP(nn.Module):
    """Key holder for the VHR projectors (PatchMLPMulti); forward not implemented here."""

    def __init__(self, in_chans: int, patch: int, dim: int) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_chans, dim, patch, stride=patch, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim),
            nn.LayerNorm(2 * dim),
            nn.GELU(),
            nn.Linear(2 * dim, dim),
            nn.LayerNorm(dim),
        )


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.wk, self.wv = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_learned = nn.Parameter(torch.zeros(1, 1, dim))
        self.rpe_k = IRPE(dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, n_modalities: int, scale: int) -> Tensor:
        b, n, c = x.shape
        nq = n // n_modalities + int((n % n_modalities) > 0)
        side = int(math.sqrt(nq))
        q = (self.q_learned.expand(b, nq, -1) + sincos_2d(c, side, scale).to(x)).reshape(
            b, nq, self.num_heads, -1
        )
        q = q.permute(0, 2, 1, 3)
        k = self.wk(x).reshape(b, n, self.num_heads, -1).permute(0, 2, 1, 3)
        v = self.wv(x).reshape(b, n, self.num_heads, -1).permute(0, 2, 1, 3)
        rpe = self.rpe_k(q, side)
        attn = q @ k.transpose(-2, -1) * self.scale
        attn = attn + torch.cat([rpe[..., :1], rpe[..., 1:].repeat(1, 1, 1, n_modalities)], -1)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, nq, c))


class CrossBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), CrossAttention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, n_modalities: int, scale: int) -> Tensor:
        x = self.attn(self.norm1(x), n_modalities, scale)  # no residual, as upstream
        return x + self.mlp(self.norm2(x))


class AnySat(nn.Module):
    """AnyModule (release path) with all eleven projectors, so the released file loads strictly."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        for name in sorted(LTAE) + sorted(MLP_PROJ):
            if name in LTAE:
                c, t, norm, reduce = LTAE[name]
                proj: nn.Module = PatchLTAE(c, embed_dim, t, norm, reduce)
            else:
                proj = PatchMLP(*MLP_PROJ[name], embed_dim)
            setattr(self, f"projector_{name}", proj)
        self.spatial_encoder = SpatialEncoder(embed_dim, depth, num_heads, mlp_ratio)
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias=True, eps=1e-6)
        self.blocks.append(CrossBlock(embed_dim, num_heads, mlp_ratio))

    def forward_tokens(
        self, x: Mapping[str, Tensor], patch_size: int, output: str = "patch"
    ) -> dict[str, Tensor]:
        """``x`` = ``{mod: (B, T, C, H, W), mod + '_dates': (B, T) day of year (0-based)}`` for L-TAE
        modalities (not MODIS); ``patch_size`` in metres (multiple of 10). Returns ``grid`` (B, D, n, n),
        ``tokens`` (B, 1+n*n, D; the 'all' output), ``tile`` (cls), ``patch`` (B, n, n, D) and, for
        ``output='dense'``, ``dense`` (B, H, W, 2D) for the first modality."""
        if output not in OUTPUTS:
            raise ValueError(f"anysat output={output!r} is invalid: allowed {OUTPUTS}")
        if patch_size % 10 or patch_size < 10:
            raise ValueError(f"anysat patch_size={patch_size!r} is invalid: allowed multiples of 10 m")
        scale = patch_size // 10
        mods = [m for m in x if not m.endswith(("_dates", "_mask"))]
        bad = [m for m in mods if m not in LTAE or m == "modis"]
        if bad or not mods:
            raise ValueError(
                f"anysat modalities {bad or mods} unsupported: allowed {sorted(set(LTAE) - {'modis'})}"
            )
        batch = x[mods[0]].shape[0]
        tokens, subs, n = [], None, 0
        for m in mods:
            if f"{m}_dates" not in x:
                raise ValueError(f"anysat input {m!r} needs {m + '_dates'!r} (day of year per frame)")
            tok = getattr(self, f"projector_{m}")(x[m], x[f"{m}_dates"], scale)
            if not n:
                n = tok.shape[0] // batch
                pos = sincos_2d(tok.shape[-1], int(math.sqrt(n)), scale).to(tok)
            cls, pix = self.spatial_encoder(tok, scale, INPUT_RES[m])
            if subs is None:
                subs = pix.reshape(batch, n, pix.shape[1], -1)
            tokens.append(cls.view(batch, n, -1) + pos[:, 1:])
        t = torch.cat([(self.cls_token + pos[:, :1]).expand(batch, -1, -1), *tokens], 1)
        for blk in self.blocks[:-1]:
            t = blk(t)
        t = self.blocks[-1](t, len(mods), scale)
        side = int(math.sqrt(n))
        patch = t[:, 1:].reshape(batch, side, side, -1)
        out = {
            "tokens": t,
            "tile": t[:, 0],
            "patch": patch,
            "grid": patch.permute(0, 3, 1, 2),
            "pooled": t[:, 0],
        }
        if output == "dense":
            s = int(math.sqrt(subs.shape[2]))
            dense = torch.cat([t[:, 1:, None].expand(-1, -1, subs.shape[2], -1), subs], 3)
            dense = dense.reshape(batch, side, side, s, s, -1).permute(0, 1, 3, 2, 4, 5)
            out["dense"] = dense.reshape(batch, side * s, side * s, -1)
        return out


def build(config: Mapping[str, Any]) -> AnySat:
    """Network from a config dict (``PUBLISHED[size]``; only ``base`` has released weights)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown anysat config keys {unknown}: allowed {sorted(_KEYS)}")
    return AnySat(**config)


def load(config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "") -> AnySat:
    """Build and strictly load ``ckpt['state_dict']`` (AnyModule layout, all projectors)."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix), "anysat")
