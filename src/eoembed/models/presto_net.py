"""Self-contained re-implementation of the Presto pixel time-series encoder.

Presto (Tseng et al., 2023, github.com/nasaharvest/presto, MIT) embeds one pixel's monthly
time series of Sentinel-1, Sentinel-2, ERA5, SRTM, NDVI and Dynamic World values into a
128-d vector. Each channel group at each timestep becomes one token (SRTM: one token for the
whole series), tokens flagged as missing are dropped, a location token is prepended, and a
small transformer followed by mean pooling produces the embedding.

This module only depends on torch and numpy and loads the published checkpoint's
``encoder.*`` tensors under their original names.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: The 17 input channels, in the order the checkpoint expects.
CHANNELS: tuple[str, ...] = (
    "VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
    "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI",
)
#: Channel groups (one token each) in the original order; this order fixes which row of the
#: learned channel embedding each group uses (row 9 is Dynamic World).
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {
    "S1": ("VV", "VH"),
    "S2_RGB": ("B2", "B3", "B4"),
    "S2_Red_Edge": ("B5", "B6", "B7"),
    "S2_NIR_10m": ("B8",),
    "S2_NIR_20m": ("B8A",),
    "S2_SWIR": ("B11", "B12"),
    "ERA5": ("temperature_2m", "total_precipitation"),
    "SRTM": ("elevation", "slope"),
    "NDVI": ("NDVI",),
}
GROUP_INDICES: dict[str, list[int]] = {
    name: [CHANNELS.index(c) for c in chans] for name, chans in CHANNEL_GROUPS.items()
}
S2_CHANNELS: tuple[str, ...] = CHANNELS[2:12]
DW_NUM_CLASSES = 9
DW_MISSING = 9  #: Dynamic World value meaning "no class available".


def sinusoid_table(num_positions: int, dim: int, period: float = 1000.0) -> Tensor:
    """Standard transformer sin/cos table ``[num_positions, dim]`` (sin on even dims)."""
    pos = np.arange(num_positions, dtype=np.float64)[:, None]
    rate = np.power(period, 2 * (np.arange(dim) // 2) / dim)
    angles = pos / rate
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32)


def month_table(dim: int) -> Tensor:
    """Cyclic month table ``[12, dim]``: sin of the month angle, then cos, each dim/2 wide."""
    angle = np.arange(12, dtype=np.float64) * 2 * np.pi / 12
    half = dim // 2
    table = np.concatenate([np.repeat(np.sin(angle)[:, None], half, 1),
                            np.repeat(np.cos(angle)[:, None], half, 1)], axis=1)
    return torch.tensor(table, dtype=torch.float32)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (timm parameter names)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attend: Tensor | None = None) -> Tensor:
        """Attend over tokens; ``attend`` is an optional bool ``[B, N]`` of valid keys."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn_mask = None if attend is None else attend[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block (attention + GELU MLP, residual connections)."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, mlp_hidden)

    def forward(self, x: Tensor, attend: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), attend)
        return x + self.mlp(self.norm2(x))


