"""Retries with exponential backoff for transient provider failures."""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from eoembed.errors import TransientProviderError

T = TypeVar("T")
log = logging.getLogger(__name__)


def call_with_retries(fn: Callable[[], T], *, retries: int = 3, backoff_s: float = 1.0,
                      max_backoff_s: float = 60.0, what: str = "call",
                      sleep: Callable[[float], None] = time.sleep) -> tuple[T, int]:
    """Call ``fn``; retry :class:`TransientProviderError` up to ``retries`` times.

    The delay before retry ``k`` (1-based) is ``backoff_s * 2**(k-1)``, capped at
    ``max_backoff_s``. Other exceptions propagate at once.

    Returns:
        ``(result, attempts)``.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(), attempt
        except TransientProviderError as exc:
            if attempt > retries:
                raise TransientProviderError(f"{what}: still failing after {attempt} attempts: {exc}") from exc
            delay = min(max_backoff_s, backoff_s * 2 ** (attempt - 1))
            log.warning("%s: transient failure (%s); retry %d/%d in %.1fs", what, exc, attempt, retries, delay)
            sleep(delay)
