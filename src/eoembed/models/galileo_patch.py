"""Building blocks of the Galileo encoder: flexible patch projection and fixed encodings.

These helpers re-implement, from the published description of Galileo
(Tseng et al. 2025, github.com/nasaharvest/galileo), the pieces that do not hold
learned transformer weights:

* :class:`FlexiPatchProjection` -- a strided convolution whose kernel, stored at the
  maximum patch size, is resampled to smaller patch sizes with the FlexiViT
  pseudo-inverse rule.
* :func:`sincos_1d`, :func:`sincos_2d` and :func:`month_table` -- the fixed sinusoidal
  encodings of time step, spatial position (scaled by ground sampling distance) and
  calendar month.
* :func:`coarsen_masks` and :class:`TransformerBlock` (pre-norm ViT block whose parameter
  names match the published checkpoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Encode scalar positions with sines and cosines, Galileo style.

    Frequency ``k`` (``0 <= k < dim / 2``) is ``10000 ** (-k / (2 * dim))``. Note the
    ``2 * dim`` denominator: this is what the published checkpoint was trained with
    (it differs from the usual MAE ``dim / 2``).

    Args:
        dim: Output width; must be even.
        positions: Positions of any shape; flattened to ``[M]``.

    Returns:
        Tensor ``[M, dim]``: ``[sin(p * w_0..w_{dim/2-1}), cos(p * w_0..w_{dim/2-1})]``.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    exponents = torch.arange(dim // 2, device=positions.device, dtype=torch.float32) / (2.0 * dim)
    freqs = 1.0 / (10000.0**exponents)
    angles = positions.reshape(-1).to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, height: int, width: int, scale: float, device: torch.device | None = None) -> Tensor:
    """Sin-cos encoding of a ``height x width`` token grid, positions scaled by ``scale``.

    The token at row ``r`` and column ``c`` gets
    ``[sincos_1d(dim/2, c * scale), sincos_1d(dim/2, r * scale)]`` (column first).
    ``scale`` is the ground size of one token divided by the 10 m base GSD, i.e.
    ``patch_size * input_resolution_m / 10``.

    Args:
        dim: Output width; must be divisible by 4.
        height: Number of token rows.
        width: Number of token columns.
        scale: Multiplier applied to the integer grid coordinates.
        device: Device of the result.

    Returns:
        Tensor ``[height, width, dim]``.
    """
    rows = torch.arange(height, device=device, dtype=torch.float32) * scale
    cols = torch.arange(width, device=device, dtype=torch.float32) * scale
    col_emb = sincos_1d(dim // 2, cols)  # [W, dim/2]
    row_emb = sincos_1d(dim // 2, rows)  # [H, dim/2]
    return torch.cat(
        [col_emb[None, :, :].expand(height, -1, -1), row_emb[:, None, :].expand(-1, width, -1)],
        dim=-1,
    )


def month_table(dim: int) -> Tensor:
    """Fixed month encoding: month ``m`` (0 = January) -> ``[sin(a)]*dim/2 + [cos(a)]*dim/2``.

    ``a = 2 * pi * m / 12``; every half of the vector repeats the same value.

    Args:
        dim: Output width; must be even.

    Returns:
        Tensor ``[12, dim]``.
    """
    angles = torch.arange(12, dtype=torch.float32) * (2 * math.pi / 12)
    half = dim // 2
    sin, cos = torch.sin(angles)[:, None], torch.cos(angles)[:, None]
    return torch.cat([sin.expand(12, half), cos.expand(12, half)], dim=1)


class FlexiPatchProjection(nn.Module):
    """Patch projection (non-overlapping strided convolution) usable at any patch size.

    The kernel is stored at ``max_patch_size``. For a smaller patch size ``p`` the kernel
    is replaced by ``pinv(R) @ w`` where ``R`` maps a flattened ``max x max`` image to its
    bicubic, antialiased resize to ``p x p`` (FlexiViT "PI-resize"): the resampled kernel
    applied to a resized patch approximates the original kernel on the full patch.

    Attributes:
        proj: ``nn.Conv2d`` holding the weights (state-dict keys ``proj.weight``/``proj.bias``).
        max_patch_size: Side of the stored kernel.
    """

    def __init__(self, in_channels: int, embed_dim: int, max_patch_size: int) -> None:
        """Create the projection.

        Args:
            in_channels: Bands in the channel group.
            embed_dim: Token width.
            max_patch_size: Side of the stored kernel.
        """
        super().__init__()
        self.max_patch_size = max_patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=max_patch_size, stride=max_patch_size)
        self._pinv_cache: dict[int, Tensor] = {}

    @staticmethod
    def resize_matrix(src: int, dst: int) -> Tensor:
        """Matrix ``[src*src, dst*dst]`` whose row ``i`` is the resize of the ``i``-th basis image."""
        basis = torch.eye(src * src, dtype=torch.float32).reshape(src * src, 1, src, src)
        resized = F.interpolate(basis, size=(dst, dst), mode="bicubic", antialias=True, align_corners=False)
        return resized.reshape(src * src, dst * dst)

    def _pinv(self, patch_size: int) -> Tensor:
        if patch_size not in self._pinv_cache:
            matrix = self.resize_matrix(self.max_patch_size, patch_size)
            self._pinv_cache[patch_size] = torch.linalg.pinv(matrix)  # [p*p, max*max]
        return self._pinv_cache[patch_size]

    def kernel(self, patch_size: int) -> Tensor:
        """Return the convolution kernel ``[D, C, p, p]`` for ``patch_size``."""
        weight = self.proj.weight
        if patch_size == self.max_patch_size:
            return weight
        if not 1 <= patch_size <= self.max_patch_size:
            raise ValueError(f"patch_size must be in [1, {self.max_patch_size}], got {patch_size}")
        out_c, in_c = weight.shape[:2]
        pinv = self._pinv(patch_size).to(device=weight.device, dtype=weight.dtype)
        flat = weight.reshape(out_c * in_c, -1) @ pinv.T
        return flat.reshape(out_c, in_c, patch_size, patch_size)

    def forward(self, x: Tensor, patch_size: int) -> Tensor:
        """Project ``x`` ``[N, C, H, W]`` to tokens ``[N, D, H/p, W/p]``."""
        return F.conv2d(x, self.kernel(patch_size), self.proj.bias, stride=patch_size)


def coarsen_masks(mask: Tensor, patch_size: int) -> Tensor:
    """Mark a pixel-resolution mask ``[B, H, W, ...]`` masked over a whole patch if any pixel is."""
    b, hh, ww = mask.shape[:3]
    p, rest = patch_size, mask.shape[3:]
    if hh % p or ww % p:
        raise ValueError(f"H and W ({hh}, {ww}) must be divisible by patch_size {p}")
    blocks = mask.reshape(b, hh // p, p, ww // p, p, *rest).amax(dim=(2, 4))
    return blocks.repeat_interleave(p, 1).repeat_interleave(p, 2)


class _Attention(nn.Module):
    """Multi-head self-attention over tokens; ``valid`` [B, N] marks keys that may be attended."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        b, n, d = x.shape
        heads = self.num_heads
        q, k, v = (lin(x).reshape(b, n, heads, -1).transpose(1, 2) for lin in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.mlp = _Attention(dim, num_heads), _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), valid)
        return x + self.mlp(self.norm2(x))
