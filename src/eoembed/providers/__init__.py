"""Imagery providers and the registry that maps provider names to their classes.

Provider modules are imported lazily, so naming a provider never imports the client
libraries (odc-stac, earthengine-api, ...) of the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from eoembed.errors import ConfigError
from eoembed.providers.base import Provider

__all__ = ["PIPELINE_KEYS", "PROVIDERS", "Provider", "fetch_fields", "get_provider", "output_fields",
           "provider_class", "provider_from_config", "provider_modules", "provider_names",
           "server_side_composite"]

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


def _inner(section: dict[str, Any]) -> dict[str, Any] | None:
    inner = section.get("inner")
    return inner if isinstance(inner, dict) else None


def output_fields(section: dict[str, Any]) -> dict[str, Any]:
    """The keys of a config ``provider`` section that can change what is fetched.

    Pipeline keys (retries, backoff, input cache) and each provider's declared
    :attr:`~eoembed.providers.base.Provider.operational` options (timeouts, concurrency,
    credentials' location, ...) are left out; every other key counts (an undeclared key is
    assumed to matter). A wrapped provider (``inner``) is filtered the same way.
    """
    name = section.get("name", "local")
    skip = set(PIPELINE_KEYS) | set(provider_class(name).operational)
    out = {k: v for k, v in section.items() if k not in skip}
    if _inner(section) is not None:
        out["inner"] = output_fields(section["inner"])
    return out


def server_side_composite(section: dict[str, Any]) -> bool:
    """Whether the provider composites itself (its fetch depends on frames and compositing)."""
    if provider_class(section.get("name", "local")).composites:
        return True
    return _inner(section) is not None and server_side_composite(section["inner"])


def fetch_fields(sensor, section: dict[str, Any]) -> dict[str, Any]:
    """The sensor fields a fetch depends on with this provider: the download fields, or the
    whole sensor for a provider that composites server side (e.g. Earth Engine)."""
    return sensor.to_dict() if server_side_composite(section) else sensor.fetch_dict()


def provider_modules(section: dict[str, Any]) -> list[str]:
    """Modules of the configured provider (and of a wrapped one), for code fingerprints."""
    mods = [PROVIDERS[section.get("name", "local")].partition(":")[0]] if section.get(
        "name", "local") in PROVIDERS else []
    if _inner(section) is not None:
        mods += provider_modules(section["inner"])
    return mods


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
