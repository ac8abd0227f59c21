"""THOR 1.0 ViT encoder (FM4CS; github.com/FM4CS/THOR v1.0.2 ``thor/models/thor_vit.py``, wrapped by
github.com/FM4CS/thor_terratorch_ext ``THOREncoderWrapper``), the ``*_alibi_patch_size_embed_v1`` builders.

* Every band has its own 1-channel patch conv stored at 16x16 (``ind_patch_embed.patch_embed.<band>``;
  S1 IW/EW share a conv through ``patch_embed_name``) and resampled to the FlexiViT patch size (8) on
  every forward by PI-resize (timm's ``resample_patch_embed``: pinv of the bicubic+antialias resize).
* Bands are averaged per spectral group ("subsetmean" over the members present); each group token
  gets ``cat(sincos_1d(patch_size*GSD/(ref_patch_size*min_GSD)), band_embed.<group>)``.
  Tokens are concatenated group by group (configured group order), each group row-major; no CLS.
* Positions enter only through ALiBi: bias = -slope_h * euclidean distance of the patch centres in
  metres divided by the largest patch footprint (patch_size*GSD) of the present groups, over the
  concatenated tokens of ALL groups (cross-group distances are geometric). Blocks are timm Blocks
  (pre-norm, LayerNorm eps 1e-6) with the bias as additive attention mask.
* The wrapper resizes each band bilinearly (align_corners=False, no antialias) to ground_cover/GSD
  pixels and returns the LAST block's tokens WITHOUT the final norm; rs-embed pools their mean and
  its grid merges the group maps by bilinear upsampling to the finest grid and averaging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eoembed.models.nets.common import layer_norm, load_strict, prepare_state_dict, sincos_1d, vit_blocks

#: Wrapper band order for S2 (terratorch names -> THOR names): B2,B3,B4,B5,B6,B7,B8,B8A,B11,B12.
S2_BANDS = (
    "S2:Blue",
    "S2:Green",
    "S2:Red",
    "S2:RE1",
    "S2:RE2",
    "S2:RE3",
    "S2:NIR",
    "S2:RE4",
    "S2:SWIR1",
    "S2:SWIR2",
)
#: Pretraining normalisation (reflectance/10000 scale) from thor_terratorch_ext THOR_NORMALIZATION_PARAMS.
S2_NORMALIZATION = {
    "S2:Blue": (0.176620, 0.264520),
    "S2:Green": (0.195923, 0.252949),
    "S2:Red": (0.213948, 0.259180),
    "S2:NIR": (0.308133, 0.226434),
    "S2:RE1": (0.263378, 0.272771),
    "S2:RE2": (0.300818, 0.248175),
    "S2:RE3": (0.313144, 0.235432),
    "S2:RE4": (0.320993, 0.223274),
    "S2:SWIR1": (0.221550, 0.171606),
    "S2:SWIR2": (0.175772, 0.156223),
    "S2:CoastAerosal": (0.182569, 0.282463),
    "S2:WaterVapor": (0.322589, 0.235857),
}
#: Wrapper names of Sentinel-1 VV, VH (terratorch ``VV``/``VH`` -> IW mode; IW and EW share the convs).
S1_BANDS = ("S1:IW-VV", "S1:IW-VH")
#: Pretraining normalisation of S1 in dB (sigma0 -> 10 log10), thor_terratorch_ext
#: THOR_NORMALIZATION_PARAMS ``S1:IW-VV`` / ``S1:IW-VH`` (= the ``_10`` m entries).
S1_NORMALIZATION = {"S1:IW-VV": (-12.9850, 5.0062), "S1:IW-VH": (-20.6958, 5.8688)}
_OLCI = [f"S3:Oa{i:02d}_reflectance" for i in range(1, 22)]
#: The ten spectral groups of the released models (thor_terratorch_ext ``_default_input_params``).
GROUPS: tuple[tuple[str, ...], ...] = (
    ("S2:Red", "S2:Green", "S2:Blue", "S2:NIR"),
    ("S2:RE1", "S2:RE2", "S2:RE3", "S2:RE4", "S2:SWIR1", "S2:SWIR2"),
    ("S2:CoastAerosal", "S2:WaterVapor"),
    ("S1:IW-VH", "S1:IW-VV", "S1:EW-VH", "S1:EW-VV"),
    ("S1:IW-HV", "S1:IW-HH", "S1:EW-HV", "S1:EW-HH"),
    tuple(_OLCI[:7]),
    tuple(_OLCI[7:14]),
    tuple(_OLCI[14:]),
    tuple(f"S3:S{i}_reflectance_an" for i in range(1, 7)),
    ("S3:S7_BT_in", "S3:S8_BT_in", "S3:S9_BT_in"),
)
_GSD = {
    "S2:Red": 10,
    "S2:Green": 10,
    "S2:Blue": 10,
    "S2:NIR": 10,
    "S2:RE1": 20,
    "S2:RE2": 20,
    "S2:RE3": 20,
    "S2:RE4": 20,
    "S2:SWIR1": 20,
    "S2:SWIR2": 20,
    "S2:CoastAerosal": 60,
    "S2:WaterVapor": 60,
    **{f"S1:{m}-{p}": 10 for m in ("IW", "EW") for p in ("VV", "VH", "HV", "HH")},
    **dict.fromkeys(_OLCI, 240),
    **{f"S3:S{i}_reflectance_an": 480 for i in range(1, 7)},
    **{f"S3:S{i}_BT_in": 960 for i in range(7, 10)},
}
#: Per-channel GSD (m), reference kernel size (px) and shared conv name (S1 IW/EW share one).
CHANNELS: dict[str, dict[str, Any]] = {
    name: {
        "GSD": gsd,
        "patch_size": 16,
        **({"patch_embed_name": "S1:" + name[-2:]} if name[:3] == "S1:" else {}),
    }
    for name, gsd in _GSD.items()
}
PUBLISHED = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3, band_embed_dim=32),
    "small": dict(embed_dim=384, depth=12, num_heads=6, band_embed_dim=64),
    "base": dict(embed_dim=768, depth=12, num_heads=12, band_embed_dim=128),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, band_embed_dim=256),
}
#: Shared by every size: ground cover 2880 m, FlexiViT patch 8, reference patch 4, all ten groups.
PUBLISHED_COMMON = dict(
    mlp_ratio=4.0, ground_cover=2880, patch_size=8, ref_patch_size=4, groups=GROUPS, channels=CHANNELS
)
#: Parts of a pretrain checkpoint the encoder does not build (after stripping ``encoder.``).
UNUSED = ("decoder_", "decode_", "ref_pos_embed", "pos_embed")
_KEYS = (
    "embed_dim",
    "depth",
    "num_heads",
    "band_embed_dim",
    "mlp_ratio",
    "ground_cover",
    "patch_size",
    "ref_patch_size",
    "groups",
    "channels",
)


def alibi_slopes(n: int) -> list[float]:
    """ALiBi head slopes (geometric for powers of two, interleaved otherwise)."""

    def power_of_2(m: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start**i for i in range(m)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


class IndPatchEmbed(nn.Module):
    """Holder of the per-band convs under ``patch_embed.<conv name>`` (original key layout)."""

    def __init__(self, channels: Mapping[str, Mapping[str, Any]], embed_dim: int) -> None:
        super().__init__()
        convs: dict[str, nn.Conv2d] = {}
        for name, params in channels.items():
            conv = params.get("patch_embed_name", name)
            if conv not in convs:
                k = params["patch_size"]
                convs[conv] = nn.Conv2d(1, embed_dim, k, stride=k)
        self.patch_embed = nn.ModuleDict(convs)


class ThorEncoder(nn.Module):
    """THOR v1 encoder with ALiBi and patch-size embedding (``cls_token_type='pooled'``)."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        band_embed_dim: int,
        mlp_ratio: float = 4.0,
        ground_cover: int = 2880,
        patch_size: int = 8,
        ref_patch_size: int = 4,
        groups: Sequence[Sequence[str]] = GROUPS,
        channels: Mapping[str, Mapping[str, Any]] = CHANNELS,
    ) -> None:
        super().__init__()
        unknown = sorted({b for g in groups for b in g} - set(channels))
        if unknown:
            raise ValueError(f"thor groups name channels {unknown} absent from channels")
        self.groups = {f"group{i}": list(g) for i, g in enumerate(groups)}
        # like the original's validate_group: channels outside every group are dropped
        self.channels = {b: dict(channels[b]) for b in channels if any(b in g for g in groups)}
        self.ground_cover, self.patch_size, self.ref_patch_size = ground_cover, patch_size, ref_patch_size
        self.min_gsd = min(p["GSD"] for p in self.channels.values())
        self.pos_dim = embed_dim - band_embed_dim
        self.ind_patch_embed = IndPatchEmbed(self.channels, embed_dim)
        groups_sincos = sincos_1d(band_embed_dim, torch.arange(len(groups), dtype=torch.float32))
        self.band_embed = nn.ParameterDict(
            {g: nn.Parameter(groups_sincos[i], requires_grad=False) for i, g in enumerate(self.groups)}
        )
        self.register_buffer("encoder_slopes", torch.tensor(alibi_slopes(num_heads)))
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = layer_norm()(embed_dim)

    def _embed_band(self, name: str, x: Tensor) -> Tensor:
        from timm.layers import resample_patch_embed

        conv = self.ind_patch_embed.patch_embed[self.channels[name].get("patch_embed_name", name)]
        p = self.patch_size
        weight = conv.weight if conv.kernel_size == (p, p) else resample_patch_embed(conv.weight, [p, p])
        return F.conv2d(x, weight, conv.bias, stride=p).flatten(2).transpose(1, 2)

    def _alibi(self, layout: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device) -> Tensor:
        points = []
        for n, ps, gsd in layout:
            line = (torch.arange(n, dtype=dtype, device=device) * ps + ps / 2) * gsd
            points.append(torch.cartesian_prod(line, line))
        pts = torch.cat(points) / max(ps * gsd for _, ps, gsd in layout)
        return -torch.cdist(pts, pts)[None] * self.encoder_slopes.to(dtype)[:, None, None]

    def forward_bands(self, bands: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Run on ``{THOR band name: (B, 1, ground_cover/GSD, same)}``; returns ``tokens`` (last block,
        no final norm), ``tokens_final_norm``, ``group_grids`` (list of (B, D, n, n)), ``grid`` (group
        maps upsampled bilinearly to the finest grid and averaged), ``pooled`` (token mean)."""
        unknown = sorted(set(bands) - set(self.channels))
        if unknown:
            raise ValueError(f"thor bands {unknown} unknown: allowed {sorted(self.channels)}")
        parts, layout = [], []
        for gname, members in self.groups.items():
            present = [m for m in members if m in bands]
            if not present:
                continue
            gsd, p = self.channels[present[0]]["GSD"], self.patch_size
            for m in present:
                if (
                    bands[m].shape[-1] * gsd != self.ground_cover
                    or bands[m].shape[-2] * gsd != self.ground_cover
                ):
                    raise ValueError(
                        f"thor band {m} has shape {tuple(bands[m].shape)}: expected "
                        f"{self.ground_cover // gsd} px (ground_cover {self.ground_cover} m / GSD {gsd} m)"
                    )
            tok = torch.stack([self._embed_band(m, bands[m]) for m in present], -1).mean(-1)
            n = int(round(tok.shape[1] ** 0.5))
            ps = self.ground_cover // n // gsd
            if ps * gsd * n != self.ground_cover:
                raise ValueError(
                    f"thor: patch size {p} does not tile ground_cover {self.ground_cover} at GSD {gsd}"
                )
            size = torch.full(
                (n * n,), ps * gsd / (self.ref_patch_size * self.min_gsd), dtype=tok.dtype, device=tok.device
            )
            aux = torch.cat(
                [sincos_1d(self.pos_dim, size).to(tok.dtype), self.band_embed[gname].expand(n * n, -1)], -1
            )
            parts.append(tok + aux)
            layout.append((n, ps, gsd))
        if not parts:
            raise ValueError(f"thor: no input band belongs to a group; allowed {sorted(self.channels)}")
        t = torch.cat(parts, 1)
        bias = self._alibi(layout, t.dtype, t.device).expand(t.shape[0], -1, -1, -1)
        for blk in self.blocks:
            t = blk(t, attn_mask=bias)
        grids, start = [], 0
        for n, _, _ in layout:
            grids.append(t[:, start : start + n * n].transpose(1, 2).reshape(t.shape[0], -1, n, n))
            start += n * n
        top = max(n for n, _, _ in layout)
        merged = torch.stack(
            [g if g.shape[-1] == top else F.interpolate(g, size=(top, top), mode="bilinear") for g in grids]
        ).mean(0)
        return {
            "tokens": t,
            "tokens_final_norm": self.norm(t),
            "group_grids": grids,
            "grid": merged,
            "pooled": t.mean(1),
        }

    def preprocess(self, x: Tensor, bands: Sequence[str] = S2_BANDS) -> dict[str, Tensor]:
        """The wrapper's step: band ``i`` of ``x`` resized bilinearly to ground_cover/GSD pixels."""
        if x.ndim != 4 or x.shape[1] != len(bands):
            raise ValueError(
                f"thor input x has shape {tuple(x.shape)}: expected (B, {len(bands)}, H, W) "
                f"for bands {list(bands)}"
            )
        out = {}
        for i, name in enumerate(bands):
            if name not in self.channels:
                raise ValueError(f"thor band {name!r} unknown: allowed {sorted(self.channels)}")
            side = int(self.ground_cover / self.channels[name]["GSD"])
            out[name] = F.interpolate(x[:, [i]], (side, side), mode="bilinear")
        return out

    def forward_tokens(self, x: Tensor, bands: Sequence[str] = S2_BANDS) -> dict[str, Tensor]:
        """Normalised bands stacked as ``bands`` (any common size) -> :meth:`forward_bands` outputs."""
        return self.forward_bands(self.preprocess(x, bands))


def build(config: Mapping[str, Any]) -> ThorEncoder:
    """Network from a config dict (``PUBLISHED[size] | PUBLISHED_COMMON`` for the released models)."""
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown thor config keys {unknown}: allowed {sorted(_KEYS)}")
    return ThorEncoder(**config)


def load(
    config: Mapping[str, Any], state_dict: Mapping[str, Tensor], prefix: str = "", ignore: Sequence[str] = ()
) -> ThorEncoder:
    """Build and strictly load; for a released pretrain file pass ``prefix="encoder."`` and
    ``ignore=UNUSED`` (upstream loads it with ``strict=False`` and these ignore patterns)."""
    return load_strict(build(config), prepare_state_dict(state_dict, prefix=prefix, ignore=ignore), "thor")
