"""``inspect``: what a provider returns for one ROI, before any model runs.

:func:`inspect_roi` lists the scenes found (id, datetime, scene cloud cover), the valid
fraction of every composite frame after per-pixel masking, and optionally writes a quick-look
PNG of the median RGB (B04/B03/B02, 2-98 % stretch). :func:`add_cli` registers the
``eoembed inspect --config C --roi ID [--png out.png]`` subcommand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eoembed.chunkio import atomic_output
from eoembed.composite import make_composite
from eoembed.errors import ConfigError
from eoembed.grid import grid_for
from eoembed.providers.base import Provider
from eoembed.specs import SensorSpec, SpatialSpec, TemporalSpec

__all__ = ["add_cli", "inspect_roi", "quicklook"]

def _scene_rows(provider: Provider, spatial, temporal, sensor, stack) -> list[dict[str, Any]]:
    """Scenes with datetime and cloud cover when the provider can search, else the stack's ids."""
    search = getattr(provider, "search", None)
    if callable(search):
        rows = []
        for item in search(spatial, temporal, sensor):
            when = item.datetime or item.common_metadata.start_datetime
            rows.append({"id": item.id, "datetime": when.isoformat() if when else None,
                         "cloud_cover": item.properties.get("eo:cloud_cover")})
        return rows
    return [{"id": sid, "datetime": t.isoformat(), "cloud_cover": None}
            for t, ids in zip(stack.times, stack.scenes) for sid in ids]


def quicklook(composite, out_png: str | Path, frame: int = 0) -> Path:
    """Write a PNG of one composite frame: RGB when B04/B03/B02 are there, else band 0 grey.

    Pixels without a valid observation are black. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from eoembed.figures.quicklook import rgb_array

    with atomic_output(out_png, ".png") as tmp:
        plt.imsave(tmp, rgb_array(composite, frame), format="png")
    return Path(out_png)


def inspect_roi(provider: Provider, spatial: SpatialSpec, temporal: TemporalSpec, sensor: SensorSpec,
                out_png: str | Path | None = None) -> dict[str, Any]:
    """Fetch and composite one ROI; report scenes, valid fraction per frame and a quick-look.

    Returns:
        ``{"provider", "grid", "scenes": [{"id", "datetime", "cloud_cover"}], "time_steps",
        "frames": [{"start", "end", "valid_fraction"}], "png"}``.

    Raises:
        NoDataError / ProviderError: as the provider's ``fetch``.
    """
    grid = grid_for(spatial, sensor.scale_m)
    stack = provider.fetch(spatial, temporal, sensor, grid)
    comp = make_composite(stack, sensor, temporal, grid.inside_mask(spatial.geometry()))
    png = str(quicklook(comp, out_png)) if out_png else None
    return {
        "provider": provider.describe(),
        "grid": grid.to_dict(),
        "scenes": _scene_rows(provider, spatial, temporal, sensor, stack),
        "time_steps": [{"time": t.isoformat(), "scenes": ids} for t, ids in zip(stack.times, stack.scenes)],
        "frames": [{"start": a.isoformat(), "end": b.isoformat(), "valid_fraction": round(v, 6)}
                   for (a, b), v in zip(comp.frame_bounds, comp.valid_fraction)],
        "png": png,
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    from eoembed.config import load_config, sensor_specs
    from eoembed.providers import provider_from_config
    from eoembed.table import load_table, to_requests

    config = load_config(args.config)
    table = load_table(config["rois"])
    rows = [i for i, rid in enumerate(table["roi_id"]) if str(rid) == args.roi]
    if not rows:
        raise ConfigError(f"roi={args.roi!r} is invalid: not in {config['rois']} "
                          f"(first ids: {list(table['roi_id'][:5])})")
    req = to_requests(table, rows)[0]
    sensors = sensor_specs(config)
    name = args.sensor or next(iter(sensors))
    if name not in sensors:
        raise ConfigError(f"sensor={name!r} is invalid: allowed one of {sorted(sensors)}")
    provider = provider_from_config(config["provider"])
    report = inspect_roi(provider, req.spatial, req.temporal, sensors[name], args.png)
    print(json.dumps({"roi_id": req.roi_id, "sensor": name, **report}, indent=1, default=str))
    return 0


def add_cli(subparsers) -> None:
    """Register ``inspect`` on an ``argparse`` subparsers object (``eoembed inspect ...``)."""
    s = subparsers.add_parser("inspect", help="scenes, valid fraction and a quick-look PNG for one ROI")
    s.add_argument("--config", default="config/config.yaml")
    s.add_argument("--roi", required=True, help="roi_id from the ROI table")
    s.add_argument("--sensor", default=None, help="sensor name from the config (default: the first)")
    s.add_argument("--png", default=None, help="write a quick-look PNG of the median RGB here")
    s.set_defaults(fn=_cmd_inspect)