class PrestoEncoder(nn.Module):
    """The Presto encoder, returning the pooled embedding (the original's ``eval_task=True``).

    Args:
        dim: Token width (128 for the published model).
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_hidden: Hidden width of the block MLPs.
        max_len: Longest supported time series (rows of the positional table).
        month_dim: Width of the month part of each token's additive embedding.
        channel_dim: Width of the channel-group part; the positional part gets the rest.
    """

    def __init__(self, dim: int = 128, depth: int = 2, num_heads: int = 8, mlp_hidden: int = 512,
                 max_len: int = 24, month_dim: int = 32, channel_dim: int = 32) -> None:
        super().__init__()
        self.eo_patch_embed = nn.ModuleDict(
            {g: nn.Linear(len(idx), dim) for g, idx in GROUP_INDICES.items()})
        self.dw_embed = nn.Embedding(DW_NUM_CLASSES + 1, dim)
        self.latlon_embed = nn.Linear(3, dim)
        self.blocks = nn.ModuleList([_Block(dim, num_heads, mlp_hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        pos_dim = dim - month_dim - channel_dim
        self.pos_embed = nn.Parameter(sinusoid_table(max_len, pos_dim)[None], requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(month_dim), freeze=True)
        self.channel_embed = nn.Embedding(len(CHANNEL_GROUPS) + 1, channel_dim)

    @staticmethod
    def token_missing(mask: Tensor, dynamic_world: Tensor) -> Tensor:
        """Bool ``[B, n_tokens]``: which tokens are dropped, in token order.

        A group token is missing when any of its channels is masked; the single SRTM token
        looks at the first timestep only; a Dynamic World token is missing when its class is 9.
        """
        parts = []
        for name, idx in GROUP_INDICES.items():
            steps = slice(0, 1) if name == "SRTM" else slice(None)
            parts.append(mask[:, steps, idx].amax(dim=-1) > 0)
        parts.append(dynamic_world == DW_MISSING)
        return torch.cat(parts, dim=1)

    @staticmethod
    def _months(month: Tensor | int, batch: int, steps: int, device: torch.device) -> Tensor:
        month = torch.as_tensor(month, dtype=torch.long, device=device)
        if month.numel() and (month.min() < 0 or month.max() > 11):
            raise ValueError("month values must lie in 0..11 (0 = January)")
        if month.dim() == 2:
            return month
        start = month.expand(batch) if month.dim() == 0 else month
        return (start[:, None] + torch.arange(steps, device=device)) % 12

    @staticmethod
    def _unit_sphere(latlons: Tensor) -> Tensor:
        lat, lon = torch.deg2rad(latlons[:, 0]), torch.deg2rad(latlons[:, 1])
        return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon),
                            torch.sin(lat)], dim=-1)

    def forward(self, x: Tensor, dynamic_world: Tensor, latlons: Tensor, mask: Tensor | None = None,
                month: Tensor | int = 0) -> Tensor:
        """Embed a batch of pixel time series.

        Args:
            x: Normalised inputs ``[B, T, 17]`` in :data:`CHANNELS` order.
            dynamic_world: Dynamic World classes ``[B, T]`` (long, 9 = missing).
            latlons: ``[B, 2]`` as ``[lat, lon]`` in degrees.
            mask: ``[B, T, 17]``, 1 = missing; ``None`` means nothing is missing.
            month: Start month ``[B]`` (or an int), or per-timestep months ``[B, T]``; 0 = January.

        Returns:
            ``[B, dim]`` embeddings. Samples may drop different numbers of tokens: the batch is
            then padded and padded keys are excluded from attention and pooling, which is
            mathematically identical to running each sample alone.
        """
        b, t, _ = x.shape
        if t > self.pos_embed.shape[1]:
            raise ValueError(f"at most {self.pos_embed.shape[1]} timesteps are supported, got {t}")
        if mask is None:
            mask = torch.zeros_like(x)
        month_emb = self.month_embed(self._months(month, b, t, x.device))
        pos_emb = self.pos_embed[0, :t].expand(b, t, -1)
        tokens = []
        for gi, (name, idx) in enumerate(GROUP_INDICES.items()):
            chan = self.channel_embed.weight[gi].expand(b, t, -1)
            emb = self.eo_patch_embed[name](x[:, :, idx])
            if name == "SRTM":
                extra = torch.cat([torch.zeros_like(month_emb[:, :1]), chan[:, :1],
                                   torch.zeros_like(pos_emb[:, :1])], dim=-1)
                tokens.append(emb[:, :1] + extra)
            else:
                tokens.append(emb + torch.cat([month_emb, chan, pos_emb], dim=-1))
        dw_chan = self.channel_embed.weight[len(GROUP_INDICES)].expand(b, t, -1)
        dw_extra = torch.cat([month_emb, dw_chan, pos_emb], dim=-1)
        tokens.append(self.dw_embed(dynamic_world) + dw_extra)
        tokens_all = torch.cat(tokens, dim=1)

        # drop missing tokens: stable sort moves kept tokens first, in their original order
        missing = self.token_missing(mask, dynamic_world)
        order = torch.sort(missing.to(torch.uint8), dim=1, stable=True).indices
        n_kept = (~missing).sum(dim=1)
        width = int(n_kept.max()) if b else 0
        order = order[:, :width]
        kept = torch.gather(tokens_all, 1, order[..., None].expand(-1, -1, tokens_all.shape[-1]))
        loc = self.latlon_embed(self._unit_sphere(latlons.to(x.dtype)))[:, None]
        h = torch.cat([loc, kept], dim=1)

        # equal counts (the original's only case): no padding, plain mean over all tokens
        valid = torch.arange(width + 1, device=x.device)[None] <= n_kept[:, None]
        attend = None if bool(valid.all()) else valid
        for blk in self.blocks:
            h = blk(h, attend)
        if attend is None:
            return self.norm(h.mean(dim=1))
        w = valid.to(h.dtype)[..., None]
        return self.norm((h * w).sum(dim=1) / w.sum(dim=1))


