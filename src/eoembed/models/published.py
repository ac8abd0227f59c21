"""Loading a maintained library's network from its published weights file, for the library-backed
models (TorchGeo, timm, open_clip): the key layout is checked before any tensor is loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from eoembed.errors import WeightsError

__all__ = ["TIMM_LAYOUT", "check_keys", "load_published"]

TIMM_LAYOUT = "plain state dict with timm key names, no prefix"


def check_keys(expected: dict, state: dict, optional: set[str], what: str, layout: str = TIMM_LAYOUT) -> None:
    """Refuse a checkpoint whose keys or shapes differ from the network's (beyond ``optional``)."""
    missing = sorted(set(expected) - set(state) - optional)
    extra = sorted(set(state) - set(expected) - optional)
    shapes = sorted(f"{k}: {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in expected
                    if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or extra or shapes:
        raise WeightsError(
            f"weights file {what} does not have the published key layout ({layout}): {len(missing)} missing "
            f"e.g. {missing[:4]}, {len(extra)} unexpected e.g. {extra[:4]}, shape mismatches {shapes[:3]}")


def load_published(model: Any, build: Callable[[], Any], optional: Iterable[str] = (), layout: str = TIMM_LAYOUT,
                   expected: dict | None = None) -> Any:
    """The network ``build()`` makes, loaded from ``model``'s card weights file.

    The file is found by :meth:`Embedder.weights_file` (config path, cache, allowed download) and
    read sha256-checked with ``weights_only``; its keys and shapes must be the network's (or
    ``expected``'s, e.g. a meta-device copy checked before an expensive build) apart from
    ``optional`` keys, which may be absent or present and unused. Returns the network in eval mode
    on the model's device.
    """
    from eoembed.weights import load_state_dict

    path, sha = model.weights_file(model.card.weights[0].name)
    state = load_state_dict(path, sha)
    what = f"{path} ({model.card.id})"
    if expected is not None:
        check_keys(expected, state, set(optional), what, layout)
    net = build()
    own = net.state_dict()
    if expected is None:
        check_keys(own, state, set(optional), what, layout)
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return net.to(model.device).eval()
