"""RGB quick-looks of composites, as arrays, for figure panels."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable

import numpy as np

from eoembed.chunkio import read_chunk

RGB = ("B04", "B03", "B02")


def rgb_array(composite, frame: int = 0) -> np.ndarray:
    """``(y, x, 3)`` floats in [0, 1] of one composite frame: B04/B03/B02, else band 0 as grey.

    Each image is stretched from its 2nd to 98th percentile of valid pixels; pixels without a
    valid observation are black.
    """
    names = [b for b in RGB if b in composite.bands]
    bands = names if len(names) == 3 else [composite.bands[0]]
    img = composite.band_data(bands)[frame].astype(np.float64)  # (c, y, x)
    valid = composite.valid[frame]
    lo, hi = np.percentile(img[:, valid], [2, 98]) if valid.any() else (0.0, 1.0)
    img = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    img[:, ~valid] = 0
    rgb = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img
    return np.ascontiguousarray(rgb.transpose(1, 2, 0))


def load_composites(paths: Iterable[str | os.PathLike], roi_ids: Iterable[str] | None = None) -> dict:
    """``{roi_id: Composite}`` of the ok/partial items in composite chunk files (optionally only ``roi_ids``)."""
    from eoembed.items import Composite

    wanted = set(roi_ids) if roi_ids is not None else None
    out = {}
    for path in paths:
        items, records, _ = read_chunk(path)
        for roi, arrays in items.items():
            rec = records.get(roi, {})
            if (wanted is None or roi in wanted) and rec.get("status") != "failed" and "data" in arrays:
                out[roi] = Composite.from_arrays(arrays, rec["meta"])
    return out


def show_rgb(ax, composite, title: str) -> None:
    """Draw a composite's quick-look in ``ax`` with its (bands, H, W) and no ticks."""
    ax.imshow(rgb_array(composite), interpolation="nearest")
    h, w = composite.grid_shape()
    ax.set_title(title, fontsize="small")
    ax.set_xlabel(f"{len(composite.bands)} bands, {h}x{w} px", fontsize="x-small")
    ax.set_xticks([])
    ax.set_yticks([])


def show_missing(ax, title: str, text: str) -> None:
    """An empty panel that says why there is nothing to show (text wrapped to the panel)."""
    ax.set_title(title, fontsize="small")
    ax.text(0.5, 0.5, textwrap.fill(text, 30, break_long_words=True), ha="center", va="center",
            fontsize="x-small", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
