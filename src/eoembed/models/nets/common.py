"""Helpers shared by the re-implemented research networks of the model zoo.

Every network in :mod:`eoembed.models.nets` loads a checkpoint under the ORIGINAL key names.
Loading is strict and explicit: a known wrapper prefix (e.g. ``module.``) is stripped only when
the caller names it, parts of a checkpoint the embedding never uses (MAE decoders, mask tokens)
are dropped only when they are listed per model, and anything else that does not match the
architecture key by key and shape by shape raises :class:`StateDictError` naming every problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

import torch
from torch import Tensor, nn

from eoembed.errors import EoembedError


class StateDictError(EoembedError, ValueError):
    """A state dict does not match a network: lists missing, unexpected and mis-shaped keys."""

    def __init__(self, model: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> None:
        self.model, self.missing, self.unexpected, self.shapes = model, missing, unexpected, shapes
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        super().__init__(f"state dict does not match {model}: " + "; ".join(parts))


def prepare_state_dict(
    state_dict: Mapping[str, Tensor], *, prefix: str = "", ignore: Iterable[str] = ()
) -> dict[str, Tensor]:
    """Strip ``prefix`` from every key and drop keys starting with one of ``ignore``.

    Args:
        state_dict: Checkpoint tensors under the original names.
        prefix: Wrapper prefix every key must carry (``""`` = none); a key without it is an error.
        ignore: Key prefixes of checkpoint parts the network deliberately does not build
            (checked AFTER ``prefix`` is stripped), e.g. ``("decoder_", "mask_token")``.

    Raises:
        StateDictError: A key lacks ``prefix``.
    """
    ignore = tuple(ignore)
    out: dict[str, Tensor] = {}
    lacking = []
    for key, value in state_dict.items():
        if prefix:
            if not key.startswith(prefix):
                lacking.append(key)
                continue
            key = key[len(prefix) :]
        if ignore and key.startswith(ignore):
            continue
        out[key] = value
    if lacking:
        raise StateDictError(f"prefix {prefix!r}", [], sorted(lacking)[:20], [])
    return out


def subtree(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix`` (e.g. ``"encoder."`` of an encoder-decoder checkpoint), prefix removed.

    Unlike ``prepare_state_dict(prefix=...)`` (a wrapper prefix on EVERY key), this selects one
    sub-module of a larger checkpoint; the other entries are deliberately left out.

    Raises:
        StateDictError: No key starts with ``prefix``.
    """
    out = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not out:
        raise StateDictError(f"sub-module {prefix!r}", [prefix + "*"], [], [])
    return out


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], name: str) -> nn.Module:
    """Load ``state_dict`` into ``model`` requiring identical keys and shapes; return it in eval mode."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k}: got {tuple(state_dict[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    )
    if missing or unexpected or shapes:
        raise StateDictError(name, missing, unexpected, shapes)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()}, strict=True)
    return model.eval()


def layer_norm(eps: float = 1e-6) -> type[nn.LayerNorm]:
    """A LayerNorm factory with the given epsilon (MAE-family ViTs use 1e-6)."""
    return partial(nn.LayerNorm, eps=eps)  # type: ignore[return-value]


def vit_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6
) -> nn.ModuleList:
    """``depth`` timm pre-norm transformer blocks (keys ``norm1/attn.qkv/attn.proj/norm2/mlp.fc1/fc2``)."""
    from timm.models.vision_transformer import Block

    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=layer_norm(eps))
        for _ in range(depth)
    )


def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """MAE 1-D sin-cos embedding ``(M, dim)`` of positions ``pos``: ``[sin(p*w), cos(p*w)]`` with
    ``w_i = 10000^(-2i/dim)`` computed in float32 (as the ``*_torch`` variants of MAE-derived repos)."""
    omega = torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / (dim / 2.0)
    out = pos.reshape(-1).float()[:, None] * (1.0 / 10000**omega)[None]
    return torch.cat([out.sin(), out.cos()], 1)


def tokens_to_grid(tokens: Tensor, h: int, w: int) -> Tensor:
    """Row-major patch tokens ``(B, h*w, D)`` -> grid ``(B, D, h, w)``."""
    b, n, d = tokens.shape
    if n != h * w:
        raise ValueError(f"tokens: {n} patch tokens cannot form a {h}x{w} grid")
    return tokens.transpose(1, 2).reshape(b, d, h, w)


def check_input(x: Tensor, channels: int, size: int | tuple[int, int] | None, model: str) -> None:
    """Raise a ValueError naming the field when ``x`` is not ``(B, channels, H, W)`` at ``size``."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{model} input x has shape {tuple(x.shape)}: expected (B, {channels}, H, W)")
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) != hw:
            raise ValueError(
                f"{model} input x has spatial size {tuple(x.shape[-2:])}: "
                f"the network was built for img_size {hw}"
            )
