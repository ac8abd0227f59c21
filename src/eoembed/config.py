"""Loading and validating the workflow/library configuration.

The JSON schema in ``schemas/config.schema.yaml`` is the single source of truth (keys,
types, ranges, defaults and descriptions); Snakemake validates the same file at start.
Cross-key rules (a model's sensor exists, the model is registered, its bands are fetched)
are checked by :func:`check_config`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from eoembed.errors import ConfigError, EoembedError
from eoembed.specs import SensorSpec

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class):
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = yaml.safe_load(yaml.safe_dump(sub["default"]))
        yield from validate_props(validator, properties, instance, sch)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict[str, Any], check: bool = True) -> dict[str, Any]:
    """Validate ``config`` against the schema (filling defaults in place) and check cross-key rules.

    ``check=False`` leaves the cross-key checks to :func:`eoembed.validate.validate_run`, which runs
    them together with the checks that need the ROI table, so every problem is reported at once.
    """
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    if check:
        check_config(config)
    return config


def sensor_specs(config: dict[str, Any]) -> dict[str, SensorSpec]:
    """Build the configured :class:`SensorSpec` objects by name (validated)."""
    out = {}
    for name, d in config["sensors"].items():
        try:
            out[name] = SensorSpec.from_dict(d)
        except EoembedError as exc:
            raise ConfigError(f"sensors.{name}: {exc}") from None
    return out


def check_config(config: dict[str, Any], windows: list[Any] | None = None) -> None:
    """Cross-key checks: each model is registered and its sensor fits the model's declared inputs.

    With ``windows`` (the ROI table's time windows) the frames are also checked against them;
    :func:`eoembed.validate.validate_run` does that (``eoembed validate`` and the workflow's start).
    """
    from eoembed.validate import model_problems

    problems = model_problems(config, windows)
    if config["provider"]["name"] == "local" and not config["provider"].get("catalog"):
        problems.append("provider.catalog: required for provider 'local'")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def load_config(path: str | Path, overrides: dict[str, Any] | None = None, check: bool = True) -> dict[str, Any]:
    """Read a YAML config, apply ``overrides`` (top-level keys) and validate it."""
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    config.update(overrides or {})
    return validate_config(config, check=check)
