"""Imagery providers and the registry that maps provider names to their classes.

Provider modules are imported lazily, so naming a provider never imports the client
libraries (odc-stac, earthengine-api, ...) of the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from eoembed.errors import ConfigError
from eoembed.providers.base import Provider

__all__ = ["PIPELINE_KEYS", "PROVIDERS", "Provider", "get_provider", "provider_class", "provider_from_config",
           "provider_names"]

#: provider name -> "module:Class"
PROVIDERS: dict[str, str] = {
    "local": "eoembed.providers.local:LocalProvider",
    "stac": "eoembed.providers.stac:StacProvider",
    "gee": "eoembed.providers.gee:GeeProvider",
    "faulty": "eoembed.providers.faulty:FaultyProvider",
}


def provider_names() -> list[str]:
    """All registered provider names, sorted."""
    return sorted(PROVIDERS)


def provider_class(name: str) -> type[Provider]:
    """Import and return the :class:`Provider` subclass registered as ``name``.

    Raises:
        ConfigError: if ``name`` is not registered (the message lists the allowed names).
    """
    try:
        target = PROVIDERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"provider={name!r} is invalid: allowed one of {provider_names()}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


#: Keys of a config ``provider`` section that steer the pipeline (retries, input cache, fetch
#: concurrency), not the provider itself.
PIPELINE_KEYS = ("retries", "backoff_s", "cache_dir", "io_workers")


def provider_from_config(section: dict[str, Any]) -> Provider:
    """Build the provider of a config ``provider`` section (its pipeline keys are ignored)."""
    opts = {k: v for k, v in section.items() if k not in PIPELINE_KEYS}
    return get_provider(opts.pop("name", "local"), **opts)


def get_provider(name: str, **options: Any) -> Provider:
    """Instantiate the provider ``name`` with its ``options`` (e.g. ``catalog=`` for ``local``).

    Raises:
        ConfigError: if ``name`` is unknown or the options do not fit the provider.
    """
    cls = provider_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"options={options!r} are invalid for provider {name!r}: {exc}") from None
