"""Scheduler resources of a chunk job from the work it holds: pixels x bands x time steps.

A fetch job keeps every fetched stack of its chunk in memory until it writes the chunk file, a
composite job holds those stacks and their composites, an embed job the composites plus the
model. So memory is estimated from the chunk's ROIs (pixels at the sensor's scale, from the
ROI bounds), the sensor's bands (+ the quality band) and the time steps: scenes in the window
(one per ``REVISIT_DAYS``, or the frames for a provider that composites server side) for a
stack, ``frames`` for a composite. Each retry of a job (Snakemake ``retries:``) multiplies the
memory by the attempt number, so a job killed for memory gets more on the next try.

The figures are estimates with a safety factor, not measurements: they keep a 100 km ROI from
running in a 2 GB slot and a chunk of 16 small ROIs from asking for 60 GB.
"""

from __future__ import annotations

import math
from typing import Any

BASE_MB = 500            # interpreter, numpy, rasterio/odc-stac, pyarrow
OVERHEAD = 2.0           # copies while reading / reprojecting / compositing
REVISIT_DAYS = 5         # Sentinel-2 constellation revisit: scenes per window
MAX_MB = 500_000
MB = 2 ** 20


def roi_pixels(request: dict[str, Any], scale_m: float) -> int:
    """Pixels of a request's ROI at ``scale_m``: exact for a point buffer (its UTM square), from
    the lon/lat bounds otherwise (no projection needed)."""
    from eoembed.specs import spatial_from_dict

    from eoembed.specs import PointBuffer

    spatial = spatial_from_dict(request["spatial"])
    if isinstance(spatial, PointBuffer):  # a UTM square of side 2 x buffer: no projection needed
        side = max(1, math.ceil(2 * spatial.buffer_m / scale_m))
        return side * side
    minx, miny, maxx, maxy = spatial.geometry().bounds
    lat = math.radians((miny + maxy) / 2)
    width_m = (maxx - minx) * 111_320.0 * max(math.cos(lat), 0.01)
    height_m = (maxy - miny) * 110_574.0
    return max(1, math.ceil(width_m / scale_m)) * max(1, math.ceil(height_m / scale_m))


def window_days(request: dict[str, Any]) -> int:
    import datetime as dt

    t = request["temporal"]
    return max(1, (dt.date.fromisoformat(str(t["end"])[:10]) - dt.date.fromisoformat(str(t["start"])[:10])).days)


def chunk_bytes(requests: list[dict[str, Any]], sensor: dict[str, Any], *, stage: str,
                server_side: bool = False) -> int:
    """Bytes of float32 arrays a ``stage`` job of this chunk holds (before the overhead factor)."""
    bands = len(sensor["bands"]) + 1  # + the quality band
    frames = int(sensor.get("frames", 1))
    total = 0
    for req in requests:
        px = roi_pixels(req, float(sensor.get("scale_m", 10)))
        steps = frames if server_side else max(frames, math.ceil(window_days(req) / REVISIT_DAYS))
        stack = steps * bands * px * 4
        composite = frames * bands * px * 4
        total += {"fetch": stack, "composite": stack + composite, "embed": composite}[stage]
    return total


def mem_mb_of(data_bytes: int, attempt: int = 1, *, model_mb: int = 0) -> int:
    """Memory of one chunk job in MB from its array bytes (:func:`chunk_bytes`), scaled by the
    attempt number (1 on the first try)."""
    need = BASE_MB + model_mb + math.ceil(OVERHEAD * data_bytes / MB)
    return int(min(MAX_MB, need * max(1, attempt)))


def runtime_min_of(data_bytes: int, attempt: int = 1, *, base_min: int = 10, mb_per_min: float = 200.0) -> int:
    """Wall time of one chunk job in minutes: a base plus ``mb_per_min`` of arrays per minute
    (remote reads are the slow part), doubled on each retry."""
    return int(math.ceil(base_min + data_bytes / MB / mb_per_min) * 2 ** (max(1, attempt) - 1))


def mem_mb(requests: list[dict[str, Any]], sensor: dict[str, Any] | None, stage: str, attempt: int = 1, *,
           server_side: bool = False, model_mb: int = 0) -> int:
    """Memory of one chunk job in MB, scaled by the attempt number (1 on the first try)."""
    data = chunk_bytes(requests, sensor, stage=stage, server_side=server_side) if sensor else 0
    return mem_mb_of(data, attempt, model_mb=model_mb)


def runtime_min(requests: list[dict[str, Any]], sensor: dict[str, Any] | None, stage: str, attempt: int = 1, *,
                server_side: bool = False, base_min: int = 10, mb_per_min: float = 200.0) -> int:
    """Wall time of one chunk job in minutes (see :func:`runtime_min_of`)."""
    data = chunk_bytes(requests, sensor, stage=stage, server_side=server_side) if sensor else 0
    return runtime_min_of(data, attempt, base_min=base_min, mb_per_min=mb_per_min)
