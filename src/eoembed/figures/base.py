"""Saving figures with a machine-readable description of what they show."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eoembed.chunkio import write_text_atomic
from eoembed.plots import _save


def sidecar_path(out_png: str | os.PathLike) -> Path:
    """``fig.png`` -> ``fig.data.json``."""
    p = Path(out_png)
    return p.with_name(p.stem + ".data.json")


def _finite(values: np.ndarray) -> list:
    arr = np.asarray(values, dtype=float)
    return np.where(np.isfinite(arr), np.round(arr, 6), np.nan).tolist()


def describe(fig) -> list[dict[str, Any]]:
    """What each visible axes of ``fig`` shows, read from its artists.

    Per axes: ``title``, ``xlabel``, ``ylabel``, ``points`` (``[[x, y], ...]`` of every scatter,
    one list per scatter call), ``colours`` (per scatter, the values mapped to colour, or None),
    ``bars`` (heights, in draw order), ``lines`` (number of line
    artists), ``images`` (``[rows, cols]`` per image), ``texts`` (free text drawn in the axes)
    and ``colorbar`` (True for a colour-bar axes).
    """
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    panels = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        bars = [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]
        panels.append({
            "title": ax.get_title(),
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "points": [_finite(c.get_offsets()) for c in scatters],
            "colours": [None if c.get_array() is None else _finite(c.get_array()) for c in scatters],
            "bars": _finite(bars) if bars else [],
            "lines": len(ax.lines),
            "images": [list(im.get_array().shape[:2]) for im in ax.images],
            "texts": [t.get_text() for t in ax.texts],
            "colorbar": hasattr(ax, "_colorbar"),
        })
    return panels


def save_with_data(fig, out_png: str | os.PathLike, dpi: int, data: dict[str, Any] | None = None):
    """Write the PNG and its sidecar (``panels`` from :func:`describe`, plus ``data``); return ``fig``."""
    _save(fig, out_png, dpi)
    payload = {"figure": Path(out_png).name, "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
               "panels": describe(fig), "data": data or {}}
    write_text_atomic(sidecar_path(out_png), json.dumps(payload, indent=1, default=_json_default), ".json")
    return fig


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
