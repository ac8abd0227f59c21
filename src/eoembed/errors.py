"""Typed error hierarchy of eoembed.

Every error raised on purpose by eoembed subclasses :class:`EoembedError`, so callers
can catch one type. Validation errors name the field, the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any


class EoembedError(Exception):
    """Base class of every error eoembed raises on purpose."""


class SpecError(EoembedError, ValueError):
    """A spec field holds a value outside what is allowed.

    Args:
        field: Name of the offending field (e.g. ``"buffer_m"``).
        value: The value given.
        allowed: Human-readable description of what is allowed.
        spec: Name of the spec class, for context.
    """

    def __init__(self, field: str, value: Any, allowed: str, spec: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        where = f"{spec}.{field}" if spec else field
        super().__init__(f"{where}={value!r} is invalid: allowed {allowed}")


class TableError(EoembedError, ValueError):
    """The ROI table has problems; ``problems`` lists every one as (row, column, message)."""

    def __init__(self, path: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in ROI table {path}:"]
        for row, column, message in problems:
            where = f"row {row}" if row is not None else "table"
            lines.append(f"  {where}, column {column!r}: {message}")
        super().__init__("\n".join(lines))


class ConfigError(EoembedError, ValueError):
    """The workflow/library configuration is invalid."""


class ProviderError(EoembedError):
    """An imagery provider could not deliver data for a request (permanent)."""


class TransientProviderError(ProviderError):
    """A provider failure worth retrying (timeouts, 429, 5xx)."""


class NoDataError(ProviderError):
    """The provider found no scene for the ROI and time window."""


class ModelError(EoembedError):
    """A model could not be built or could not embed an input."""


class UnknownModelError(ModelError, KeyError):
    """A model id is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class WeightsError(ModelError):
    """Model weights are missing, corrupt or not a plain state dict."""