def encoder_from_state_dict(state_dict: dict[str, Tensor], num_heads: int = 8) -> PrestoEncoder:
    """Build a :class:`PrestoEncoder` from a full Presto checkpoint and load it strictly.

    Hyper-parameters are read from tensor shapes (the head count is not visible in shapes and
    defaults to the published 8). Only ``encoder.*`` keys are used; ``decoder.*`` is ignored.

    Raises:
        ValueError: If encoder keys are missing or unexpected, or a shape differs.
    """
    enc = {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
    try:
        dim = enc["eo_patch_embed.S1.weight"].shape[0]
        depth = len({k.split(".")[1] for k in enc if k.startswith("blocks.")})
        model = PrestoEncoder(
            dim=dim, depth=depth, num_heads=num_heads,
            mlp_hidden=enc["blocks.0.mlp.fc1.weight"].shape[0],
            max_len=enc["pos_embed"].shape[1], month_dim=enc["month_embed.weight"].shape[1],
            channel_dim=enc["channel_embed.weight"].shape[1])
    except KeyError as err:
        raise ValueError(f"not a Presto checkpoint: missing key encoder.{err.args[0]}") from err
    own = model.state_dict()
    missing = sorted(set(own) - set(enc))
    unexpected = sorted(set(enc) - set(own))
    if missing or unexpected:
        raise ValueError("Presto encoder keys do not match: "
                         f"missing={['encoder.' + k for k in missing]} "
                         f"unexpected={['encoder.' + k for k in unexpected]}")
    bad = [f"encoder.{k}: {tuple(enc[k].shape)} != {tuple(v.shape)}"
           for k, v in own.items() if enc[k].shape != v.shape]
    if bad:
        raise ValueError("Presto encoder shape mismatch: " + "; ".join(bad))
    model.load_state_dict(enc, strict=True)
    return model.eval()


def encode(model: PrestoEncoder, x, dynamic_world, latlons, mask, month,
           batch_size: int = 4096) -> np.ndarray:
    """Embed many pixels, batching samples that drop the same number of tokens together.

    The original Presto requires equal masked-token counts within a forward batch; this
    groups samples by that count (so no padding is ever needed), runs each group in chunks of
    ``batch_size`` under ``eval``/``no_grad`` and returns rows in the input order.

    Returns:
        float32 array ``[N, dim]``.
    """
    device = next(model.parameters()).device
    x_t, m_t = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    dw_t = torch.as_tensor(dynamic_world, dtype=torch.long)
    ll_t = torch.as_tensor(latlons, dtype=torch.float32)
    mo_t = torch.as_tensor(month, dtype=torch.long)
    if mo_t.dim() == 0:
        mo_t = mo_t.expand(x_t.shape[0])
    counts = model.token_missing(m_t, dw_t).sum(dim=1)
    out = torch.empty(x_t.shape[0], model.norm.normalized_shape[0])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for c in torch.unique(counts):
            rows = torch.nonzero(counts == c).flatten()
            for chunk in torch.split(rows, batch_size):
                out[chunk] = model(x_t[chunk].to(device), dw_t[chunk].to(device),
                                   ll_t[chunk].to(device), m_t[chunk].to(device),
                                   mo_t[chunk].to(device)).float().cpu()
    model.train(was_training)
    return out.numpy()


def layout_inputs(s2: np.ndarray, ndvi: np.ndarray, missing: np.ndarray, months: np.ndarray,
                  latlons: np.ndarray) -> dict[str, np.ndarray]:
    """Place already-normalised Sentinel-2 channels into Presto's 17-channel layout.

    The framework (:mod:`eoembed.prep`) has selected, scaled and normalised the bands and derived
    NDVI as the model card declares; this only arranges them: S2 in channels 2..11, NDVI in 16,
    S1 / ERA5 / SRTM masked (not fetched), Dynamic World "missing".

    Args:
        s2: ``[N, T, 10]`` normalised B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12.
        ndvi: ``[N, T]`` NDVI.
        missing: ``[N, T]`` bool, True where the pixel-timestep is missing (every S2 channel and
            NDVI are then masked; the encoder drops those tokens).
        months: ``[T]`` or ``[N, T]`` month of each timestep (0 = January), consecutive months.
        latlons: ``[N, 2]`` as ``[lat, lon]`` degrees.

    Returns:
        ``x`` float32 ``[N, T, 17]`` (0 where masked), ``mask`` float32 ``[N, T, 17]`` (1 = missing),
        ``dynamic_world`` int64 ``[N, T]``, ``latlons`` float32 ``[N, 2]``, ``month`` int64 ``[N]``.
    """
    s2 = np.asarray(s2, dtype=np.float32)
    n, t, c = s2.shape
    if c != len(S2_CHANNELS) or np.shape(ndvi) != (n, t) or np.shape(missing) != (n, t):
        raise ValueError(f"s2 must be [N, T, {len(S2_CHANNELS)}] with ndvi and missing [N, T]; got "
                         f"{s2.shape}, {np.shape(ndvi)}, {np.shape(missing)}")
    x = np.zeros((n, t, len(CHANNELS)), np.float32)
    mask = np.ones((n, t, len(CHANNELS)), np.float32)
    s2_idx = [CHANNELS.index(b) for b in S2_CHANNELS] + [CHANNELS.index("NDVI")]
    miss = np.asarray(missing, dtype=bool)
    x[:, :, s2_idx] = np.where(miss[..., None], 0.0, np.concatenate([s2, np.asarray(ndvi)[..., None]], -1))
    mask[:, :, s2_idx] = miss[..., None].astype(np.float32)
    months = np.broadcast_to(np.asarray(months, dtype=np.int64), (n, t))
    if t and not np.array_equal(months, (months[:, :1] + np.arange(t)) % 12):
        raise ValueError("months must be consecutive calendar months (0 = January)")
    if months.size and (months.min() < 0 or months.max() > 11):
        raise ValueError("months must lie in 0..11 (0 = January)")
    ll = np.asarray(latlons, dtype=np.float32)
    if ll.shape != (n, 2):
        raise ValueError(f"latlons must be [N, 2] as [lat, lon], got {ll.shape}")
    return {"x": x, "mask": mask, "dynamic_world": np.full((n, t), DW_MISSING, np.int64),
            "latlons": ll, "month": months[:, 0].copy() if t else np.zeros(n, np.int64)}
