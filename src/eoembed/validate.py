"""Validation of every model against its sensor before any job runs, and the run plan.

:func:`model_problems` checks each configured model's declared inputs
(:class:`~eoembed.models.inputs.InputSpec`) against the sensor it reads: collection, bands, GSD
within tolerance (or ``models.<id>.allow_gsd``), number of frames, and - with the ROI table's time
windows - whether the frames are the calendar months a model such as Presto needs. Every problem
names model, sensor, field, value and what is allowed; all are reported at once.
:func:`plan` lists models x sensors x fetch/composite keys (``eoembed validate`` prints it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_problems", "plan", "table_windows", "validate_run"]


def table_windows(table: Any) -> list[Any]:
    """Distinct time windows of a validated ROI table."""
    from eoembed.specs import TemporalSpec

    pairs = table[["start", "end"]].drop_duplicates()
    return [TemporalSpec.range(s, e) for s, e in pairs.itertuples(index=False)]


def model_problems(config: dict[str, Any], windows: list[Any] | None = None) -> list[str]:
    """Every problem of the configured models versus their sensors (empty = fine)."""
    from eoembed.config import sensor_specs
    from eoembed.models.inputs import check_sensor
    from eoembed.models.registry import get_card, model_ids

    sensors = sensor_specs(config)
    problems: list[str] = []
    for mid, m in config["models"].items():
        if mid not in model_ids():
            problems.append(f"models.{mid}: unknown model; available: {model_ids()}")
            continue
        card = get_card(mid)
        if card.kind in ("precomputed", "location"):
            continue  # nothing is fetched for products and location encoders
        sname = m.get("sensor")
        if sname is None:
            problems.append(f"models.{mid}.sensor: missing; choose one of {sorted(sensors)}")
            continue
        if sname not in sensors:
            problems.append(f"models.{mid}.sensor={sname!r}: not defined; defined: {sorted(sensors)}")
            continue
        problems += check_sensor(mid, card.inputs[0], sname, sensors[sname], windows,
                                 gsd_override=bool(m.get("allow_gsd")))
        extra = m.get("sensors") or {}
        for spec in card.inputs[1:]:  # multi-modal: every further input names its sensor
            other = extra.get(spec.modality)
            if other not in sensors:
                problems.append(f"models.{mid}.sensors.{spec.modality}={other!r}: the model's {spec.modality!r} "
                                f"input needs a sensor; defined: {sorted(sensors)}")
                continue
            problems += check_sensor(mid, spec, other, sensors[other], windows,
                                     gsd_override=bool(m.get("allow_gsd")))
            if sensors[other].scale_m != sensors[sname].scale_m:
                problems.append(f"model {mid!r}, sensor {other!r}: scale_m={sensors[other].scale_m:g} differs from "
                                f"sensor {sname!r} ({sensors[sname].scale_m:g}); allowed: the same scale_m (one grid)")
        unknown = sorted(set(extra) - {spec.modality for spec in card.inputs[1:]})
        if unknown:
            problems.append(f"models.{mid}.sensors: {unknown} are not inputs of the model; allowed "
                            f"{[spec.modality for spec in card.inputs[1:]]}")
    return problems


def plan(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: kind, sensor, fetch key (shared download) and composite key."""
    from eoembed.config import sensor_specs
    from eoembed.models.registry import get_card

    sensors = sensor_specs(config)
    rows = []
    for mid, m in config["models"].items():
        card = get_card(mid)
        sensor = sensors.get(m.get("sensor") or "")
        fetched = card.kind == "on_the_fly" and sensor is not None
        rows.append({"model": mid, "kind": card.kind, "sensor": m.get("sensor") if fetched else None,
                     "fetch_key": sensor.fetch_key() if fetched else None,
                     "composite_key": sensor.key() if fetched else None})
    return rows


def validate_run(config: dict[str, Any], table: Any) -> list[dict[str, Any]]:
    """Raise :class:`ConfigError` listing every model/sensor problem for this table; return the plan."""
    from eoembed.config import check_config

    check_config(config, table_windows(table))
    return plan(config)
